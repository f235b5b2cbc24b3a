"""Backups off the box: a real SFTP server (OpenSSH in a second container, on this machine's side of
the box's network), reached with a key, as an organizer's backup host is. The box's backup goes
there with restic, encrypted with a password the converge keeps next to the inventory; this machine
then reads the repository with that password alone and finds the box's backup in it, byte for byte.
A server that is down fails the nightly unit where `status` shows it, and the backup on the box
stays. The box ends as the scenario left it: no off-box copy."""

import json
import os
import subprocess
import time

import pytest
import sftp_server as sftp_server_module
from conftest import BOX, ROOT, box_exec, converge, event_inventory
from sftp_server import ACCOUNT, PORT
from test_eventday import pophub

SFTP = "pophub-test-sftp"
BACKUPS = "/var/backups/pophub"


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory):
    """The backup host (sftp_server.py), taking one key for its account. Yields the inventory
    settings that point the box at it."""
    yield sftp_server_module.start(BOX, SFTP, tmp_path_factory.mktemp("sftp-keys"))
    sftp_server_module.stop(SFTP)


@pytest.fixture(scope="module")
def offsite_box(sftp_server, tmp_path_factory):
    """The box converged (backup role only) with the SFTP server as its off-box repository, from an
    organizer's inventory; afterwards as the scenario's own converge leaves it (no off-box copy)."""
    inventory = event_inventory(tmp_path_factory.mktemp("offsite-inventory"))
    settings = {k: v for k, v in sftp_server.items() if k.startswith("backup_")} | {"backup_offsite_keep_daily": 2}
    extra = tmp_path_factory.mktemp("offsite-vars") / "vars.json"
    extra.write_text(json.dumps(settings))
    started = time.monotonic()
    done = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), "playbooks/site.yml", "--tags", "backup", "-e", f"@{extra}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    print(f"\nconverged the backup role with an off-box repository in {time.monotonic() - started:.0f} s")
    yield inventory
    box_exec("systemctl", "reset-failed", "pophub-backup.service", check=False)
    converge(tmp_path_factory, tags="backup")
    assert json.loads(box_exec("cat", "/etc/pophub/backup.json"))["offsite"] == {}


def restic_here(sftp_server, password_file, *argv):
    """restic on this machine, reading the box's repository on the SFTP server with the password
    the converge fetched here: what an organizer does when the box is gone."""
    repository = sftp_server["backup_offsite_repository"]
    ssh = (f"ssh -i {sftp_server['key_file']} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
           f"-o BatchMode=yes -p {PORT} {ACCOUNT}@{sftp_server['address']} -s sftp")  # fmt: skip
    return subprocess.run(
        ["restic", "--no-cache", "-o", f"sftp.command={ssh}", *argv],
        env={**os.environ, "RESTIC_REPOSITORY": repository, "RESTIC_PASSWORD_FILE": str(password_file)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_backup_goes_off_the_box_and_reads_back_with_the_organizers_password(offsite_box, sftp_server, tmp_path):
    password = offsite_box / "backup-offsite.password"
    # Made on the box, kept next to the inventory, private on both.
    assert password.read_text() == box_exec("cat", "/etc/pophub/backup-offsite/restic.password")
    assert oct(password.stat().st_mode & 0o777) == "0o600"
    made = box_exec("/usr/local/sbin/pophub-backup", "--reason", "offsite-test")
    assert "off-box copy: snapshot" in made and "pruned and checked" in made, made
    backup = made.strip().splitlines()[-1]
    assert restic_here(sftp_server, password, "check").returncode == 0
    snapshots = json.loads(restic_here(sftp_server, password, "snapshots", "--json").stdout)
    assert [backup] in [snapshot["paths"] for snapshot in snapshots]
    restored = restic_here(sftp_server, password, "restore", "latest", "--target", str(tmp_path))
    assert restored.returncode == 0, restored.stderr
    manifest = json.loads((tmp_path / backup.lstrip("/") / "manifest.json").read_text())
    assert manifest == json.loads(box_exec("cat", f"{backup}/manifest.json"))
    # Every file of the backup came back as the box has it (the manifest holds their checksums).
    for item in manifest["items"]:
        if not item.get("absent"):
            restored_file = tmp_path / backup.lstrip("/") / item["file"]
            assert restored_file.stat().st_size == item["size"], item["file"]
    sums = box_exec("sh", "-c", f"cd {backup} && sha256sum *")
    here = subprocess.run(["sh", "-c", "sha256sum *"], cwd=tmp_path / backup.lstrip("/"), capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert sums == here.stdout
    # Encrypted: nothing of the backup's names or contents is readable on the server.
    stored = subprocess.run(["docker", "exec", SFTP, "grep", "-rl", "globals.sql", f"/home/{ACCOUNT}/restic"],
                            capture_output=True, text=True)  # fmt: skip
    assert stored.returncode == 1 and stored.stdout == ""


def test_a_server_that_is_down_fails_the_nightly_unit_and_keeps_the_backup_on_the_box(offsite_box):
    keep = json.loads(box_exec("cat", "/etc/pophub/backup.json"))["keep"]
    before = set(box_exec("ls", BACKUPS).split())
    subprocess.run(["docker", "stop", SFTP], check=True, capture_output=True)  # the fixture removes it after
    box_exec("systemctl", "start", "pophub-backup.service", check=False)
    assert box_exec("systemctl", "is-failed", "pophub-backup.service", check=False).strip() == "failed"
    journal = box_exec("journalctl", "-u", "pophub-backup.service", "-n", "20", "--no-pager")
    assert "but not off it: restic could not reach or create the repository" in journal, journal
    # The night's backup is on the box, complete; nothing else went but what the box's retention drops.
    after = set(box_exec("ls", BACKUPS).split())
    (new,) = after - before
    assert new.endswith("-nightly")
    box_exec("test", "-f", f"{BACKUPS}/{new}/manifest.json")
    assert sorted(after) == sorted(before | {new})[-keep:]
    code, output, errors = pophub(offsite_box, "status", "--json")
    assert code == 0, errors
    found = json.loads(output)
    assert found["units"]["backup"]["failing"] is True and found["backup"]["path"] == f"{BACKUPS}/{new}"
