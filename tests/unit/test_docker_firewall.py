"""The user network's firewall script, rendered from the docker role and run against a recording
iptables: the order of its rules is what decides what a server reaches past the box."""

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def firewall(tmp_path_factory):
    work = tmp_path_factory.mktemp("firewall")
    overrides = work / "overrides.json"
    overrides.write_text(json.dumps({"docker_user_network_allowed_destinations": ["10.0.12.5/32"]}))
    subprocess.run(
        ["ansible-playbook", str(ROOT / "tests/unit/render_template.yml"), "-e", "role=docker",
         "-e", "template=usr/local/sbin/pophub-firewall.j2", "-e", f"dest={work / 'pophub-firewall'}",
         "-e", f"@{overrides}"],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    return work / "pophub-firewall"


def run(firewall, tmp_path, resolv_conf):
    """The script's iptables calls, with `iptables -C` finding nothing (a box with no rules yet)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "iptables").write_text(f'#!/bin/sh\necho "$*" >>{calls}\n[ "$1" != -C ]\n')
    (bin_dir / "iptables").chmod(0o755)
    (tmp_path / "resolv.conf").write_text(resolv_conf)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "POPHUB_RESOLV_CONF": str(tmp_path / "resolv.conf")}
    subprocess.run(["sh", str(firewall)], check=True, env=env)
    return [line for line in calls.read_text().splitlines() if "POPHUB-EGRESS" in line]


def test_the_script_passes_shellcheck(firewall):
    subprocess.run(["shellcheck", str(firewall)], check=True)


def test_exceptions_and_the_resolvers_pass_before_the_private_ranges_and_metadata_are_refused(firewall, tmp_path):
    rules = run(firewall, tmp_path, "search example.org\nnameserver 10.0.0.2\nnameserver 127.0.0.53\n")
    egress = [rule for rule in rules if rule.startswith("-A POPHUB-EGRESS")]
    assert egress[:3] == [
        "-A POPHUB-EGRESS -d 10.0.12.5/32 -j RETURN",
        "-A POPHUB-EGRESS -d 10.0.0.2 -p udp --dport 53 -j RETURN",
        "-A POPHUB-EGRESS -d 10.0.0.2 -p tcp --dport 53 -j RETURN",
    ], "127.0.0.53 (systemd-resolved's stub) is the box's own, not a destination past it"
    refused = [rule.split()[3] for rule in egress[3:]]
    assert refused == ["169.254.0.0/16", "168.63.129.16/32", "100.100.100.200/32", "10.0.0.0/8", "172.16.0.0/12",
                       "192.168.0.0/16", "100.64.0.0/10"]  # fmt: skip
    assert all(rule.endswith("-j REJECT --reject-with icmp-admin-prohibited") for rule in egress[3:])
    assert "-I DOCKER-USER -i pophub0 -j POPHUB-EGRESS" in rules
    assert rules[0] == "-N POPHUB-EGRESS", "the chain is made (or emptied) before it is filled"
