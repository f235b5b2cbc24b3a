"""The conda role: its rendered .condarc, its pins, the hub's environment file, bad input refused,
check mode where the installer is unreachable, and real runs on this machine (connection local,
everything under tmp_path) against a stand-in installer.

The stand-in installs a stand-in `conda` that records its calls: it proves the role's own logic
(checksum refusal, batch install, create, update with --prune, idempotence, check mode on an
installed box), not that real conda accepts those calls. The build machine reaches neither
GitHub nor conda-forge; molecule/conda runs real Miniforge where they are reachable."""

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ROLE = ROOT / "roles/conda"
HUB_ENVIRONMENT = ROOT / "templates/conda/hub-environment.yml"
REACHABLE = ROOT / "molecule/conda/reachable.sh"
BIN = Path(sys.executable).parent
UNREACHABLE = "https://127.0.0.1:9/Miniforge3.sh"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the role sets root ownership on what it writes")

# Accepts `-b -p PREFIX` like Miniforge's installer and, like it, refuses an existing prefix.
STAND_IN_INSTALLER = r"""#!/bin/bash
set -eu
[ "$1" = -b ] && [ "$2" = -p ] || { echo "expected -b -p PREFIX, got $*" >&2; exit 2; }
prefix=$3
[ ! -e "$prefix" ] || { echo "ERROR: File or directory already exists: '$prefix'" >&2; exit 1; }
mkdir -p "$prefix/bin"
cat >"$prefix/bin/conda" <<'CONDA'
#!/bin/bash
# Stand-in conda. Takes: env create|update --quiet --prefix P --file F [--prune]
set -eu
echo "$*" >>"$(dirname "$0")/../calls.log"
[ "$1" = --version ] && { echo "conda 0.0.0-stand-in"; exit 0; }
action=$2 prefix=$5 file=$7
mkdir -p "$prefix/conda-meta"
# Like conda, write history only when the environment really changes.
if [ "$action" = create ] || ! cmp -s "$file" "$prefix/conda-meta/spec"; then
  cp "$file" "$prefix/conda-meta/spec"
  echo "==> $action from $file <==" >>"$prefix/conda-meta/history"
fi
CONDA
chmod +x "$prefix/bin/conda"
"""


def ansible_config(tmp_path):
    """The project's settings, with JSON output and no fact cache shared with other runs."""
    config = tmp_path / "ansible.cfg"
    config.write_text(
        f"[defaults]\nroles_path = {ROOT / 'roles'}\nstdout_callback = ansible.posix.json\n"
        "fact_caching = memory\ngathering = implicit\n"
    )
    return {**os.environ, "ANSIBLE_CONFIG": str(config)}


def run_role(tmp_path, role_vars, *extra):
    """Applies the conda role to this machine; returns (exit code, JSON report)."""
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Apply the conda role",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": True,
                    "gather_subset": ["min"],
                    "roles": ["conda"],
                }
            ]
        )
    )
    (tmp_path / "vars.json").write_text(json.dumps({**role_vars, "ansible_python_interpreter": sys.executable}))
    result = subprocess.run(
        [BIN / "ansible-playbook", "-i", "localhost,", play, "-e", f"@{tmp_path / 'vars.json'}", *extra],
        cwd=ROOT, env=ansible_config(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


def stats(report):
    return report["stats"]["localhost"]


def task_results(report):
    """task name (without the role's prefix) -> result on localhost."""
    return {
        task["task"]["name"].removeprefix("conda : "): task["hosts"]["localhost"]
        for play in report["plays"]
        for task in play["tasks"]
    }


def failure_messages(report):
    messages = []
    for result in task_results(report).values():
        if result.get("failed"):
            messages.append(result.get("msg", ""))
            messages += [item.get("msg", "") for item in result.get("results", []) if item.get("failed")]
    return " ".join(messages)


def render(tmp_path, template, overrides=None):
    (tmp_path / "overrides.json").write_text(json.dumps(overrides or {}))
    dest = tmp_path / template.removesuffix(".j2")
    subprocess.run(
        [
            BIN / "ansible-playbook", HERE / "render_template.yml",
            "-e", "role=conda", "-e", f"template={template}", "-e", f"dest={dest}",
            "-e", f"@{tmp_path / 'overrides.json'}",
        ],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return dest


def load(relative):
    return yaml.safe_load((ROLE / relative).read_text())


# --- Rendered files and pins ------------------------------------------------------------------


def test_condarc_has_conda_forge_only_and_strict_priority(tmp_path):
    text = render(tmp_path, "condarc.j2").read_text()
    condarc = yaml.safe_load(text)
    assert condarc["channels"] == ["conda-forge"]
    assert condarc["channel_priority"] == "strict"
    assert "ssl_verify" not in condarc
    assert "defaults" not in text


def test_condarc_takes_a_mirror_and_a_ca_bundle(tmp_path):
    mirror = "https://mirror.example.org/conda-forge"
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    condarc = yaml.safe_load(
        render(tmp_path, "condarc.j2", {"conda_channels": [mirror], "conda_ca_bundle": bundle}).read_text()
    )
    assert condarc["channels"] == [mirror]
    assert condarc["ssl_verify"] == bundle


def test_every_known_architecture_has_a_well_formed_pin():
    defaults = load("defaults/main.yml")
    architectures = load("vars/main.yml")["__conda_architectures"]
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+-[0-9]+", defaults["conda_miniforge_version"])
    pins = defaults["conda_miniforge_sha256"]
    assert set(architectures.values()) == set(pins) == {"x86_64", "aarch64"}
    for arch, digest in pins.items():
        assert re.fullmatch(r"[0-9a-f]{64}", digest), f"{arch}: not a sha256"
    assert len(set(pins.values())) == len(pins), "two architectures share a checksum"


def test_hub_environment_pins_python_and_brings_pip():
    environment = yaml.safe_load(HUB_ENVIRONMENT.read_text())
    dependencies = environment["dependencies"]
    assert "python=3.12" in dependencies
    assert "pip" in dependencies
    # Channels come from .condarc (so a mirror applies); the hub's pins from the jupyterhub role.
    assert "channels" not in environment
    assert not any(isinstance(d, dict) for d in dependencies), "pip packages belong to the jupyterhub role"


def test_the_role_is_checked_by_the_generic_interface_tests():
    from test_role_interfaces import ROLES

    assert ROLE in ROLES


# --- Bad input ---------------------------------------------------------------------------------

BAD = {
    "defaults-channel": ({"conda_channels": ["conda-forge", "defaults"]}, "conda_channels"),
    "no-channel": ({"conda_channels": []}, "conda_channels"),
    "environment-over-base": (
        {"conda_environments": [{"prefix": "{prefix}/", "file": str(HUB_ENVIRONMENT)}]},
        "other than conda_prefix",
    ),
    "missing-environment-file": (
        {"conda_environments": [{"prefix": "/opt/env", "file": "/nonexistent/environment.yml"}]},
        "must exist on the controller",
    ),
    "relative-environment-prefix": (
        {"conda_environments": [{"prefix": "env", "file": str(HUB_ENVIRONMENT)}]},
        "absolute path",
    ),
    "same-prefix-twice": (
        {"conda_environments": [{"prefix": "/opt/env", "file": str(HUB_ENVIRONMENT)}] * 2},
        "same prefix twice",
    ),
    "malformed-checksum": (
        {"conda_miniforge_sha256": {"x86_64": "abc", "aarch64": "abc"}},
        "conda_miniforge_sha256",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_settings_are_refused_before_anything_changes(tmp_path, case):
    settings, words = BAD[case]
    prefix = tmp_path / "conda"
    settings = json.loads(json.dumps(settings).replace("{prefix}", str(prefix)))
    code, report = run_role(tmp_path, {"conda_prefix": str(prefix), **settings})
    assert code != 0 and stats(report)["failures"] == 1
    assert words in failure_messages(report)
    assert not prefix.exists()


# --- Check mode without a reachable installer ---------------------------------------------------


def test_check_mode_reports_the_install_without_reaching_the_installer(tmp_path):
    prefix = tmp_path / "conda"
    env_prefix = tmp_path / "hub"
    code, report = run_role(
        tmp_path,
        {
            "conda_prefix": str(prefix),
            "conda_installer_url": UNREACHABLE,
            "conda_environments": [{"prefix": str(env_prefix), "file": str(HUB_ENVIRONMENT)}],
        },
        "--check", "--diff",
    )  # fmt: skip
    assert code == 0, failure_messages(report)
    assert stats(report)["failures"] == 0 and stats(report)["changed"] == 1
    message = task_results(report)["install | Say what a real run would install"]["msg"]
    assert UNREACHABLE in message and load("defaults/main.yml")["conda_miniforge_version"] in message
    assert not prefix.exists() and not env_prefix.exists()


# --- Real runs against the stand-in installer ----------------------------------------------------


def stand_in(tmp_path):
    installer = tmp_path / "Miniforge3-stand-in.sh"
    installer.write_text(STAND_IN_INSTALLER)
    return installer, hashlib.sha256(installer.read_bytes()).hexdigest()


def test_a_wrong_checksum_stops_before_the_installer_runs(tmp_path):
    installer, _ = stand_in(tmp_path)
    prefix = tmp_path / "conda"
    code, report = run_role(
        tmp_path,
        {
            "conda_prefix": str(prefix),
            "conda_installer_url": f"file://{installer}",
            "conda_miniforge_sha256": {"x86_64": "0" * 64, "aarch64": "0" * 64},
        },
    )
    assert code != 0
    assert "did not match" in failure_messages(report)
    assert not prefix.exists()


def test_install_create_update_and_idempotence(tmp_path):
    installer, digest = stand_in(tmp_path)
    prefix = tmp_path / "conda"
    env_prefix = tmp_path / "opt/jupyterhub/conda"
    env_file = tmp_path / "environment.yml"
    env_file.write_text(HUB_ENVIRONMENT.read_text())
    role_vars = {
        "conda_prefix": str(prefix),
        # A bare path: a file already on the box.
        "conda_installer_url": str(installer),
        "conda_miniforge_sha256": {"x86_64": digest, "aarch64": digest},
        "conda_channels": ["https://mirror.example.org/conda-forge"],
        "conda_environments": [{"prefix": str(env_prefix), "file": str(env_file)}],
    }
    calls = prefix / "calls.log"
    apply = "environments | Bring each environment in line with its file"

    code, report = run_role(tmp_path, role_vars)
    assert code == 0, failure_messages(report)
    assert (prefix / "bin/conda").is_file()
    condarc = yaml.safe_load((prefix / ".condarc").read_text())
    assert condarc["channels"] == ["https://mirror.example.org/conda-forge"]
    assert condarc["channel_priority"] == "strict"
    assert task_results(report)[apply]["results"][0]["stdout_lines"][-1] == "created"
    assert calls.read_text().splitlines() == [
        f"env create --quiet --prefix {env_prefix} --file {prefix}/etc/pophub/environments/"
        f"{str(env_prefix).strip('/').replace('/', '_')}/environment.yml"
    ]

    code, report = run_role(tmp_path, role_vars)
    assert code == 0 and stats(report)["changed"] == 0, "a second run changed something"
    assert len(calls.read_text().splitlines()) == 1, "conda ran although nothing had changed"

    code, report = run_role(tmp_path, role_vars, "--check", "--diff")
    assert code == 0 and stats(report)["changed"] == 0, "check mode on a converged box reports changes"

    env_file.write_text(HUB_ENVIRONMENT.read_text() + "  - requests\n")
    code, report = run_role(tmp_path, role_vars)
    assert code == 0 and stats(report)["changed"] == 2  # the copied file and the environment
    assert task_results(report)[apply]["results"][0]["stdout_lines"][-1] == "updated"
    assert calls.read_text().splitlines()[-1].startswith(f"env update --quiet --prefix {env_prefix} ")
    assert calls.read_text().splitlines()[-1].endswith(" --prune")

    code, report = run_role(tmp_path, role_vars)
    assert code == 0 and stats(report)["changed"] == 0


def test_a_directory_that_is_not_an_environment_is_not_overwritten(tmp_path):
    installer, digest = stand_in(tmp_path)
    prefix = tmp_path / "conda"
    env_prefix = tmp_path / "data"
    env_prefix.mkdir()
    (env_prefix / "precious.csv").write_text("a,b\n")
    code, report = run_role(
        tmp_path,
        {
            "conda_prefix": str(prefix),
            "conda_installer_url": f"file://{installer}",
            "conda_miniforge_sha256": {"x86_64": digest, "aarch64": digest},
            "conda_environments": [{"prefix": str(env_prefix), "file": str(HUB_ENVIRONMENT)}],
        },
    )
    assert code != 0
    assert "is not a conda environment" in json.dumps(report)
    assert not (prefix / "calls.log").exists()
    assert (env_prefix / "precious.csv").read_text() == "a,b\n"


# --- molecule/conda/reachable.sh -----------------------------------------------------------------


def test_reachable_says_no_in_one_line_when_the_installer_cannot_be_reached():
    result = subprocess.run(
        [REACHABLE], env={**os.environ, "POPHUB_CONDA_INSTALLER_URL": UNREACHABLE},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stdout == f"conda scenario skipped: {UNREACHABLE} is not reachable from this machine\n"


def test_reachable_says_yes_when_the_installer_answers(tmp_path):
    (tmp_path / "Miniforge3.sh").write_text("#!/bin/sh\n")
    server = HTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/Miniforge3.sh"
        result = subprocess.run(
            [REACHABLE], env={**os.environ, "POPHUB_CONDA_INSTALLER_URL": url},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert result.returncode == 0 and result.stdout == ""


def test_reachable_checks_the_url_the_role_downloads(tmp_path):
    """Without an override, reachable.sh must try the very URL the role computes for this machine."""
    play = tmp_path / "url.yml"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Print the role's installer URL",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": True,
                    "gather_subset": ["min"],
                    "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/main.yml")],
                    "tasks": [{"name": "Print it", "ansible.builtin.debug": {"msg": "{{ __conda_installer_url }}"}}],
                }
            ]
        )
    )
    result = subprocess.run(
        [BIN / "ansible-playbook", "-i", "localhost,", play, "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=ROOT, env=ansible_config(tmp_path), capture_output=True, text=True, check=True,
    )  # fmt: skip
    role_url = task_results(json.loads(result.stdout))["Print it"]["msg"]
    env = {k: v for k, v in os.environ.items() if k != "POPHUB_CONDA_INSTALLER_URL"}
    printed = subprocess.run([REACHABLE, "--print-url"], env=env, capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == role_url
    assert role_url.startswith("https://github.com/conda-forge/miniforge/releases/download/")
