"""nginx_tls_mode: letsencrypt against a real ACME server: Pebble, the test server Let's Encrypt
publishes (Debian's `pebble`), run in the box. Pebble validates HTTP-01 challenges for real: it looks
the name up in its own DNS (pebble-challtestsrv, which knows only the names a test gives it) and
fetches the challenge from nginx on port 80. certbot trusts Pebble's API through the box's CA store
while this module runs; the test machine trusts Pebble's root only for its own checks. The box goes
back to its self-signed certificate afterwards."""

import http.client
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import BOX, PORT, box_exec, converge
from cryptography import x509
from test_tls_modes import make_ca_and_certificate

NAME = "hub.pophub.test"  # Pebble's DNS points it at the box
NOWHERE = "elsewhere.pophub.test"  # and this one at nothing
ACME = "https://localhost:14000/dir"
STATE = "/run/pophub-test-pebble"
API_CA = "/usr/local/share/ca-certificates/pophub-test-pebble.crt"
# Read after the role's own pophub.conf, so its command is the one that runs.
FORCE = Path("/run/systemd/system/certbot.service.d/zz-pophub-test-force.conf")
LETSENCRYPT = {"nginx_tls_mode": "letsencrypt", "nginx_letsencrypt_email": "organizer@example.org",
               "nginx_letsencrypt_server": ACME}  # fmt: skip


def copy_into_box(path, destination):
    """(`docker cp` cannot write into the box's /run, a tmpfs.)"""
    subprocess.run(["docker", "exec", "-i", BOX, "sh", "-c", 'cat > "$1"', "-", destination],
                   input=Path(path).read_bytes(), check=True, capture_output=True)  # fmt: skip


def dns(action, **record):
    """Tell Pebble's DNS (pebble-challtestsrv's management API) to add or clear a record."""
    box_exec("curl", "-sSf", "-d", json.dumps(record), f"http://127.0.0.1:8055/{action}")


def served(cafile, name=NAME):
    """(status, headers, serial) of GET /hub/login over HTTPS as a browser at `name` sees it,
    verified against `cafile` (Pebble's root, or the box's self-signed certificate) and `name`."""
    context = ssl.create_default_context(cafile=cafile)
    with (
        socket.create_connection(("localhost", PORT), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        tls.sendall(f"GET /hub/login HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        response = http.client.HTTPResponse(tls)
        response.begin()
        response.read()
    return response.status, response.headers, x509.load_der_x509_certificate(der).serial_number


def box_succeeds(*argv):
    return subprocess.run(["docker", "exec", BOX, *argv], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pebble")
    ca, chain, key = make_ca_and_certificate(directory)  # Pebble's API certificate, for localhost
    (directory / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
        "certificate": f"{STATE}/api.crt", "privateKey": f"{STATE}/api.key",
        "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}))  # fmt: skip
    forget_pebble()  # a run before may have left its traces
    box_exec("apt-get", "install", "-y", "-q", "--no-install-recommends", "pebble")
    box_exec("mkdir", "-p", STATE)
    for source, target in [(chain, "api.crt"), (key, "api.key"), (directory / "pebble.json", "pebble.json")]:
        copy_into_box(source, f"{STATE}/{target}")
    copy_into_box(ca, API_CA)
    box_exec("update-ca-certificates")
    # No default address: a name the test did not add resolves to nothing.
    box_exec("systemd-run", "--collect", "--unit", "pophub-test-challtestsrv", "pebble-challtestsrv", "-management",
             "127.0.0.1:8055", "-dns01", "127.0.0.1:8053", "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-defaultIPv4", "", "-defaultIPv6", "")  # fmt: skip
    # No random sleeps or refused nonces, and a fresh validation for every order (renewals too).
    box_exec("systemd-run", "--collect", "--unit", "pophub-test-pebble", "--setenv=PEBBLE_VA_NOSLEEP=1",
             "--setenv=PEBBLE_WFE_NONCEREJECT=0", "--setenv=PEBBLE_AUTHZREUSE=0",
             "pebble", "-config", f"{STATE}/pebble.json", "-dnsserver", "127.0.0.1:8053")  # fmt: skip
    deadline = time.monotonic() + 60
    while not box_succeeds("curl", "-sf", "-o", "/dev/null", ACME):
        assert time.monotonic() < deadline, box_exec("journalctl", "-u", "pophub-test-pebble", "--no-pager")
        time.sleep(1)
    dns("add-a", host=NAME, addresses=["127.0.0.1"])
    root = directory / "pebble-root.pem"
    root.write_text(box_exec("curl", "-sSf", "https://localhost:15000/roots/0"))
    yield root
    converge(tmp_path_factory, tags="nginx", nginx_tls_mode="selfsigned")
    box_exec("certbot", "delete", "--non-interactive", "--cert-name", NAME, check=False)
    forget_pebble()
    box_exec("update-ca-certificates", "--fresh")


def forget_pebble():
    """Stop Pebble and forget its account: a new Pebble knows none, and certbot would reuse it."""
    box_exec("systemctl", "stop", "pophub-test-pebble", "pophub-test-challtestsrv", check=False)
    box_exec("rm", "-rf", API_CA, STATE, "/etc/letsencrypt/accounts/localhost:14000")


def test_a_name_that_does_not_point_at_the_box_stops_the_run_and_changes_nothing(pebble, cafile, tmp_path_factory):
    before = box_exec("sha256sum", "/etc/nginx/nginx.conf"), served(cafile, "localhost")[2]
    output = converge(tmp_path_factory, expect_failure=True, tags="nginx", pophub_domain=NOWHERE, **LETSENCRYPT)
    assert f"{ACME} did not issue a certificate for {NOWHERE}" in output, output[-3000:]
    assert f'could not resolve URL "http://{NOWHERE}:80/.well-known/acme-challenge/' in output, output[-3000:]
    assert "Nothing changed: nginx serves as before." in output, output[-3000:]
    assert (box_exec("sha256sum", "/etc/nginx/nginx.conf"), served(cafile, "localhost")[2]) == before
    assert not box_succeeds("test", "-e", f"/etc/letsencrypt/live/{NOWHERE}")


@pytest.fixture(scope="module")
def issued(pebble, tmp_path_factory):
    converge(tmp_path_factory, tags="nginx", pophub_domain=NAME, **LETSENCRYPT)
    return pebble


def test_the_certificate_comes_through_a_real_http01_challenge_and_is_served_with_hsts(issued):
    status, headers, _ = served(issued)  # verified against Pebble's root, for the name
    assert status == 200
    assert headers["Strict-Transport-Security"] == "max-age=63072000"
    assert f"server = {ACME}" in box_exec("cat", f"/etc/letsencrypt/renewal/{NAME}.conf")
    # Pebble logged the challenge it fetched from nginx.
    assert f"Attempting to validate w/ HTTP: http://{NAME}:80/.well-known/acme-challenge/" in box_exec(
        "journalctl", "-u", "pophub-test-pebble", "--no-pager"
    )
    assert box_exec("systemctl", "is-enabled", "certbot.timer").strip() == "enabled"


def test_a_renewal_reloads_nginx_with_the_new_certificate_without_dropping_a_request(issued):
    serial = served(issued)[2]
    answers, stop = [], threading.Event()

    def browse():
        while not stop.is_set():
            try:
                answers.append(served(issued)[0])
            except OSError as error:
                answers.append(repr(error))

    browser = threading.Thread(target=browse)
    browser.start()
    try:
        box_exec("certbot", "renew", "--force-renewal", "--no-random-sleep-on-renew", "-q")
        deadline = time.monotonic() + 20
        while served(issued)[2] == serial:
            assert time.monotonic() < deadline, "nginx still serves the old certificate after the renewal"
            time.sleep(0.5)
    finally:
        stop.set()
        browser.join()
    assert len(answers) > 5 and set(answers) == {200}, answers


def test_a_renewal_that_fails_keeps_the_certificate_serving_and_says_why_in_the_journal(issued):
    serial = served(issued)[2]
    dns("clear-a", host=NAME)
    try:
        # The timer's own unit, certbot.service, with the renewal forced: it would not be due for weeks.
        unit = box_exec("systemctl", "show", "-p", "ExecStart", "certbot.service")
        forced = re.search(r"argv\[\]=([^;]+);", unit)[1].strip() + " --force-renewal"
        box_exec("mkdir", "-p", FORCE.parent)
        box_exec("sh", "-c", f"printf '[Service]\\nExecStart=\\nExecStart=%s\\n' '{forced}' >{FORCE}")
        box_exec("systemctl", "daemon-reload")
        since = box_exec("date", "+%Y-%m-%d %H:%M:%S").strip()
        renewed = box_succeeds("systemctl", "start", "certbot.service")
        journal = box_exec("journalctl", "-u", "certbot.service", "--since", since, "--no-pager")
        # (CI at 30e5bbb once saw this renewal succeed, unexplained; the journal says why if it recurs.)
        if renewed:
            pebble_log = box_exec("journalctl", "-u", "pophub-test-pebble", "-n", "40", "--no-pager")
            pytest.fail(f"the renewal should have failed; certbot's journal:\n{journal}\nPebble's:\n{pebble_log}")
        assert f"Failed to renew certificate {NAME}" in journal and "could not resolve URL" in journal, journal
        assert "certbot.service: Failed with result 'exit-code'" in journal, journal
        status, _, still = served(issued)
        assert status == 200 and still == serial
        assert box_succeeds("nginx", "-t", "-q")
    finally:
        box_exec("rm", "-f", FORCE)
        box_exec("systemctl", "daemon-reload")
        box_exec("systemctl", "reset-failed", "certbot.service", check=False)
        dns("add-a", host=NAME, addresses=["127.0.0.1"])
