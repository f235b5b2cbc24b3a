"""From outside the box, only SSH, HTTP and HTTPS answer: a real TCP port scan of every port, run
from a second container on the network the box is on (as a stranger on the internet would)."""

import json
import subprocess

from conftest import BOX, box_exec

SCAN = """
import socket, sys
from concurrent.futures import ThreadPoolExecutor
host = sys.argv[1]
def is_open(port):
    with socket.socket() as s:
        s.settimeout(1.5)
        return port if s.connect_ex((host, port)) == 0 else None
with ThreadPoolExecutor(256) as pool:
    print(sorted(p for p in pool.map(is_open, range(1, 65536)) if p))
"""


def test_only_ssh_http_and_https_answer_from_outside():
    inspect = json.loads(subprocess.run(["docker", "inspect", BOX], capture_output=True, check=True).stdout)[0]
    (network, settings), *_ = inspect["NetworkSettings"]["Networks"].items()
    image = inspect["Config"]["Image"]
    scan = subprocess.run(
        ["docker", "run", "--rm", "--network", network, image, "python3", "-c", SCAN, settings["IPAddress"]],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    assert json.loads(scan.stdout) == [22, 80, 443]


def test_no_container_publishes_a_port(running_server):
    # A published port shows as host:port->port; an exposed one (8888/tcp) is not reachable from outside.
    ports = box_exec("docker", "ps", "--format", "{{.Names}} {{.Ports}}").splitlines()
    assert ports and not any("->" in line for line in ports), ports


def test_ssh_takes_keys_only_and_no_root():
    settings = dict(line.split(" ", 1) for line in box_exec("sshd", "-T").splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no"
    assert settings["permitrootlogin"] == "no"
    assert settings["port"] == "22"


def test_security_updates_install_themselves():
    config = box_exec("apt-config", "dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in config
    assert box_exec("systemctl", "is-enabled", "unattended-upgrades").strip() == "enabled"
