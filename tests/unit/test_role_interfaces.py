"""Every role input has a default in defaults/main.yml and a matching entry in
meta/argument_specs.yml, with the same default value and a description."""

from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir())
TYPES = {"str": str, "int": int, "bool": bool, "list": list, "dict": dict, "path": str, "float": (int, float)}


def load(role, relative):
    return yaml.safe_load((role / relative).read_text()) or {}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_and_argument_specs_agree(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options), "defaults/main.yml and meta/argument_specs.yml list different inputs"
    for name, spec in options.items():
        assert name.startswith(f"{role.name}_"), f"{name} does not carry the role's prefix"
        assert spec.get("description"), f"{name} has no description"
        assert spec.get("default") == defaults[name], f"{name}: the spec's default differs from defaults/main.yml"
        value = defaults[name]
        templated = isinstance(value, str) and "{{" in value
        if not templated:
            assert isinstance(value, TYPES[spec["type"]]), f"{name} default is not a {spec['type']}"
        if "choices" in spec:
            assert value in spec["choices"], f"{name} default is not one of its choices"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_role_has_a_readme_naming_each_input(role):
    readme = (role / "README.md").read_text()
    for name in load(role, "defaults/main.yml"):
        assert f"`{name}`" in readme, f"{role.name}/README.md does not document {name}"
