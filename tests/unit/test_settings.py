"""The event settings spec (src/pophub/settings.yml) and its checker, pophub.settings.

The spec, the defaults in playbooks/group_vars/all.yml, the example inventory and the README's
table must not drift apart; the checker's rules are tested here value by value (the preflight
harness in test_preflight.py runs them through Ansible)."""

import re
from pathlib import Path

import pytest
import yaml

from pophub import settings

ROOT = Path(__file__).resolve().parents[2]
SPEC = settings.load_spec()
ROLE_SPECS = settings.load_role_specs(ROOT / "roles")


def test_the_defaults_are_the_specs():
    """pophub_* defaults live in playbooks/group_vars/all.yml, a role's settings in its defaults."""
    group_vars = yaml.safe_load((ROOT / "playbooks/group_vars/all.yml").read_text())
    public = {name: value for name, value in group_vars.items() if not name.startswith("__")}
    shared = {name for name in SPEC if name.startswith(settings.PREFIX)}
    assert sorted(public) == sorted(shared), "playbooks/group_vars/all.yml and the spec list different settings"
    for name, entry in SPEC.items():
        role = settings.role_of(name, ROLE_SPECS)
        if role is None:
            assert name in shared, f"{name} is neither a pophub_* setting nor a role's"
            default = group_vars[name]
        else:
            default = yaml.safe_load((ROOT / f"roles/{role}/defaults/main.yml").read_text())[name]
            assert ROLE_SPECS[role][name]["default"] == entry["default"], f"{name}: the role's argument spec differs"
        assert default == entry["default"], f"{name}: its default is {default!r}, the spec says {entry['default']!r}"


@pytest.mark.parametrize("name", sorted(SPEC))
def test_every_setting_is_described_and_its_default_passes_its_own_spec(name):
    entry = SPEC[name]
    assert name.startswith(settings.PREFIX) or settings.role_of(name, ROLE_SPECS)
    assert entry.get("description", "").strip(), f"{name} has no description"
    default = entry["default"]
    if isinstance(default, str) and "{{" in default:
        return  # worked out by Ansible (inventory_dir)
    assert settings.check_value(name, default, entry) == [], f"the default of {name} fails its own spec"
    example = entry.get("example")
    templated = isinstance(example, str) and "{{" in example
    # Files in examples do not exist on this machine; everything else must pass.
    if example is not None and not templated and entry.get("format") != "file":
        assert settings.check_value(name, example, entry) == [], f"the example of {name} fails its spec"


def test_every_format_the_spec_names_exists():
    def formats(entry):
        for key in ("format", "key_format"):
            if key in entry:
                yield entry[key]
        for option in (entry.get("options") or {}).values():
            yield from formats(option)
        if isinstance(entry.get("values"), dict):
            yield from formats(entry["values"])

    used = {f for entry in SPEC.values() for f in formats(entry)}
    assert used <= set(settings.FORMATS), used - set(settings.FORMATS)


def test_the_example_inventory_names_every_setting():
    example = (ROOT / "inventory/example/group_vars/pophub.yml").read_text()
    missing = [name for name in SPEC if not re.search(rf"^(# ?)?{name}:", example, re.MULTILINE)]
    assert missing == [], f"inventory/example/group_vars/pophub.yml does not mention {missing}"
    # And every value it sets passes the spec (templated ones are Ansible's to work out).
    values = {k: v for k, v in yaml.safe_load(example).items() if not (isinstance(v, str) and "{{" in v)}
    # Except its two placeholder passwords, which are refused until the organizer sets their own.
    placeholders = ["jupyterhub_admin_password", "jupyterhub_shared_password"]
    found = settings.problems(values, SPEC, ROLE_SPECS)
    assert [problem.split(" ")[0] for problem in found] == placeholders, found
    assert all("still the example inventory's placeholder" in problem for problem in found)


def test_the_readme_table_is_the_specs():
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"<!-- settings:begin -->\n(.*?)<!-- settings:end -->", readme, re.DOTALL)
    assert table, "README.md has no settings table between its markers"
    assert table.group(1) == settings.markdown_table(SPEC), (
        "README.md's settings table differs from the spec: paste the output of "
        "`PYTHONPATH=src python -m pophub.settings --markdown` between the markers"
    )


def test_every_pophub_variable_the_playbooks_and_roles_read_is_in_the_spec():
    # Names the playbooks define themselves (play vars), not settings.
    own = {"pophub_verify_min_certificate_days", "pophub_verify_url", "pophub_settings"}  # + the lookup
    used = set()
    for path in [*ROOT.glob("playbooks/**/*.yml"), *ROOT.glob("templates/**/*.j2")]:
        used |= set(re.findall(r"\{\{[^}]*?\b(pophub_[a-z0-9_]+)", path.read_text()))
        used |= set(re.findall(r"^\s*(?:when|that):.*?\b(pophub_[a-z0-9_]+)", path.read_text(), re.MULTILINE))
    unknown = sorted(used - set(SPEC) - own)
    assert unknown == [], f"these are read but not in the spec: {unknown}"


# --- the checker, rule by rule ---------------------------------------------------------------
def problems_of(name, value):
    return settings.problems({name: value}, SPEC, ROLE_SPECS)


@pytest.mark.parametrize(
    "value",
    ["*-*-* 03:00:00", "daily", "Mon..Fri 08:00", "Sat,Sun *-*-* 02:30", "*:0/15", "2026-12-24 18:00:00 UTC", ""],
)
def test_calendar_times_systemd_takes_are_accepted(value):
    assert problems_of("backup_on_calendar", value) == []


@pytest.mark.parametrize("value", ["every night", "3am", "nightly at 3", "*-*-*"])
def test_calendar_times_in_words_are_refused(value):
    (problem,) = problems_of("backup_on_calendar", value)
    assert "systemd calendar time" in problem


@pytest.mark.parametrize(
    "value",
    ["https://github.com/org/data.git", "git@github.com:org/data.git", "ssh://git@host/org/data.git", "/srv/repo.git"],
)
def test_repositories_are_accepted(value):
    assert problems_of("workspace_git_repo", value) == []


@pytest.mark.parametrize(
    "value", ["-uhelp", "--upload-pack=id", "https://ann:token@github.com/org/d.git", "ftp://host/r.git", "a b"]
)
def test_repositories_that_are_options_or_carry_a_password_are_refused(value):
    (problem,) = problems_of("workspace_git_repo", value)
    assert "workspace_git_repo" in problem
    assert "token" not in problem or "no password or token" in problem


@pytest.mark.parametrize(
    ("subnet", "gateway", "ok"),
    [
        ("172.28.0.0/24", "172.28.0.1", True),
        ("10.0.0.0/8", "10.1.0.1", True),
        ("172.28.0.0/24", "172.28.9.1", False),
        ("172.28.0.0/24", "172.28.0.0", False),  # the network's own address
        ("172.28.0.0/24", "172.28.0.255", False),  # its broadcast
    ],
)
def test_the_gateway_lies_inside_the_user_network(subnet, gateway, ok):
    found = settings.problems({"pophub_user_subnet": subnet, "pophub_user_gateway": gateway}, SPEC)
    assert (found == []) is ok, found


def test_an_unknown_setting_gets_the_nearest_known_name():
    (problem,) = problems_of("pophub_user_subnt", "172.28.0.0/24")
    assert "did you mean pophub_user_subnet?" in problem


def test_a_setting_under_its_former_name_is_told_the_new_one():
    former = "pophub_" + "user_mem_limit"  # split, so no rename script ever rewrites it
    (problem,) = problems_of(former, "2G")
    assert problem == f"{former} is now called jupyterhub_mem_limit: rename it in the inventory (same value)."
    (problem,) = problems_of("pophub_" + "oidc_client_id", "pophub")
    assert "is now called jupyterhub_oauth_client_id" in problem


def test_an_unknown_setting_far_from_any_is_refused_without_a_guess():
    (problem,) = problems_of("pophub_colour_scheme", "dark")
    assert "is not a pophub setting:" in problem


def test_a_role_variable_is_checked_against_its_roles_argument_spec():
    assert problems_of("host_security_fail2ban_maxretry", 10) == []
    (problem,) = problems_of("host_security_fail2ban_maxretry", "ten")
    assert "host_security_fail2ban_maxretry is 'ten', which is not a whole number" in problem
    (problem,) = problems_of("jupyterhub_mem_limt", "2G")
    assert "did you mean jupyterhub_mem_limit?" in problem


def test_the_longest_role_prefix_wins():
    assert settings.role_of("event_image_images", {"event": {}, "event_image": {}}) == "event_image"


def test_secrets_are_never_repeated():
    secret = "hunter2-is-not-a-hash"
    found = settings.problems(
        {"jupyterhub_pam_users": [{"name": "alice", "password_hash": secret}], "jupyterhub_shared_password": 12345678},
        SPEC,
    )
    assert len(found) == 2
    assert all(secret not in p and "12345678" not in p for p in found), found


def test_every_problem_of_an_inventory_is_reported_at_once():
    found = settings.problems(
        {
            "pophub_domain": "https://hub.example.org",
            "pophub_https_port": "https",
            "event_image_images": [{"name": "python", "base": "python:3", "pip_pakages": []}],
        },
        SPEC,
    )
    assert len(found) == 3, found


def test_numbers_and_booleans_given_as_text_are_read_as_ansible_reads_them():
    assert problems_of("pophub_https_port", "8443") == []
    assert problems_of("jupyterhub_cpu_limit", "0.5") == []
    assert problems_of("jupyterhub_native_open_signup", "true") == []
    assert problems_of("jupyterhub_native_open_signup", "maybe") != []
    assert problems_of("pophub_https_port", True) != []


def test_unknown_keys_in_a_hook_are_named_with_the_known_ones():
    found = problems_of("workspace_start_hooks", [{"name": "x", "run_as": "user", "contents": "true"}])
    assert any("has the key 'contents' (did you mean content?)" in p for p in found), found
    assert any("needs exactly one of content or src" in p for p in found), found


def test_plain_turns_ansibles_subclasses_into_plain_data():
    class Tagged(str):
        pass

    value = settings.plain({Tagged("a"): [Tagged("b"), 1, True, None]})
    assert value == {"a": ["b", 1, True, None]}
    assert type(next(iter(value))) is str and type(value["a"][0]) is str


def test_a_users_file_is_read_line_by_line(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# the participants\nann\n\nben\nthe organizer\nann\n")
    found = problems_of("jupyterhub_users_file", str(users))
    looks_like = settings.FORMATS["username"][1]
    assert found == [
        f"jupyterhub_users_file ({users}) line 5 is 'the organizer': put one name a line, {looks_like}.",
        f"jupyterhub_users_file ({users}) lists 'ann' twice (lines 2 and 6).",
    ]
    users.write_text("ann\nben\n")
    assert problems_of("jupyterhub_users_file", str(users)) == []


def test_the_controller_tests_the_hub_with_the_versions_the_box_installs():
    """pyproject.toml pins the hub's packages for the unit tests; they must be the box's."""
    pins = dict(
        re.findall(r'"([a-z-]+)(?:\[[a-z]+\])?==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    )  # name -> version
    group_vars = yaml.safe_load((ROOT / "playbooks/group_vars/all.yml").read_text())
    assert pins["jupyterhub"] == group_vars["__pophub_jupyterhub_version"]
    hub = yaml.safe_load((ROOT / "roles/jupyterhub/defaults/main.yml").read_text())["jupyterhub_pip_packages"]
    for requirement in hub:
        name, _, version = requirement.partition("==")
        name = re.sub(r"\[.*\]", "", name)
        if "{{" not in version:
            assert pins.get(name) == version, f"the box installs {requirement}, pyproject.toml pins {pins.get(name)}"


def test_the_allowed_names_take_in_the_users_file_once_each(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# the class\nben\nann\n\ncleo\n")
    effective = settings.effective(
        {"jupyterhub_allowed_users": ["ann", "dev"], "jupyterhub_users_file": str(users)}, SPEC
    )
    assert settings.allowed_users(effective) == ["ann", "dev", "ben", "cleo"]
    assert settings.allowed_users(settings.effective({}, SPEC)) == []
