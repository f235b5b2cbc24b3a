"""pophub-restore's checks and its reading of pg_dumpall, without a box: a damaged or incomplete
backup is refused before anything changes, and roles that exist already are altered, not created."""

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
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
    snapshots = {"snapshot-control": "latest", "snapshot-id": "3f2a9c1b", "snapshot-bad": "latest; rm -rf /",
                 "both": "latest"}  # fmt: skip
    where = {"ansible_connection": "community.docker.docker", "ansible_host": "pophub-no-such-box"}
    hosts = {name: {"pophub_restore_from": path, **where} for name, path in cases.items()}
    hosts |= {name: {"pophub_restore_snapshot": snapshot, **where} for name, snapshot in snapshots.items()}
    hosts["both"]["pophub_restore_from"] = str(good)
    inventory = tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"pophub": {"hosts": hosts}}))
    config = tmp / "ansible.cfg"
    config.write_text("[defaults]\nstdout_callback = ansible.posix.json\ninterpreter_python = auto_silent\n")
    result = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks/restore.yml")],
        cwd=ROOT, env={**os.environ, "ANSIBLE_CONFIG": str(config)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return failures(json.loads(result.stdout))


@pytest.mark.parametrize("case", ["control", "snapshot-control", "snapshot-id"])
def test_a_real_backup_passes_the_check_and_only_then_is_the_box_reached(restore_run, case):
    task, result = restore_run[case]
    assert result.get("unreachable"), (task, result)
    assert task == "Find the restore program"


@pytest.mark.parametrize("case", ["no-manifest", "missing"])
def test_a_bad_backup_path_is_refused_on_the_controller(restore_run, case):
    task, result = restore_run[case]
    assert task == "The backup is a complete one on this machine"
    assert "pophub_restore_from is" in result["msg"] and "playbooks/backup.yml fetched" in result["msg"]


@pytest.mark.parametrize(("case", "said"), [("empty", "not neither"), ("both", "not both")])
def test_one_backup_must_be_named(restore_run, case, said):
    task, result = restore_run[case]
    assert task == "One backup is named"
    assert all(part in result["msg"] for part in ("pophub_restore_from", "pophub_restore_snapshot", said))


def test_a_snapshot_that_is_neither_latest_nor_an_id_is_refused(restore_run):
    task, result = restore_run["snapshot-bad"]
    assert task == "The snapshot is latest or an id"
    assert "pophub_restore_snapshot is 'latest; rm -rf /': set it to latest or to a snapshot id" in result["msg"]


# --- The off-box copy: real restic, against a repository in a local directory -------------------------
needs_restic = pytest.mark.skipif(
    not shutil.which("restic"), reason="restic is not installed (bin/pophub test installs it); not run"
)


def offsite_settings(tmp_path, repository, **overrides):
    password = tmp_path / "restic.password"
    password.write_text("correct horse battery staple\n")
    return {"repository": str(repository), "password_file": str(password), "cache_dir": str(tmp_path / "cache"),
            "ssh_key_file": str(tmp_path / "key"), "known_hosts_file": str(tmp_path / "known_hosts"),
            "environment": {}, "keep_daily": 1, "keep_weekly": 0, **overrides}  # fmt: skip


def restic_env(offsite):
    return {**os.environ, "RESTIC_REPOSITORY": offsite["repository"], "RESTIC_PASSWORD_FILE": offsite["password_file"]}


def restic_json(offsite, *argv):
    env = restic_env(offsite)
    done = subprocess.run(["restic", "--no-cache", *argv, "--json"], env=env, capture_output=True, text=True,
                          check=True)  # fmt: skip
    return json.loads(done.stdout)


@needs_restic
def test_each_backup_goes_off_the_box_and_the_repository_keeps_the_retention(tmp_path):
    offsite = offsite_settings(tmp_path, tmp_path / "repository")
    first = tmp_path / "backups/20261201T030000Z-nightly"
    first.mkdir(parents=True)
    (first / "db-event.dump").write_bytes(os.urandom(100_000))
    (first / "manifest.json").write_text("{}")
    snapshot = backup.send_offsite(offsite, first)  # the repository is made on the first run
    second = tmp_path / "backups/20261202T030000Z-nightly"
    shutil.copytree(first, second)
    (second / "manifest.json").write_text('{"second": true}')
    assert backup.send_offsite(offsite, second) != snapshot
    # Both were made today: keep_daily 1 keeps only the newer.
    snapshots = restic_json(offsite, "snapshots")
    assert [s["paths"] for s in snapshots] == [[str(second)]] and snapshots[0]["tags"] == ["pophub"]
    restored = tmp_path / "restored"
    env = restic_env(offsite)
    subprocess.run(["restic", "--no-cache", "restore", "latest", "--target", str(restored)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    copy = restored / second.relative_to("/")
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == {p.name: p.read_bytes() for p in second.iterdir()}


def sent_backup(tmp_path, offsite, name, content):
    """A backup directory on the old box, sent to the repository; returns it and its snapshot id."""
    made = tmp_path / "old-box/var/backups/pophub" / name
    made.mkdir(parents=True)
    (made / "db-event.dump").write_bytes(content)
    (made / "manifest.json").write_text(json.dumps({"name": name}))
    return made, backup.send_offsite(offsite, made)


@needs_restic
def test_a_rebuilt_box_fetches_a_backup_from_the_repository_alone(tmp_path):
    offsite = offsite_settings(tmp_path, tmp_path / "repository")
    _, first_id = sent_backup(tmp_path, offsite, "20261201T030000Z-nightly", os.urandom(50_000))
    second, second_id = sent_backup(tmp_path, offsite, "20261202T030000Z-nightly", os.urandom(50_000))
    files = {p.name: p.read_bytes() for p in second.iterdir()}
    shutil.rmtree(tmp_path / "old-box")  # the old box is gone
    root = tmp_path / "new-box"
    root.mkdir()
    # By the first characters of its id, in either case; nothing but the backup is left behind.
    fetched = backup.fetch_offsite(offsite, root, second_id[:8].upper())
    assert fetched == root / second.name and [p.name for p in root.iterdir()] == [second.name]
    assert {p.name: p.read_bytes() for p in fetched.iterdir()} == files
    # latest is the same one, now on the box: used as it is.
    assert backup.fetch_offsite(offsite, root, "latest") == fetched
    # The retention (one a day) forgot the first: it is refused, not half fetched.
    with pytest.raises(backup.OffsiteFailed, match=f"no snapshot .*'{first_id[:8]}'"):
        backup.fetch_offsite(offsite, root, first_id[:8])
    assert [p.name for p in root.iterdir()] == [second.name]
    shutil.rmtree(fetched)
    assert backup.fetch_offsite(offsite, root, "latest") == fetched and (fetched / "db-event.dump").is_file()


@needs_restic
def test_a_snapshot_that_is_not_there_is_refused_with_the_ids_that_are(tmp_path):
    offsite = offsite_settings(tmp_path, tmp_path / "repository")
    _, snapshot = sent_backup(tmp_path, offsite, "20261201T030000Z-nightly", b"dump")
    root = tmp_path / "new-box"
    root.mkdir()
    refused = f"no snapshot .* match pophub_restore_snapshot 'deadbeef'.*{snapshot[:8]}"
    with pytest.raises(backup.OffsiteFailed, match=refused):
        backup.fetch_offsite(offsite, root, "deadbeef")
    assert list(root.iterdir()) == []
    with pytest.raises(backup.OffsiteFailed, match="this box has no off-box repository: set backup_offsite_repository"):
        backup.fetch_offsite({}, root, "latest")
    Path(offsite["password_file"]).write_text("not the password\n")
    with pytest.raises(backup.OffsiteFailed, match="does not open with this box's password"):
        backup.fetch_offsite(offsite, root, "latest")


@needs_restic
def test_a_wrong_password_is_refused_with_a_sentence(tmp_path):
    offsite = offsite_settings(tmp_path, tmp_path / "repository")
    made = tmp_path / "backups/20261201T030000Z-nightly"
    made.mkdir(parents=True)
    (made / "manifest.json").write_text("{}")
    backup.send_offsite(offsite, made)
    Path(offsite["password_file"]).write_text("not the password\n")
    with pytest.raises(backup.OffsiteFailed, match="does not open with this box's password"):
        backup.send_offsite(offsite, made)


@needs_restic
def test_an_sftp_server_that_does_not_answer_fails_quickly_and_says_so(tmp_path):
    (tmp_path / "key").write_text("")
    (tmp_path / "known_hosts").write_text("")
    offsite = offsite_settings(tmp_path, "sftp://backup@127.0.0.1:9//srv/restic")
    made = tmp_path / "20261201T030000Z-nightly"
    made.mkdir()
    with pytest.raises(backup.OffsiteFailed, match=r"could not reach or create the repository sftp://backup@127\.0\.0\.1:9"):
        backup.send_offsite(offsite, made)


@pytest.mark.parametrize(
    ("repository", "target"),
    [("sftp:backup@host.example.org:/srv/restic", ("backup", "host.example.org", 22)),
     ("sftp:host.example.org:restic", (None, "host.example.org", 22)),
     ("sftp://backup@host.example.org:2222//srv/restic", ("backup", "host.example.org", 2222)),
     ("s3:https://s3.example.org/bucket", None)],
)  # fmt: skip
def test_the_ssh_command_reaches_the_repositorys_host_with_the_box_key_only(repository, target):
    assert backup.sftp_target(repository) == target
    command = backup.restic_command({"repository": repository, "cache_dir": "/c", "ssh_key_file": "/k",
                                     "known_hosts_file": "/h"})  # fmt: skip
    if target:
        ssh = command[-1].removeprefix("sftp.command=").split()
        assert ssh[:3] == ["ssh", "-i", "/k"] and "StrictHostKeyChecking=yes" in ssh and "BatchMode=yes" in ssh
        assert ssh[-3:] == [f"{target[0]}@{target[1]}" if target[0] else target[1], "-s", "sftp"]
        assert ssh[ssh.index("-p") + 1] == str(target[2])
    else:
        assert command == ["restic", "--cache-dir=/c"]


def test_a_password_in_a_repository_address_is_never_printed():
    assert backup.safe("rest:https://user:hunter2@backup.example.org/event") == "rest:https://user:***@backup.example.org/event"
    assert backup.safe("sftp:backup@host:/srv") == "sftp:backup@host:/srv"
