"""Fixtures that reach the converged Molecule box the way a participant would: HTTPS through nginx."""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pophub.hubclient import HubClient, resolve_localhost_names

ROOT = Path(__file__).resolve().parents[2]
BOX = os.environ.get("POPHUB_TEST_BOX", "pophub-molecule-debian12")
PORT = int(os.environ.get("POPHUB_TEST_PORT", "18443"))
# The Molecule scenario that made BOX, for re-converges (debian13 for pophub-molecule-debian13).
SCENARIO = os.environ.get("POPHUB_TEST_SCENARIO", "default")
# The test event's settings as BOX has them: every scenario's group_vars, then BOX's own host_vars
# (box B is reached at pophub.localhost and serves each user at a name under it).
SETTINGS = yaml.safe_load((ROOT / "molecule/default/group_vars/pophub.yml").read_text())
HOST_VARS = ROOT / "molecule" / SCENARIO / "host_vars" / f"{BOX}.yml"
if HOST_VARS.exists():
    SETTINGS.update(yaml.safe_load(HOST_VARS.read_text()))
# Names under .localhost (pophub.localhost, alice.pophub.localhost) reach this machine's loopback.
resolve_localhost_names()


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(item.fspath).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


def box_exec(*argv, check=True):
    """Run a command inside the box container and return its stdout."""
    result = subprocess.run(
        ["docker", "exec", BOX, *argv], capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} failed in {BOX}: {result.stderr.strip()}")
    return result.stdout


def event_inventory(directory, editable=False):
    """Make `directory` the test event's inventory, pointed at the box, as an organizer's
    inventory/<event> is: the scenario's group_vars (a copy when the test edits them) and a
    hosts.yml. Returns the directory."""
    directory.mkdir(exist_ok=True)
    if editable:
        shutil.copytree(ROOT / "molecule/default/group_vars", directory / "group_vars")
    else:
        (directory / "group_vars").symlink_to(ROOT / "molecule/default/group_vars")
    (directory / "hosts.yml").write_text(
        f"all:\n  children:\n    pophub:\n      hosts:\n        {BOX}:\n"
        "          ansible_connection: community.docker.docker\n"
    )
    return directory


def user_containers(name):
    """The containers in the box, running or not, that serve `name` (found by their environment)."""
    ids = box_exec("docker", "ps", "-aq").split()
    if not ids:
        return []
    found = json.loads(box_exec("docker", "inspect", *ids))
    return [c for c in found if f"JUPYTERHUB_USER={name}" in c["Config"]["Env"]]


def server_processes(container_id):
    """(uid, effective capabilities, command) of every process in a user's container. The start
    script runs as root and then replaces itself with the server, so root is never left running."""
    found = []
    for pid in box_exec("docker", "top", container_id, "-eo", "pid").split()[1:]:
        lines = box_exec("cat", f"/proc/{pid}/status", check=False).splitlines()
        status = dict(line.split(":", 1) for line in lines if ":" in line)
        if status:
            command = box_exec("cat", f"/proc/{pid}/cmdline").replace("\0", " ").strip()
            found.append((status["Uid"].split(), int(status["CapEff"], 16), command))
    return found


@pytest.fixture(scope="module", autouse=True)
def fresh_login_jail():
    """Every test module starts with the hub-login jail's count at zero. All tests reach the box from
    one address, as a room behind one NAT does, so the failed logins that each module makes on purpose
    would otherwise add up across modules and ban the next one. (The jail's own test counts to a ban.)"""
    box_exec("fail2ban-client", "restart", "--unban", "pophub-hub-login", check=False)


@pytest.fixture(scope="session")
def settings():
    return SETTINGS


@pytest.fixture(scope="session")
def hub_url():
    return f"https://{SETTINGS['pophub_domain']}:{PORT}"


@pytest.fixture(scope="session")
def cafile(tmp_path_factory):
    """The box's self-signed certificate, so every request verifies TLS for real."""
    path = tmp_path_factory.mktemp("tls") / "box.crt"
    path.write_text(box_exec("cat", "/etc/pophub/tls/selfsigned.crt"))
    return str(path)


@pytest.fixture(scope="session")
def hub_user(hub_url, cafile):
    """Log in as a new participant with the event password."""

    def login(name, password=SETTINGS["jupyterhub_shared_password"]):
        user = HubClient(hub_url, name, cafile)
        user.login(password, note="pophub e2e")
        return user

    return login


@pytest.fixture(scope="module")
def running_server(hub_user):
    """A participant whose server was started through the hub API and is ready."""
    user = hub_user("e2e-alice")
    started = time.monotonic()
    user.start_server()
    elapsed = time.monotonic() - started
    print(f"\nserver of {user.name} ready in {elapsed:.1f} s (start request to ready)")
    yield user
    user.stop_server()


def converge(tmp_path_factory, expect_failure=False, tags="event_image,jupyterhub", ansible_args=(), **settings):
    """Re-converge parts of the box with these inventory settings over the scenario's own, as an
    organizer would after editing the inventory. Returns Ansible's output."""
    path = tmp_path_factory.mktemp("converge") / "settings.json"
    path.write_text(json.dumps(settings))
    started = time.monotonic()
    result = subprocess.run(
        ["molecule", "converge", "-s", SCENARIO, "--", "--tags", tags, "--extra-vars", f"@{path}", *ansible_args],
        env={**os.environ, "COLUMNS": "1000", "NO_COLOR": "1"},
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    # Molecule frames Ansible's output and may wrap it: compare words, not lines.
    output = " ".join(re.sub(r"\x1b\[[0-9;]*m|│|└|─", " ", result.stdout + result.stderr).split())
    if expect_failure:
        assert result.returncode != 0, "the converge should have failed"
        return output
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    print(f"\nre-converged ({tags}) with {sorted(settings)} in {time.monotonic() - started:.0f} s")
    wait_for_hub()
    return output


def wait_for_hub(timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = ["curl", "-ks", "-o", "/dev/null", "-w", "%{http_code}", "https://localhost/hub/health"]
        if box_exec(*health, check=False) == "200":
            return
        time.sleep(1)
    raise AssertionError("the hub did not come back after the re-converge")
