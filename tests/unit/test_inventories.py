"""The inventories under inventory/ are ones pophub accepts, and an event's staging and production
boxes are the same event.

An event directory with a hosts.yml is one inventory (inventory/example, inventory/demo); one
without holds an inventory file per box over shared group_vars (inventory/summer-school/staging.yml
and production.yml). Each is read the way ansible-playbook reads it: `ansible-inventory --list`,
which merges the group_vars into each host. No vault password is used: files encrypted with
ansible-vault (an event's group_vars/<box>/vault.yml) are left out of a copy of inventory/, and the
vault variables the settings refer to, like settings encrypted in place (`!vault`), get stand-in
values. So these tests run in CI jobs that hold no deploy secrets.

Each box also goes through the real preflight of playbooks/site.yml, reached over a Docker connection
to a container that does not exist: a box that passes preflight shows up as unreachable at the first
task after it, and one that fails shows the preflight task and its message."""

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest
from ansible_json import failures

from pophub import settings as spec_of_settings

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventory"
BIN = Path(sys.executable).parent
ANSIBLE_INVENTORY = shutil.which("ansible-inventory", path=str(BIN)) or "ansible-inventory"
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=str(BIN)) or "ansible-playbook"
# Every organizer setting and its default (pophub_* and role settings alike: the spec has both).
DEFAULTS = spec_of_settings.defaults(spec_of_settings.load_spec())
ROLE_SPECS = spec_of_settings.load_role_specs(ROOT / "roles")
KNOWN = set(DEFAULTS)
SECRETS = {name for name in KNOWN if re.search(r"_(password|secret)$", name)}
VAULT_REFERENCE = re.compile(r"^\{\{\s*(vault_[A-Za-z0-9_]+)\s*\}\}$")

# What may differ between two boxes of one event: where the box is (its name and certificate), its
# own OAuth client and passwords, who may log in, and how much each server may use (a staging VM is
# often smaller). Everything else is the event itself; if staging ran another event, a change that
# worked there would prove nothing about production.
MAY_DIFFER = {
    "pophub_domain",
    "pophub_https_port",
    "nginx_tls_mode",
    "nginx_tls_certificate",
    "nginx_tls_private_key",
    "nginx_selfsigned_extra_names",
    "jupyterhub_oauth_client_id",
    "jupyterhub_oauth_client_secret",
    "jupyterhub_shared_password",
    "jupyterhub_admin_password",
    "jupyterhub_allowed_users",
    "jupyterhub_users_file",
    "jupyterhub_github_allowed_organizations",
    "jupyterhub_oidc_allowed_groups",
    "jupyterhub_mem_limit",
    "jupyterhub_cpu_limit",
    "jupyterhub_idle_timeout",
}
# The demo's base image tarball and CA files are made on this machine by `bin/pophub demo`, so its
# preflight result depends on what ran here before; its settings are still read and checked.
NO_PREFLIGHT = {"demo"}
# Inventories whose passwords are placeholders an organizer must replace.
OWN_PASSWORDS = {"example": ("jupyterhub_shared_password", "jupyterhub_admin_password")}


def discover():
    """inventory id -> (path, event, box): box is None for a one-box event with a hosts.yml."""
    found = {}
    for event in sorted(path for path in INVENTORY.iterdir() if path.is_dir()):
        if (event / "hosts.yml").is_file():
            found[event.name] = (event, event.name, None)
        else:
            for box in sorted(event.glob("*.yml")):
                found[f"{event.name}/{box.stem}"] = (box, event.name, box.stem)
    return found


INVENTORIES = discover()
BOXES = {name: spec for name, spec in INVENTORIES.items() if spec[2] is not None}
EVENTS = sorted({event for _, event, _ in BOXES.values()})
PAIRS = [
    pytest.param(event, a, b, id=f"{event}:{a}-{b}")
    for event in EVENTS
    for a, b in combinations(sorted(box for _, ev, box in BOXES.values() if ev == event), 2)
]


def is_vault_file(path):
    with open(path, "rb") as handle:
        return handle.read(14) == b"$ANSIBLE_VAULT"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of inventory/ without vault-encrypted files, and an ansible.cfg with JSON output."""
    tmp = tmp_path_factory.mktemp("inventories")

    def ignore(directory, names):
        # Vaults cannot be read without their password; z2jh-values*.yaml are generated output.
        return [
            name for name in names
            if (Path(directory, name).is_file() and is_vault_file(Path(directory, name)))
            or name.startswith("z2jh-values")
        ]  # fmt: skip

    shutil.copytree(INVENTORY, tmp / "inventory", ignore=ignore)
    config = tmp / "ansible.cfg"
    config.write_text(
        f"[defaults]\nroles_path = {ROOT / 'roles'}\nstdout_callback = ansible.posix.json\n"
        "fact_caching = memory\ninterpreter_python = auto_silent\n"
    )
    vault_settings = ("ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_IDENTITY_LIST")
    env = {key: value for key, value in os.environ.items() if key not in vault_settings}
    env["ANSIBLE_CONFIG"] = str(config)
    return tmp, env


def copied(workdir, name):
    return workdir[0] / INVENTORIES[name][0].relative_to(ROOT)


@pytest.fixture(scope="module")
def listed(workdir):
    """inventory id -> the output of `ansible-inventory --list`."""
    _, env = workdir
    runs = {
        name: subprocess.Popen(
            [ANSIBLE_INVENTORY, "-i", str(copied(workdir, name)), "--list"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in INVENTORIES
    }
    result = {}
    for name, run in runs.items():
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, f"ansible-inventory could not read inventory/{name}:\n{err}"
        result[name] = json.loads(out)
    return result


def group_hosts(listing, group):
    """Every host in group and in the groups under it."""
    entry = listing.get(group, {})
    hosts = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts |= group_hosts(listing, child)
    return hosts


def box_vars(listing):
    """The single host of a box inventory, and its merged variables."""
    hosts = listing["_meta"]["hostvars"]
    assert len(hosts) == 1, f"a box's inventory holds one host, not {sorted(hosts)}"
    (host, variables), = hosts.items()  # fmt: skip
    return host, variables


def settings(variables):
    """The event settings among an inventory's variables: what the spec lists, and anything that
    looks like a setting (pophub_*, or named after a role) so that a misspelled one is caught."""
    return {
        key: value for key, value in variables.items()
        if key in KNOWN or key.startswith("pophub_") or spec_of_settings.role_of(key, ROLE_SPECS)
    }  # fmt: skip


def vault_names(value):
    """The vault_* variables a setting's value refers to."""
    return set(re.findall(r"\{\{[^}]*?\b(vault_[A-Za-z0-9_]+)", json.dumps(value)))


def encrypted_in_place(value):
    """Whether a value is an `ansible-vault encrypt_string` one, as ansible-inventory lists it."""
    return isinstance(value, dict) and set(value) == {"__ansible_vault"}


def stand_in(name):
    """A value for a secret nobody here may read: long enough for any password check, one per name."""
    return f"stand-in-for-{name}-".ljust(48, "x")


@pytest.fixture(scope="module")
def preflight(workdir, listed):
    """inventory id -> (exit code, the JSON report of site.yml run against a box that does not exist)."""
    _, env = workdir
    runs = {}
    for name in INVENTORIES:
        if name in NO_PREFLIGHT:
            continue
        stand_ins = set()
        for variables in listed[name]["_meta"]["hostvars"].values():
            stand_ins |= vault_names(variables)
            stand_ins |= {key for key, value in variables.items() if encrypted_in_place(value)}
        extra = [f"-e{secret}={stand_in(secret)}" for secret in sorted(stand_ins)]
        # The example's published passwords are refused (test_preflight.py): here they are replaced, as
        # the example's comments tell an organizer to.
        extra += [f"-e{secret}={stand_in(secret)}" for secret in sorted(OWN_PASSWORDS.get(name, ()))]
        runs[name] = subprocess.Popen(
            [ANSIBLE_PLAYBOOK, "-i", str(copied(workdir, name)), str(ROOT / "playbooks/site.yml"),
             "-e", "ansible_connection=community.docker.docker", "-e", "ansible_host=pophub-no-such-box", *extra],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    result = {}
    for name, run in runs.items():
        out, err = run.communicate(timeout=600)
        try:
            result[name] = (run.returncode, json.loads(out))
        except json.JSONDecodeError:
            pytest.fail(f"ansible-playbook on inventory/{name} gave no report (exit {run.returncode}):\n{err}")
    return result


@pytest.mark.parametrize("name", sorted(INVENTORIES))
def test_the_inventory_has_a_pophub_box(listed, name):
    hosts = group_hosts(listed[name], "pophub")
    assert hosts, f"inventory/{name} puts no host in the pophub group, which every playbook runs on"
    assert hosts == set(listed[name]["_meta"]["hostvars"]), f"inventory/{name} has hosts outside pophub"


@pytest.mark.parametrize("name", sorted(INVENTORIES))
def test_the_inventory_sets_only_known_settings(listed, name):
    unknown = {}
    for variables in listed[name]["_meta"]["hostvars"].values():
        # A role's other variables (say host_security_fail2ban_maxretry) may be set too.
        role_variables = {name for options in ROLE_SPECS.values() for name in options}
        for key in settings(variables).keys() - KNOWN - role_variables:
            unknown[key] = difflib.get_close_matches(key, KNOWN, n=1)
    assert not unknown, (
        f"inventory/{name} sets settings neither src/pophub/settings.yml nor a role knows (did you mean): {unknown}"
    )


@pytest.mark.parametrize("name", sorted(BOXES))
def test_secrets_of_an_event_are_vault_references(listed, name):
    _, variables = box_vars(listed[name])
    plain = {
        key: value for key, value in settings(variables).items()
        if key in SECRETS and value and not encrypted_in_place(value) and not VAULT_REFERENCE.match(str(value))
    }  # fmt: skip
    assert not plain, (
        f'inventory/{name} has secrets in plain text; write them as "{{{{ vault_<name> }}}}" and put vault_<name> '
        f"in the box's vault.yml (or encrypt them with ansible-vault encrypt_string): {plain}"
    )


@pytest.mark.parametrize("name", sorted(BOXES))
def test_each_box_is_in_the_group_of_its_file(listed, name):
    _, event, box = BOXES[name]
    host, _ = box_vars(listed[name])
    others = {other for _, ev, other in BOXES.values() if ev == event and other != box}
    assert host in group_hosts(listed[name], box), f"{host} is not in the group {box}, so group_vars/{box}/ misses it"
    for other in others:
        assert host not in group_hosts(listed[name], other), f"{host} of {name}.yml is in the group {other}"


@pytest.mark.parametrize(("event", "a", "b"), PAIRS)
def test_boxes_of_one_event_share_its_settings(listed, event, a, b):
    _, vars_a = box_vars(listed[f"{event}/{a}"])
    _, vars_b = box_vars(listed[f"{event}/{b}"])
    # A setting left out on one side is its default there: compare against that.
    full_a = {**DEFAULTS, **settings(vars_a)}
    full_b = {**DEFAULTS, **settings(vars_b)}
    differ = {key for key in KNOWN if full_a.get(key) != full_b.get(key)}
    assert differ - MAY_DIFFER == set(), (
        f"{event}'s {a} and {b} boxes differ in event settings, which belong in its group_vars/pophub.yml: "
        + "; ".join(f"{key}: {full_a.get(key)!r} vs {full_b.get(key)!r}" for key in sorted(differ - MAY_DIFFER))
    )
    print(f"{event}: {a} and {b} differ in {sorted(differ)}")


@pytest.mark.parametrize(("event", "a", "b"), PAIRS)
def test_boxes_of_one_event_are_boxes_of_their_own(listed, event, a, b):
    host_a, vars_a = box_vars(listed[f"{event}/{a}"])
    host_b, vars_b = box_vars(listed[f"{event}/{b}"])
    full_a = {**DEFAULTS, **vars_a}
    full_b = {**DEFAULTS, **vars_b}
    assert host_a != host_b
    assert full_a.get("ansible_host", host_a) != full_b.get("ansible_host", host_b), "both boxes are one machine"
    assert full_a["pophub_domain"] != full_b["pophub_domain"], f"{a} and {b} have one pophub_domain"
    # An OAuth app has one callback URL, on one domain: each box needs an app of its own.
    auth = full_a["jupyterhub_authenticator"]
    if auth in ("github", "oidc"):
        key = "jupyterhub_oauth_client_id"
        assert full_a[key] != full_b[key], f"{a} and {b} share {key}, but its callback URL names one domain"


@pytest.mark.parametrize("name", sorted(set(INVENTORIES) - NO_PREFLIGHT))
def test_the_inventory_passes_preflight(preflight, name):
    code, report = preflight[name]
    reached = {host: (task, result.get("msg", "")) for host, (task, result) in failures(report).items()}
    assert reached, f"inventory/{name}: the run neither failed nor reached for a box, so it proves nothing"
    for host, (task, message) in reached.items():
        assert not task.startswith("preflight | "), f"inventory/{name}: {host} failed {task}: {message}"
        assert report["stats"][host]["failures"] == 0, f"inventory/{name}: {host} failed at {task}: {message}"
        assert report["stats"][host]["unreachable"] == 1, f"inventory/{name}: {host} stopped at {task}: {message}"
    assert code == 4, f"inventory/{name}: ansible-playbook exited {code}, not 4 (unreachable only)"
