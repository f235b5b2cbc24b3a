"""The organizer's event-day commands (bin/pophub <command> -i inventory/<event>, which runs
playbooks/<command>.yml), run from this machine against the box as an organizer runs them: status
sees a server a test started and a unit a test broke, announce changes every page without a
restart, logs show a stopped server's output, unban lifts a ban, stop stops, and bad input gets
a sentence."""

import json
import subprocess
import sys
import time

import pytest
import requests
from conftest import ROOT, SETTINGS, box_exec, event_inventory

SYNC_DROPIN = "/run/systemd/system/pophub-git-sync.service.d/zz-pophub-test-broken.conf"


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    return event_inventory(tmp_path_factory.mktemp("inventory"))


def pophub(inventory, command, *arguments):
    """bin/pophub's event-day front door (python -m pophub.eventday): (exit code, output, errors)."""
    done = subprocess.run(
        [sys.executable, "-m", "pophub.eventday", command, "-i", str(inventory), *arguments],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def hub_pid():
    return box_exec("systemctl", "show", "-p", "MainPID", "--value", "jupyterhub.service").strip()


@pytest.fixture
def broken_sync():
    """The git sync's service failing, as a repository gone wrong would leave it."""
    box_exec("mkdir", "-p", SYNC_DROPIN.rsplit("/", 1)[0])
    box_exec("sh", "-c", f"printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n' >{SYNC_DROPIN}")
    box_exec("systemctl", "daemon-reload")
    box_exec("systemctl", "start", "pophub-git-sync.service", check=False)
    yield
    box_exec("rm", "-f", SYNC_DROPIN)
    box_exec("systemctl", "daemon-reload")
    box_exec("systemctl", "reset-failed", "pophub-git-sync.service", check=False)


def test_status_shows_a_running_server_with_its_memory_and_a_failing_unit(inventory, running_server, broken_sync):
    started = time.monotonic()
    code, output, errors = pophub(inventory, "status", "--json")
    took = time.monotonic() - started
    assert code == 0, errors
    found = json.loads(output)
    (server,) = [entry for entry in found["servers"] if entry["user"] == running_server.name]
    assert server["ready"] and server["memory_limit"] == "1GiB", server  # jupyterhub_mem_limit: 1G
    assert server["memory"].endswith(("MiB", "KiB", "GiB")) and server["image"], server
    assert found["units"]["git sync"]["failing"], found["units"]["git sync"]
    assert not found["units"]["hub"]["failing"] and not found["units"]["nginx"]["failing"], found["units"]
    assert 360 <= found["certificate"]["days_left"] <= 366, found["certificate"]
    assert "pophub-hub-login" in found["bans"]
    code, screen, errors = pophub(inventory, "status")
    assert code == 0, errors
    assert "FAILING" in next(line for line in screen.splitlines() if line.strip().startswith("git sync")), screen
    assert running_server.name in screen and "1GiB" in screen, screen
    print(f"\nstatus: {found['took_seconds']} s on the box, {took:.1f} s with ansible-playbook around it")


def login_page(hub_url, cafile):
    return requests.get(f"{hub_url}/hub/login", verify=cafile, timeout=30).text


def test_announce_changes_every_page_at_once_without_a_restart(inventory, hub_url, cafile):
    pid = hub_pid()
    try:
        code, output, errors = pophub(inventory, "announce", "Lunch is at 12:30 <in the hall>")
        assert code == 0, errors
        assert "Every hub page now shows" in output
        page = login_page(hub_url, cafile)
        assert "Lunch is at 12:30 &lt;in the hall&gt;" in page and "The room changes at 2 pm" not in page
        code, output, errors = pophub(inventory, "announce", "--clear")
        assert code == 0, errors
        assert 'id="pophub-announcement"' not in login_page(hub_url, cafile)
    finally:
        code, output, errors = pophub(inventory, "announce", "--reset")
    assert code == 0, errors
    assert "The room changes at 2 pm &amp; &lt;b&gt;not&lt;/b&gt; before" in login_page(hub_url, cafile)
    assert hub_pid() == pid, "the hub restarted"


def test_logs_show_a_stopped_servers_output(inventory, hub_user):
    user = hub_user("e2e-logs-ana")
    user.start_server()
    user.stop_server()
    code, output, errors = pophub(inventory, "logs", user.name)
    assert code == 0, errors
    assert "Jupyter Server" in output and "is running at" in output, output[-2000:]
    code, output, errors = pophub(inventory, "logs", "hub", "--lines", "20")
    assert code == 0 and "JupyterHub" in output, errors


def test_unban_lifts_a_ban_and_an_address_not_banned_gets_a_sentence(inventory):
    address = "203.0.113.99"  # only ever named in fail2ban's list: no traffic goes there
    box_exec("fail2ban-client", "set", "pophub-hub-login", "banip", address)
    try:
        code, output, errors = pophub(inventory, "unban", address)
        assert code == 0, errors
        assert f"{address} may log in again" in output
        assert address not in box_exec("fail2ban-client", "status", "pophub-hub-login")
    finally:
        box_exec("fail2ban-client", "set", "pophub-hub-login", "unbanip", address, check=False)
    code, output, errors = pophub(inventory, "unban", address)
    assert code != 0 and f"{address} is not banned" in errors, errors


def test_stop_stops_a_users_server_and_all_of_them_keeping_homes(inventory, hub_user):
    ana, bo = hub_user("e2e-stop-ana"), hub_user("e2e-stop-bo")
    for user in (ana, bo):
        user.start_server()
    ana.run_code("open('kept.txt', 'w').write('kept')")
    code, output, errors = pophub(inventory, "stop", ana.name)
    assert code == 0, errors
    assert f"Stopped 1 server(s): {ana.name}" in output
    code, output, errors = pophub(inventory, "stop", "--all", "--yes")
    assert code == 0, errors
    assert bo.name in output and ana.name not in output, output
    ana.start_server()
    try:
        assert ana.run_code("print(open('kept.txt').read())").strip() == "kept"
    finally:
        ana.stop_server()


@pytest.mark.parametrize(
    ("arguments", "sentence"),
    [
        (("stop", "nobody-by-this-name"), "There is no user 'nobody-by-this-name' on this hub"),
        (("logs", "nobody-by-this-name"), "There is no user 'nobody-by-this-name' on this hub"),
        (("announce", "x" * 501), "keep it to 500 or fewer"),
    ],
)
def test_bad_input_gets_a_sentence(inventory, arguments, sentence):
    code, _output, errors = pophub(inventory, *arguments)
    assert code != 0 and sentence in errors, errors


def test_an_inventory_that_is_not_a_pophub_one_gets_a_sentence(tmp_path):
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    somewhere:\n      ansible_connection: local\n")
    code, _output, errors = pophub(tmp_path / "hosts.yml", "status")
    assert code != 0 and "is not a pophub inventory: it has no host in the group pophub" in errors, errors


def test_restart_hub_leaves_running_servers_alone(inventory, hub_user, hub_url, cafile):
    user = hub_user("e2e-restart-cy")  # its own: stop --all above stopped the others
    user.start_server()
    try:
        kernel_pid = user.run_code("import os; print(os.getppid())")
        pid = hub_pid()
        code, output, errors = pophub(inventory, "restart-hub")
        assert code == 0, errors
        assert "running servers were left alone" in output
        assert hub_pid() != pid
        # The same server, not a new one: its processes were never restarted.
        assert user.run_code("import os; print(os.getppid())") == kernel_pid
        assert SETTINGS["jupyterhub_event_name"] in login_page(hub_url, cafile)
    finally:
        user.stop_server()
