"""pophub-restore's checks and its reading of pg_dumpall, without a box: a damaged or incomplete
backup is refused before anything changes, and roles that exist already are altered, not created."""

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_json import failures

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "roles/backup/files"


def load(name):
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(FILES / name))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


restore = load("pophub-restore")
backup = load("pophub-backup")


@pytest.fixture
def made(tmp_path):
    """A backup directory with one file and a manifest that matches it."""
    (tmp_path / "db-event.dump").write_bytes(b"dump")
    item = {"kind": "database", "name": "event", "file": "db-event.dump", "size": 4,
            "sha256": hashlib.sha256(b"dump").hexdigest()}  # fmt: skip
    absent = {"kind": "path", "name": "le", "absent": True}
    manifest = {"format": 1, "name": "x", "host": "box", "items": [item, absent]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_a_complete_backup_passes(made):
    assert restore.check(made)["name"] == "x"


def test_a_damaged_file_is_refused(made):
    (made / "db-event.dump").write_bytes(b"dumq")
    with pytest.raises(restore.RestoreError, match=r"db-event\.dump does not match its checksum"):
        restore.check(made)


def test_a_missing_file_is_refused(made):
    (made / "db-event.dump").unlink()
    with pytest.raises(restore.RestoreError, match="missing: the backup is incomplete"):
        restore.check(made)


def test_a_directory_without_a_manifest_is_refused(tmp_path):
    with pytest.raises(restore.RestoreError, match=r"has no manifest\.json"):
        restore.check(tmp_path)


def test_another_format_is_refused(made):
    manifest = json.loads((made / "manifest.json").read_text())
    (made / "manifest.json").write_text(json.dumps({**manifest, "format": 2}))
    with pytest.raises(restore.RestoreError, match="format 2"):
        restore.check(made)


def test_a_file_that_changes_while_it_is_read_does_not_fail_the_backup(tmp_path, capfd):
    import tarfile
    import threading

    home = tmp_path / "home"
    home.mkdir()
    busy = home / "notebook.ipynb"
    busy.write_bytes(os.urandom(8 << 20))
    stop = threading.Event()

    def keep_saving():
        with busy.open("ab") as handle:
            while not stop.is_set():
                handle.write(b"x" * 4096)
                handle.flush()

    writer = threading.Thread(target=keep_saving)
    writer.start()
    try:
        backup.tar(home, ["."], tmp_path / "volume-home.tar.gz")
    finally:
        stop.set()
        writer.join()
    assert "a file changed while it was read; kept as read" in capfd.readouterr().err, "tar saw no change"
    with tarfile.open(tmp_path / "volume-home.tar.gz") as archive:
        assert "./notebook.ipynb" in archive.getnames()


def test_a_tar_that_really_fails_fails_the_backup(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as failed:
        backup.tar(tmp_path / "missing", ["."], tmp_path / "x.tar.gz")
    assert failed.value.returncode == 2


def test_roles_are_created_only_where_missing_and_postgres_is_left_alone():
    dumped = "\n".join([
        "CREATE ROLE event;",
        "ALTER ROLE event WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc';",
        "CREATE ROLE postgres;",
        "ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;",
        'CREATE ROLE "u_e2e-alice_1a2b3c4d";',
        "GRANT event_users TO u_e2e_alice GRANTED BY postgres;",
    ])  # fmt: skip
    lines = restore.globals_sql(dumped).splitlines()
    assert lines[0] == "DO $$ BEGIN CREATE ROLE event; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
    assert lines[1].startswith("ALTER ROLE event WITH")
    assert not any(line.startswith(("CREATE ROLE postgres", "ALTER ROLE postgres")) for line in lines)
    assert 'CREATE ROLE "u_e2e-alice_1a2b3c4d";' in lines[2]
    assert lines[-1] == "GRANT event_users TO u_e2e_alice GRANTED BY postgres;"


def test_pruning_keeps_the_newest_complete_backups(tmp_path):
    names = [f"2026120{day}T030000Z-nightly" for day in range(1, 6)]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
    (tmp_path / "20261206T030000Z-nightly").mkdir()  # no manifest: not a backup, left alone
    (tmp_path / ".partial-20261207T030000Z-nightly").mkdir()  # left by a crash
    removed = backup.prune(tmp_path, keep=2)
    assert [p.name for p in removed] == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == [*names[3:], "20261206T030000Z-nightly"]


@pytest.fixture(scope="module")
def restore_run(tmp_path_factory):
    """playbooks/restore.yml against hosts that do not exist: a bad pophub_restore_from fails on
    the controller, before any connection; a good one gets as far as trying to reach its box."""
    tmp = tmp_path_factory.mktemp("restore")
    good = tmp / "backups/box/20261201T030000Z-nightly"
    good.mkdir(parents=True)
    (good / "manifest.json").write_text("{}")
    (tmp / "not-a-backup").mkdir()
    cases = {"control": str(good), "empty": "", "no-manifest": str(tmp / "not-a-backup"), "missing": "/nonexistent"}
    hosts = {
        name: {"pophub_restore_from": path, "ansible_connection": "community.docker.docker",
               "ansible_host": "pophub-no-such-box"}
        for name, path in cases.items()
    }
    inventory = tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"pophub": {"hosts": hosts}}))
    config = tmp / "ansible.cfg"
    config.write_text("[defaults]\nstdout_callback = ansible.posix.json\ninterpreter_python = auto_silent\n")
    result = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks/restore.yml")],
        cwd=ROOT, env={**os.environ, "ANSIBLE_CONFIG": str(config)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return failures(json.loads(result.stdout))


def test_a_real_backup_passes_the_check_and_only_then_is_the_box_reached(restore_run):
    task, result = restore_run["control"]
    assert result.get("unreachable"), (task, result)
    assert task == "Find the restore program"


@pytest.mark.parametrize("case", ["empty", "no-manifest", "missing"])
def test_a_bad_backup_path_is_refused_on_the_controller(restore_run, case):
    task, result = restore_run[case]
    assert task == "The backup is a complete one on this machine"
    assert "pophub_restore_from is" in result["msg"] and "playbooks/backup.yml fetched" in result["msg"]
