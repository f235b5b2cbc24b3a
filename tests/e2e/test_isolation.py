"""What a user's server can and cannot reach, tried from inside it the way a curious participant
would: code run in a kernel, opening connections."""

import json
import os
import subprocess
import sys

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
    """A listener the box would have anyway on a real VM: a service on all addresses (like sshd)."""
    unit = "pophub-test-anyport"
    box_exec("systemctl", "stop", unit, check=False)
    box_exec("systemctl", "reset-failed", unit, check=False)
    box_exec("systemd-run", f"--unit={unit}", "--working-directory=/tmp", "python3", "-m", "http.server", "2222",
             "--bind", "0.0.0.0")  # fmt: skip
    # It answers on the box itself, so a refusal from a container is the firewall's doing.
    box_exec("sh", "-c", "for i in $(seq 30); do curl -fs -o /dev/null http://127.0.0.1:2222/ && exit 0; sleep 0.5; "
             "done; exit 1")  # fmt: skip
    yield
    box_exec("systemctl", "stop", unit, check=False)


@pytest.fixture(scope="module")
def neighbour_user(hub_user):
    """Another participant, with their server running."""
    user = hub_user("e2e-neighbour")
    user.start_server()
    yield user
    user.stop_server()


@pytest.fixture(scope="module")
def neighbour(neighbour_user):
    (container,) = user_containers(neighbour_user.name)
    return container["NetworkSettings"]["Networks"]["pophub-users"]["IPAddress"]


def link_local(mac):
    """The IPv6 link-local address (EUI-64) a kernel gives an interface with this MAC address."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    return "fe80::" + ":".join(f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2))


# Read from a kernel: `docker exec` cannot enter a server whose processes changed their uid, where
# the box itself runs without CAP_SYS_PTRACE (as the test box does).
IPV6_ADDRESSES = "print(open('/proc/net/if_inet6').read(), end='')"
# A service on every IPv6 address, as a participant could start one; it outlives the kernel.
LISTEN_EVERYWHERE = """
import subprocess, sys
serve = "import socket, time; s = socket.create_server(('::', 9999), family=socket.AF_INET6); time.sleep(900)"
subprocess.Popen([sys.executable, "-c", serve], start_new_session=True)
"""
# A fresh interface's link-local address is usable once duplicate address detection is done.
DAD_WAIT = "import time; time.sleep(3)\n"
PROBE6 = """
import json, socket
results = {}
for name, host, port in %s:
    try:
        socket.create_connection((host + "%%eth0", port), timeout=3).close()
        results[name] = "open"
    except OSError as error:
        results[name] = type(error).__name__
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def ipv6_listeners(neighbour_user):
    """Services on every IPv6 address: in the neighbour's server, in a peer container on the user
    network started without pophub's settings (IPv6 on, as Docker makes it), and on the box's bridge."""
    neighbour_user.run_code(LISTEN_EVERYWHERE)
    (container,) = user_containers(neighbour_user.name)
    image = container["Config"]["Image"]
    box_exec("docker", "rm", "-f", "pophub-test-ipv6-peer", check=False)
    box_exec("docker", "run", "-d", "--rm", "--name", "pophub-test-ipv6-peer", "--network", "pophub-users",
             "--entrypoint", "python3", image, "-c", "exec(__import__('sys').argv[1])", LISTEN_EVERYWHERE + "\n"
             "__import__('time').sleep(900)")  # fmt: skip
    peer = json.loads(box_exec("docker", "inspect", "pophub-test-ipv6-peer"))[0]
    box_exec("systemctl", "stop", "pophub-test-ipv6", check=False)
    box_exec("systemctl", "reset-failed", "pophub-test-ipv6", check=False)
    box_exec("systemd-run", "--unit=pophub-test-ipv6", "--working-directory=/tmp",
             "python3", "-m", "http.server", "2223", "--bind", "::")  # fmt: skip
    interface = box_exec("docker", "network", "inspect", "pophub-users", "--format",
                         '{{index .Options "com.docker.network.bridge.name"}}').strip()  # fmt: skip
    yield {
        "image": image,
        "neighbour addresses": neighbour_user.run_code(IPV6_ADDRESSES),
        # The addresses their kernels give the interfaces wherever IPv6 is on.
        "neighbour": link_local(container["NetworkSettings"]["Networks"]["pophub-users"]["MacAddress"]),
        "peer": link_local(peer["NetworkSettings"]["Networks"]["pophub-users"]["MacAddress"]),
        "box": link_local(box_exec("cat", f"/sys/class/net/{interface}/address").strip()),
    }
    box_exec("docker", "rm", "-f", "pophub-test-ipv6-peer", check=False)
    box_exec("systemctl", "stop", "pophub-test-ipv6", check=False)


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


# Addresses past the box, as a cloud VM sees them: each is put on this machine's loopback (the machine
# that runs the test box) with a listener, so a server's packet must leave the box to get there,
# and no test traffic goes to an address that is not on this machine.
OFF_THE_BOX = {
    "EC2's metadata": METADATA,
    "Azure's wire server": "168.63.129.16",
    "Alibaba's metadata": "100.100.100.200",
    "a private address": "10.254.254.254",
    "an allowed private address": "10.254.254.253",
}
OFF_THE_BOX_PORT = 18080


@pytest.fixture(scope="module")
def off_the_box():
    if os.geteuid() != 0:
        pytest.skip("putting addresses on this machine's loopback needs root; the test did not run")
    listeners = []
    try:
        for address in OFF_THE_BOX.values():
            subprocess.run(["ip", "addr", "replace", f"{address}/32", "dev", "lo"], check=True)
            server = subprocess.Popen([sys.executable, "-m", "http.server", str(OFF_THE_BOX_PORT), "--bind", address],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            listeners.append(server)
        # The box reaches each of them: the path off the box is there, so a refusal is the firewall's.
        for address in OFF_THE_BOX.values():
            box_exec("sh", "-c", f"for i in $(seq 30); do curl -fs -o /dev/null http://{address}:{OFF_THE_BOX_PORT}/ "
                     "&& exit 0; sleep 0.5; done; exit 1")  # fmt: skip
        yield
    finally:
        for server in listeners:
            server.terminate()
        for address in OFF_THE_BOX.values():
            subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False, capture_output=True)


def test_past_the_box_servers_reach_neither_metadata_nor_private_addresses_but_the_allowed_ones(
    running_server, off_the_box
):
    reached = probe(running_server, [(name, address, OFF_THE_BOX_PORT) for name, address in OFF_THE_BOX.items()])
    # Refused at once (ICMP administratively prohibited), not left to time out.
    assert reached == {
        "EC2's metadata": "OSError",
        "Azure's wire server": "OSError",
        "Alibaba's metadata": "OSError",
        "a private address": "OSError",
        "an allowed private address": "open",
    }, reached
    # The box's resolver sits in a private range here (as a cloud's VPC resolver does): names resolve.
    resolved = running_server.run_code("import socket; print(bool(socket.getaddrinfo('pypi.org', 443)))")
    assert resolved.strip() == "True"


def test_other_users_servers_are_out_of_reach(running_server, neighbour):
    # Refused by the egress chain (the user network is a private range), else dropped by the network's
    # inter-container block: either way, never answered.
    assert probe(running_server, [("neighbour", neighbour, 8888)])["neighbour"] in ("OSError", "TimeoutError")


def test_servers_have_no_ipv6_so_nothing_crosses_the_ipv4_firewall(running_server, ipv6_listeners):
    ports = {"neighbour": 9999, "peer": 9999, "box": 2223}
    targets = [(name, ipv6_listeners[name], port) for name, port in ports.items()]
    # The hazard is real: a container with Docker's defaults reaches the peer over link-local IPv6,
    # past the user network's IPv4 firewall and its inter-container block.
    control = box_exec("docker", "run", "--rm", "--network", "pophub-users", "--entrypoint", "python3",
                       ipv6_listeners["image"], "-c", DAD_WAIT + PROBE6 % repr(targets[1:2]))  # fmt: skip
    assert json.loads(control) == {"peer": "open"}, control
    # A participant's server has no IPv6 at all, so none of it is reachable from there.
    assert running_server.run_code(IPV6_ADDRESSES) == "", "a server has IPv6 addresses"
    assert ipv6_listeners["neighbour addresses"] == "", "the neighbour's server has IPv6 addresses"
    reached = json.loads(running_server.run_code(PROBE6 % repr(targets)))
    assert "open" not in reached.values(), reached
    # Nor EC2's IPv6 metadata address: the connection fails in the server, before any packet leaves.
    assert probe(running_server, [("metadata", "fd00:ec2::254", 80)]) == {"metadata": "OSError"}


def test_the_container_has_no_privileges(running_server):
    (container,) = user_containers(running_server.name)
    host = container["HostConfig"]
    assert host["Privileged"] is False
    assert not host["CapAdd"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 1024
    assert host["CpuShares"] == 256, "servers weigh less than the box's own services"
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
