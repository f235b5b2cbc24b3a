"""A JupyterHub upgrade that needs a newer database schema: the playbook backs the box up
(pophub-backup), and only then runs `jupyterhub upgrade-db`; a failed backup upgrades nothing."""

import datetime
import json
import time

import pytest
from conftest import box_exec, converge, wait_for_hub

VENV = "/opt/jupyterhub/venv"
PASSWORD_FILE = "/etc/pophub/secrets/postgresql-jupyterhub.password"
BACKUPS = "/var/backups/pophub"
# JupyterHub's own migrations (its alembic.ini and scripts), against the hub's database.
ALEMBIC = """
import subprocess, sys
from pathlib import Path
from jupyterhub.dbutil import _temp_alembic_ini
password = Path(%r).read_text().strip()
with _temp_alembic_ini(f"postgresql+psycopg://jupyterhub:{password}@127.0.0.1:5432/jupyterhub") as ini:
    subprocess.run([%r, "-c", ini, *sys.argv[1:]], check=True)
"""


def alembic(*argv):
    return box_exec(f"{VENV}/bin/python", "-c", ALEMBIC % (PASSWORD_FILE, f"{VENV}/bin/alembic"), *argv)


def revision():
    return box_exec(
        "runuser", "-u", "postgres", "--", "psql", "--dbname=jupyterhub",
        "-tAc", "SELECT version_num FROM alembic_version",
    ).strip()  # fmt: skip


@pytest.fixture
def older_schema():
    """The hub stopped and its database one migration back, as if JupyterHub had just been upgraded."""
    head = revision()
    box_exec("systemctl", "stop", "jupyterhub")
    alembic("downgrade", "-1")
    older = revision()
    assert older and older != head
    yield head, older
    if revision() != head:  # the role did not upgrade: put the box back as it was
        alembic("upgrade", "head")
    box_exec("systemctl", "start", "jupyterhub")
    wait_for_hub()


def backups():
    listed = box_exec("find", BACKUPS, "-mindepth", "2", "-maxdepth", "2", "-name", "manifest.json")
    return {path.rsplit("/", 2)[1] for path in listed.split()}


def unit_time(prop):
    return int(box_exec("systemctl", "show", "jupyterhub", f"--property={prop}", "--value", "--timestamp=unix")
               .strip().lstrip("@"))  # fmt: skip


def test_an_old_schema_is_backed_up_then_upgraded(older_schema, tmp_path_factory):
    head, older = older_schema
    before = backups()
    started = time.monotonic()
    # The playbook's own backup command: pophub-backup, the whole box.
    output = converge(tmp_path_factory)
    print(f"\nschema {older} -> {head}: backed up and upgraded by the role in {time.monotonic() - started:.0f} s")
    assert "upgrade | Upgrade the hub's database to this JupyterHub's schema" in output
    made = sorted(backups() - before)
    assert len(made) == 1 and made[0].endswith("-before-upgrade-db"), made
    manifest = json.loads(box_exec("cat", f"{BACKUPS}/{made[0]}/manifest.json"))
    # Taken while the hub was stopped for the upgrade (times to the second).
    created = datetime.datetime.fromisoformat(manifest["created"]).timestamp()
    assert unit_time("InactiveEnterTimestamp") - 1 <= created <= unit_time("ActiveEnterTimestamp") + 1
    # ... and before the upgrade: its dump of the hub's database holds the old revision.
    saved = box_exec("pg_restore", "--data-only", "--table=alembic_version", "--file=-",
                     f"{BACKUPS}/{made[0]}/db-jupyterhub.dump")  # fmt: skip
    assert f"COPY public.alembic_version (version_num) FROM stdin;\n{older}\n" in saved, saved
    assert revision() == head
    assert box_exec("systemctl", "is-active", "jupyterhub").strip() == "active"


def test_a_failed_backup_stops_the_upgrade(older_schema, tmp_path_factory):
    _head, older = older_schema
    output = converge(tmp_path_factory, expect_failure=True, jupyterhub_db_upgrade_backup_command=["false"])
    assert "was not upgraded" in output, output[-3000:]
    assert revision() == older, "the database was upgraded although the backup failed"
