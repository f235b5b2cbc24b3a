"""The hub client's own logic, without a hub: which XSRF cookie it sends, and names under .localhost."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from pophub.hubclient import HubClient, resolve_localhost_names


class SetsXsrf(BaseHTTPRequestHandler):
    """Answers every GET with an _xsrf cookie named after the Host it was asked as."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Set-Cookie", f"_xsrf={self.headers['Host'].split(':')[0]}; Path=/")
        self.end_headers()

    def log_message(self, *_):
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), SetsXsrf)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_port
    httpd.shutdown()


@pytest.mark.parametrize("hub_name", ["localhost", "pophub.localhost"])
def test_the_hubs_xsrf_cookie_is_told_from_a_servers(server, hub_name):
    """With per-user subdomains a browser holds the hub's _xsrf and its server's: the form and the
    token page get the hub's."""
    resolve_localhost_names()
    client = HubClient(f"http://{hub_name}:{server}", "alice")
    assert client.hub_xsrf() is None
    # The server's first (a bookmark), so that the first _xsrf in the jar is not the hub's.
    client.session.get(f"http://alice.{hub_name}:{server}/user/alice/", timeout=10)
    client.session.get(f"http://{hub_name}:{server}/hub/login", timeout=10)
    assert sorted(cookie.value for cookie in client.session.cookies) == sorted([hub_name, f"alice.{hub_name}"])
    assert client.hub_xsrf() == hub_name


def test_names_under_localhost_reach_the_loopback_and_others_are_resolved_as_before():
    resolve_localhost_names()
    resolve_localhost_names()  # twice is once
    for name in ("alice.pophub.localhost", "ALICE.Pophub.Localhost.", b"x.localhost"):
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)}
        assert addresses and addresses <= {"127.0.0.1", "::1"}, (name, addresses)
    assert {info[4][0] for info in socket.getaddrinfo("127.0.0.2", 80)} == {"127.0.0.2"}
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("pophub.localhost.invalid", 80)
