"""TLS, cookies and secrets on the box, checked the way an attacker (or an auditor) would look."""

import json
import re
import socket
import ssl
import subprocess
import time

import pytest
import requests
from conftest import BOX, PORT, SETTINGS, box_exec

from pophub.hubclient import HubClient, HubError


def handshake(cafile, version):
    """A TLS handshake with the box, offering exactly `version`; returns the version agreed."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = context.maximum_version = version
    # Let this client offer old versions, so a refusal can only come from the server.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with (
        socket.create_connection(("localhost", PORT), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version()


def test_tls_1_2_and_1_3_are_spoken(cafile):
    assert handshake(cafile, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(cafile, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLS 1.0", "TLS 1.1"])
def test_old_tls_is_refused(cafile, version):
    with pytest.raises(ssl.SSLError) as refused:
        handshake(cafile, version)
    # The server's alert, not the client declining to offer the version.
    assert "ALERT_PROTOCOL_VERSION" in str(refused.value), refused.value


def test_static_files_come_compressed_and_pages_do_not(hub_url, cafile):
    """A room shares one venue connection: the hub's 667 KB admin script must arrive compressed. Pages
    hold an XSRF token and echo what was asked, so over TLS they must not be (BREACH)."""
    session = requests.Session()
    session.trust_env = False
    headers = {"Accept-Encoding": "gzip"}
    script = session.get(f"{hub_url}/hub/static/js/admin-react.js", headers=headers, verify=cafile, timeout=30)
    assert script.status_code == 200
    assert script.headers.get("Content-Encoding") == "gzip", script.headers
    assert "Accept-Encoding" in script.headers.get("Vary", "")
    sent = int(script.raw.tell()) if script.raw.tell() else len(script.content)
    print(f"admin-react.js: {len(script.content)} bytes, {sent} on the wire")
    page = session.get(f"{hub_url}/hub/login", headers=headers, verify=cafile, timeout=30)
    assert page.status_code == 200 and "gzip" not in page.headers.get("Content-Encoding", ""), page.headers


def test_plain_http_sends_everyone_to_the_hubs_own_name_whatever_host_they_sent():
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: evil.example"]
    answer = box_exec(*curl, "http://127.0.0.1/hub/login?next=x")
    assert answer == f"301 https://{SETTINGS['pophub_domain']}:{PORT}/hub/login?next=x", answer


def test_a_huge_login_form_is_refused_before_the_hub_reads_it(hub_url, cafile):
    user = HubClient(hub_url, "e2e-huge-form", cafile)
    user.session.get(f"{hub_url}/hub/login", timeout=30)
    data = {"username": user.name, "password": "x" * 100_000, "_xsrf": user.session.cookies.get("_xsrf")}
    answer = user.session.post(f"{hub_url}/hub/login", data=data, allow_redirects=False, timeout=30)
    assert answer.status_code == 413, answer.status_code
    # An ordinary form on the same page still logs in.
    assert user.post_login(SETTINGS["jupyterhub_shared_password"]).status_code == 302


def test_login_cookies_are_secure_and_http_only(hub_url, cafile, settings):
    user = HubClient(hub_url, "e2e-cookies", cafile)
    response = user.post_login(settings["jupyterhub_shared_password"])
    assert response.status_code == 302
    set_cookies = [v for k, v in response.raw.headers.items() if k.lower() == "set-cookie"]
    login_cookies = [c for c in set_cookies if c.startswith("jupyterhub-")]
    assert login_cookies, set_cookies
    for cookie in login_cookies:
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert "secure" in flags and "httponly" in flags, cookie


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        ("/var/lib/jupyterhub/jupyterhub_cookie_secret", "jupyterhub"),
        ("/etc/jupyterhub/proxy.env", "root"),
        ("/etc/jupyterhub/hub.env", "root"),
        ("/etc/jupyterhub/db.env", "root"),
        ("/etc/jupyterhub/auth.json", "jupyterhub"),
        ("/etc/pophub/secrets/postgresql-jupyterhub.password", "root"),
        ("/etc/pophub/secrets/postgresql-event.password", "root"),
        ("/etc/pophub/tls/selfsigned.key", "root"),
    ],
)
def test_secrets_are_readable_by_their_owner_only(path, owner):
    assert box_exec("stat", "-c", "%a %U", path).split() == ["600", owner]


def test_generated_secrets_are_long_random_values():
    token = box_exec("cat", "/etc/jupyterhub/hub.env").strip().split("=", 1)[1]
    assert len(token) == 64 and int(token, 16), "JUPYTERHUB_CRYPT_KEY must be 32 random bytes in hex"
    password = box_exec("cat", "/etc/pophub/secrets/postgresql-event.password").strip()
    assert len(password) >= 40


def banned(jail):
    status = box_exec("fail2ban-client", "status", jail)
    return status.split("Banned IP list:")[1].split()


def wait_for_ban(jail, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if banned(jail):
            return banned(jail)
        time.sleep(1)
    return []


def test_repeated_failed_hub_logins_get_the_address_banned(hub_url, cafile):
    assert banned("pophub-hub-login") == []
    try:
        # Failed logins by earlier tests count too, so the ban may come before the last attempt.
        for attempt in range(SETTINGS["host_security_fail2ban_maxretry"] + 1):
            try:
                response = HubClient(hub_url, f"e2e-guesser-{attempt}", cafile).post_login("wrong-password")
            except (requests.exceptions.RequestException, HubError):
                # Banned: the connection is refused, or the login page no longer answers 200.
                break
            assert response.status_code == 403
        addresses = wait_for_ban("pophub-hub-login")
        assert addresses, "no address was banned after repeated failed logins"
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(f"{hub_url}/hub/login", verify=cafile, timeout=5)
    finally:
        box_exec("fail2ban-client", "unban", "--all")
    assert requests.get(f"{hub_url}/hub/login", verify=cafile, timeout=30).status_code == 200


@pytest.mark.parametrize(
    ("request_line", "status", "counted"),
    [
        ('"POST /hub/login?next=%2Fhub%2F HTTP/1.1"', 403, True),  # a wrong event password
        ('"POST /hub/login HTTP/1.1"', 200, True),  # NativeAuthenticator's form again: a wrong password
        ('"POST /hub/api/users/alice/tokens HTTP/1.1"', 403, True),  # a password guessed through the API
        ('"POST /hub/login HTTP/1.1"', 302, False),  # a login that worked
        ('"GET /hub/login HTTP/1.1"', 200, False),  # the login page
        ('"POST /hub/api/users/alice/tokens HTTP/1.1"', 201, False),  # a token made
    ],
)
def test_the_login_jail_counts_every_way_to_guess_a_password_and_nothing_else(request_line, status, counted):
    """Checked by fail2ban's own parser, against the box's filter, on lines as nginx writes them."""
    line = f'203.0.113.7 - - [02/Dec/2026:10:00:00 +0000] {request_line} {status} 512 "-" "Mozilla/5.0"'
    found = box_exec("fail2ban-regex", "--raw", line, "/etc/fail2ban/filter.d/pophub-hub-login.conf")
    matched = int(re.search(r"Lines: \d+ lines, \d+ ignored, (\d+) matched", found).group(1))
    assert matched == (1 if counted else 0), found


def test_repeated_failed_ssh_logins_get_the_address_banned():
    inspect = json.loads(subprocess.run(["docker", "inspect", BOX], capture_output=True, check=True).stdout)[0]
    (network, settings), *_ = inspect["NetworkSettings"]["Networks"].items()
    attack = (
        "apt-get -qq update >/dev/null && apt-get -qq install -y openssh-client >/dev/null && "
        f"for i in $(seq {SETTINGS['host_security_fail2ban_maxretry'] + 1}); do "
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=5 "
        f"nosuchuser@{settings['IPAddress']} true 2>/dev/null; done; hostname -i"
    )
    assert banned("sshd") == []
    try:
        attacker = subprocess.run(
            ["docker", "run", "--rm", "--network", network, inspect["Config"]["Image"], "sh", "-c", attack],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        attacker_ip = attacker.stdout.split()[-1]
        assert wait_for_ban("sshd") == [attacker_ip], attacker.stderr
    finally:
        box_exec("fail2ban-client", "unban", "--all")
