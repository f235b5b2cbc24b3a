"""The Molecule scenarios: what they share is written once (.config/molecule/config.yml, which
Molecule merges under every molecule/*/molecule.yml), and the boxes' platform recipe, which each
scenario must name in full (Molecule replaces lists when it merges), is the same in every scenario."""

from pathlib import Path

import pytest
import yaml
from molecule.util import merge_dicts

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / ".config/molecule/config.yml"
SCENARIOS = sorted(path.parent.name for path in (ROOT / "molecule").glob("*/molecule.yml"))
# How a box is made on these machines (BUILD-MACHINE.md): every scenario's box, whatever its release.
RECIPE = ("pre_build_image", "command", "capabilities", "security_opts", "cgroupns_mode", "tmpfs")


def scenario(name):
    return yaml.safe_load((ROOT / "molecule" / name / "molecule.yml").read_text())


def merged(name):
    """The scenario's configuration as Molecule merges it (the same function), before interpolation."""
    return merge_dicts(yaml.safe_load(BASE.read_text()), scenario(name))


def test_the_scenarios_are_found():
    assert {"default", "debian13", "conda"} <= set(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_what_is_shared_is_not_written_again(name):
    base, own = yaml.safe_load(BASE.read_text()), scenario(name)
    for key in ("prerun", "dependency", "driver", "verifier"):
        assert key not in own, f"molecule/{name}/molecule.yml repeats {key}, which {BASE.name} sets for every scenario"
    for key in ("name", "config_options", "env"):
        assert key not in own.get("provisioner", {}), f"molecule/{name}/molecule.yml repeats provisioner.{key}"
    assert base["driver"] == {"name": "docker"}


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_gets_the_shared_settings(name):
    config = merged(name)
    assert config["prerun"] is False and config["dependency"]["enabled"] is False
    # Pipelining as the docker connection reads it: from [connection], not [ssh_connection].
    assert config["provisioner"]["config_options"]["connection"]["pipelining"] is True
    assert config["provisioner"]["env"]["ANSIBLE_ROLES_PATH"] == "${MOLECULE_PROJECT_DIRECTORY}/roles"
    assert "destroy" in config["scenario"]["test_sequence"]


@pytest.mark.parametrize("name", [name for name in SCENARIOS if name != "default"])
def test_every_box_is_made_the_same_way(name):
    (reference,) = scenario("default")["platforms"]
    for platform in scenario(name)["platforms"]:
        for key in RECIPE:
            assert platform.get(key) == reference[key], f"molecule/{name}: {platform['name']}'s {key} differs"
        assert "/sys/fs/cgroup:/sys/fs/cgroup:rw" in platform["volumes"]
