"""The organizers' post-deploy check, playbooks/verify.yml, run as an organizer runs it against a
live box: it passes on a healthy box, reporting each step, and it can fail. The token it uses
reaches its own test user and nobody else."""

import os
import re
import subprocess

import pytest
import requests
from conftest import PORT, ROOT, box_exec, event_inventory


def run_verify(tmp_path, *extra):
    """ansible-playbook playbooks/verify.yml with the test event's inventory."""
    inventory = event_inventory(tmp_path / "inventory")
    result = subprocess.run(
        ["ansible-playbook", "-i", str(inventory / "hosts.yml"), "playbooks/verify.yml", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "POPHUB_TEST_PORT": str(PORT), "ANSIBLE_STDOUT_CALLBACK": "default", "NO_COLOR": "1"},
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_it_passes_and_says_what_it_checked(tmp_path):
    rc, output = run_verify(tmp_path)
    assert rc == 0, output[-3000:]
    lines = re.findall(r'"ok: ([^"]+)"', output)
    assert len(lines) == 7, output[-3000:]
    assert lines[0] == f"the hub answers at https://localhost:{PORT} over verified HTTPS"
    assert re.fullmatch(r"a server started in [0-9.]+ s", lines[2])
    assert lines[3] == "a cell ran in a kernel and printed 42"
    postgis = r"PostGIS 3\.[0-9.]+ answered the cell, logged in as the user's own role u_pophub_verify_[0-9a-f]{32}"
    assert re.fullmatch(postgis, lines[4])
    assert re.fullmatch(r"the certificate for localhost is valid for 36[0-9] more days \(until .*\)", lines[6])
    assert f"https://localhost:{PORT} passed every check" in output
    # The token never reaches the output.
    token = box_exec("cat", "/etc/jupyterhub/verify.env").split("=", 1)[1].strip()
    assert token not in output


def test_it_fails_in_plain_words(tmp_path):
    rc, output = run_verify(tmp_path, "-e", "pophub_verify_min_certificate_days=400")
    assert rc != 0
    assert re.search(r"failed its post-deploy check: FAILED: the certificate for localhost expires in 36[0-9] days "
                     r"\([0-9-]+\), fewer than 400: renew it", " ".join(output.split())), output[-3000:]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/users/e2e-alice"),
    ("POST", "/users/e2e-alice/server"),
    ("DELETE", "/users/e2e-alice/server"),
    ("POST", "/users/e2e-verify-mallory"),
    ("GET", "/users"),
])  # fmt: skip
def test_its_token_reaches_the_test_user_only(hub_url, cafile, method, path):
    token = box_exec("cat", "/etc/jupyterhub/verify.env").split("=", 1)[1].strip()
    session = requests.Session()
    session.trust_env = False
    response = session.request(method, f"{hub_url}/hub/api{path}", headers={"Authorization": f"token {token}"},
                               verify=cafile, timeout=60)  # fmt: skip
    # 403, or 404 where JupyterHub hides that the user exists; a list shows the test user at most.
    if path == "/users" and response.status_code == 200:
        assert {u["name"] for u in response.json()} <= {"pophub-verify"}
    else:
        assert response.status_code in (403, 404), response.text
