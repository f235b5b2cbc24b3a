"""What a user's server can and cannot reach, tried from inside it the way a curious participant
would: code run in a kernel, opening connections."""

import json

import pytest
from conftest import box_exec, server_processes, user_containers

GATEWAY = "172.28.0.1"
METADATA = "169.254.169.254"
PROBE = """
import json, socket
results = {}
for name, host, port in %s:
    try:
        socket.create_connection((host, port), timeout=3).close()
        results[name] = "open"
    except OSError as error:
        results[name] = type(error).__name__
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def box_services():
    """Listeners the box would have anyway on a real VM: a service on all addresses (like sshd)
    and a stand-in for the cloud metadata service (EC2's sits at 169.254.169.254)."""
    box_exec("ip", "addr", "replace", f"{METADATA}/32", "dev", "lo")
    for unit, argv in {
        "pophub-test-anyport": ["python3", "-m", "http.server", "2222", "--bind", "0.0.0.0"],
        "pophub-test-metadata": ["python3", "-m", "http.server", "80", "--bind", METADATA],
    }.items():
        box_exec("systemctl", "stop", unit, check=False)
        box_exec("systemctl", "reset-failed", unit, check=False)
        box_exec("systemd-run", f"--unit={unit}", "--working-directory=/tmp", *argv)
    # Both answer on the box itself, so a refusal from a container is the firewall's doing.
    for url in ("http://127.0.0.1:2222/", f"http://{METADATA}/"):
        box_exec("sh", "-c", f"for i in $(seq 30); do curl -fs -o /dev/null {url} && exit 0; sleep 0.5; done; exit 1")
    yield
    for unit in ("pophub-test-anyport", "pophub-test-metadata"):
        box_exec("systemctl", "stop", unit, check=False)
    box_exec("ip", "addr", "del", f"{METADATA}/32", "dev", "lo", check=False)


@pytest.fixture(scope="module")
def neighbour(hub_user):
    """Another participant's running server."""
    user = hub_user("e2e-neighbour")
    user.start_server()
    (container,) = user_containers(user.name)
    yield container["NetworkSettings"]["Networks"]["pophub-users"]["IPAddress"]
    user.stop_server()


def probe(server, targets):
    return json.loads(server.run_code(PROBE % repr(targets)))


def test_only_the_hub_and_postgresql_are_reachable_on_the_box(running_server, box_services):
    reached = probe(
        running_server,
        [
            ("hub api", GATEWAY, 8081),
            ("postgresql", GATEWAY, 5432),
            ("a service on all addresses", GATEWAY, 2222),
            ("proxy api", GATEWAY, 8001),
            ("nginx", GATEWAY, 443),
        ],
    )
    assert reached == {
        "hub api": "open",
        "postgresql": "open",
        "a service on all addresses": "TimeoutError",
        "proxy api": "TimeoutError",
        "nginx": "TimeoutError",
    }


def test_the_metadata_service_is_out_of_reach(running_server, box_services):
    assert probe(running_server, [("metadata", METADATA, 80)]) == {"metadata": "TimeoutError"}


def test_other_users_servers_are_out_of_reach(running_server, neighbour):
    assert probe(running_server, [("neighbour", neighbour, 8888)]) == {"neighbour": "TimeoutError"}


def test_the_container_has_no_privileges(running_server):
    (container,) = user_containers(running_server.name)
    host = container["HostConfig"]
    assert host["Privileged"] is False
    assert not host["CapAdd"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 1024
    assert host["Memory"] == 1024**3, "jupyterhub_mem_limit: 1G in the test inventory"
    # Started as root for the start-up hooks, then dropped for good: every uid is 1000, no capabilities.
    processes = server_processes(container["Id"])
    assert processes and all(uids == ["1000"] * 4 and caps == 0 for uids, caps, _ in processes), processes
    mounts = [m.get("Source", "") + " " + m.get("Destination", "") for m in container["Mounts"]]
    assert not any("docker.sock" in m for m in mounts), mounts
    whoami = running_server.run_code("import os; print(os.getuid(), os.path.exists('/var/run/docker.sock'))")
    assert whoami.split() == ["1000", "False"]


@pytest.mark.parametrize("image", ["pophub-test/debian:bookworm", "pophub/second:latest", "docker.io/library/alpine"])
def test_an_image_that_is_not_offered_is_refused(hub_user, image):
    user = hub_user("e2e-picky")
    response = user.api("POST", f"/users/{user.name}/server", json={"image": image})
    assert response.status_code == 400, response.text
    assert "not in allowed list" in response.json()["message"]
    assert user_containers(user.name) == []
