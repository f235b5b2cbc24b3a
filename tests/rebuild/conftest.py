"""The rebuild test: box A (Debian 12) is backed up, destroyed, and box B (Debian 13, converged from
the same inventory) gets the backup. test_before.py runs on A, test_after.py on B; bin/pophub test
runs them around playbooks/backup.yml and playbooks/restore.yml (see `rebuild` in bin/pophub)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from pophub.hubclient import HubClient, resolve_localhost_names

ROOT = Path(__file__).resolve().parents[2]
BOX = os.environ["POPHUB_TEST_BOX"]
PORT = int(os.environ["POPHUB_TEST_PORT"])
# The inventory's settings, and BOX's own host_vars: box B is reached at pophub.localhost, with
# each user's server at a name under it (tests/e2e/conftest.py reads them the same way).
SETTINGS = yaml.safe_load((ROOT / "molecule/default/group_vars/pophub.yml").read_text())
HOST_VARS = ROOT / "molecule" / os.environ.get("POPHUB_TEST_SCENARIO", "default") / "host_vars" / f"{BOX}.yml"
if HOST_VARS.exists():
    SETTINGS.update(yaml.safe_load(HOST_VARS.read_text()))
HUB_URL = f"https://{SETTINGS['pophub_domain']}:{PORT}"
resolve_localhost_names()
# What test_before.py leaves for test_after.py, on the controller: box A is gone by then.
STATE = Path(os.environ.get("POPHUB_REBUILD_STATE", ROOT / ".cache/rebuild"))
MARKER_USER = "rebuild-carol"


def snapshot():
    """What users made on the box (see snapshot.py), read in the box."""
    script = (Path(__file__).parent / "snapshot.py").read_text()
    result = subprocess.run(
        ["docker", "exec", "-i", BOX, "/opt/jupyterhub/venv/bin/python", "-"],
        input=script, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def cafile(tmp_path_factory):
    path = tmp_path_factory.mktemp("tls") / "box.crt"
    path.write_text(subprocess.run(["docker", "exec", BOX, "cat", "/etc/pophub/tls/selfsigned.crt"],
                                   capture_output=True, text=True, check=True).stdout)  # fmt: skip
    return str(path)


@pytest.fixture(scope="session")
def login(cafile):
    def login(name):
        user = HubClient(HUB_URL, name, cafile)
        user.login(SETTINGS["jupyterhub_shared_password"], note="pophub e2e")
        return user

    return login
