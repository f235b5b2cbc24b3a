"""Check a live pophub box the way a participant uses it, from the organizer's machine.

Over verified HTTPS, through nginx: the hub answers; the test user (created if missing) gets a
server; a cell runs in a kernel; that cell queries PostGIS as the user's own database role; the
server stops again. Then the certificate's expiry is read. The hub's pophub-verify service token
acts for the test user only (its role's scopes are limited to that user), so this works with every
login method, GitHub and OpenID Connect included.

Prints one line per check and exits 1 at the first one that fails.

Usage: pophub-verify --url https://hub.example.org --token-file FILE [--cafile FILE]
                     [--user pophub-verify] [--min-certificate-days 14]
"""

import argparse
import socket
import ssl
import sys
import time
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import requests
import websocket

from pophub.hubclient import HubClient, HubError, resolve_localhost_names

POSTGIS_CELL = """
import psycopg
with psycopg.connect() as connection:
    role, version = connection.execute("SELECT current_user, postgis_lib_version()").fetchone()
print(role, version)
"""


class CheckFailed(HubError):
    pass


class Verifier:
    def __init__(self, url, token, user, cafile):
        self.hub = HubClient(url, user, cafile, token=token)
        self.url, self.user = self.hub.hub_url, user

    def check_health(self):
        response = self.hub.token_session.get(f"{self.url}/hub/health", timeout=30)
        if response.status_code != 200:
            raise CheckFailed(f"{self.url}/hub/health answered {response.status_code}")
        return f"the hub answers at {self.url} over verified HTTPS"

    def check_user(self):
        response = self.hub.api("POST", f"/users/{quote(self.user)}")
        if response.status_code not in (201, 409):
            raise CheckFailed(
                f"creating the test user {self.user} answered {response.status_code}: {response.text[:300]}"
            )
        return f"acting as the test user {self.user} with the pophub-verify service's token"

    def check_spawn(self, timeout):
        if self.hub.server_model():
            self.hub.api("DELETE", f"/users/{quote(self.user)}/server")
            self.hub.wait(lambda server: not server, 120, "stopped")
        started = time.monotonic()
        self.hub.start_server(timeout)
        return f"a server started in {time.monotonic() - started:.1f} s"

    def check_cell(self):
        output = self.hub.run_code("print(6 * 7)")
        if output.strip() != "42":
            raise CheckFailed(f"a cell computing 6 * 7 printed {output!r}")
        return "a cell ran in a kernel and printed 42"

    def check_postgis(self):
        role, version = self.hub.run_code(POSTGIS_CELL).split()
        return f"PostGIS {version} answered the cell, logged in as the user's own role {role}"

    def check_stop(self):
        self.hub.stop_server(120)
        return "the server stopped again"

    def check_certificate(self, min_days):
        parts = urlsplit(self.url)
        context = ssl.create_default_context(cafile=self.hub.cafile or None)
        with (
            socket.create_connection((parts.hostname, parts.port or 443), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            not_after = tls.getpeercert()["notAfter"]
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
        days = (expires - datetime.now(UTC)).days
        if days < min_days:
            raise CheckFailed(
                f"the certificate for {parts.hostname} expires in {days} days ({expires:%Y-%m-%d}), "
                f"fewer than {min_days}: renew it"
            )
        return f"the certificate for {parts.hostname} is valid for {days} more days (until {expires:%Y-%m-%d})"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pophub-verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--cafile", default="")
    parser.add_argument("--user", default="pophub-verify")
    parser.add_argument("--min-certificate-days", type=int, default=14)
    parser.add_argument("--spawn-timeout", type=int, default=300)
    args = parser.parse_args(argv)
    resolve_localhost_names()  # a test box with per-user subdomains: alice.pophub.localhost
    with open(args.token_file) as token:
        verifier = Verifier(args.url, token.read().strip(), args.user, args.cafile)
    checks = [
        verifier.check_health,
        verifier.check_user,
        lambda: verifier.check_spawn(args.spawn_timeout),
        verifier.check_cell,
        verifier.check_postgis,
        verifier.check_stop,
        lambda: verifier.check_certificate(args.min_certificate_days),
    ]
    for check in checks:
        try:
            print(f"ok: {check()}", flush=True)
        except (HubError, OSError, requests.RequestException, websocket.WebSocketException) as error:
            print(f"FAILED: {error}", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
