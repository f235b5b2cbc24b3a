"""Backups on the box: the nightly timer, a complete and checked backup, pruning to the inventory's
retention, and a damaged backup refused before anything changes. (The full rebuild, backup on one
box and restore on another, is tests/rebuild/, run by bin/pophub test.)"""

import json
import time

import pytest
from conftest import SETTINGS, box_exec

BACKUPS = "/var/backups/pophub"
KEEP = SETTINGS.get("backup_keep", 7)


def backups():
    listed = box_exec("find", BACKUPS, "-mindepth", "2", "-maxdepth", "2", "-name", "manifest.json")
    return sorted(path.rsplit("/", 2)[1] for path in listed.split())


@pytest.fixture(scope="module")
def nightly():
    """The timer's own service, started now instead of at 03:00."""
    started = time.monotonic()
    box_exec("systemctl", "start", "pophub-backup.service")
    print(f"\nnightly backup of the box took {time.monotonic() - started:.1f} s")
    name = backups()[-1]
    assert name.endswith("-nightly"), backups()
    return name


def test_the_nightly_backup_is_scheduled():
    assert box_exec("systemctl", "is-enabled", "pophub-backup.timer").strip() == "enabled"
    assert box_exec("systemctl", "is-active", "pophub-backup.timer").strip() == "active"
    shown = box_exec("systemctl", "show", "pophub-backup.timer", "--property=TimersCalendar")
    assert "03:00:00" in shown


def test_a_backup_holds_every_part_and_its_checksums_match(nightly):
    manifest = json.loads(box_exec("cat", f"{BACKUPS}/{nightly}/manifest.json"))
    kinds = {item["kind"] for item in manifest["items"]}
    assert kinds == {"postgres-globals", "database", "volume", "path"}
    assert {item["name"] for item in manifest["items"] if item["kind"] == "database"} == {"jupyterhub", "event"}
    saved_paths = {item["name"] for item in manifest["items"] if item["kind"] == "path" and not item.get("absent")}
    assert {"secrets", "hub-config", "hub-state", "tls", "data", "shared"} <= saved_paths
    homes = [item for item in manifest["items"] if item["kind"] == "volume"]
    assert homes and all(item["name"].startswith("pophub-home-") for item in homes)
    # sha256sum in the box, against the manifest: the files are what the manifest says.
    sums = "".join(f"{item['sha256']}  {item['file']}\n" for item in manifest["items"] if "file" in item)
    checked = box_exec("sh", "-c", f"cd {BACKUPS}/{nightly} && printf '%s' '{sums}' | sha256sum --check --strict")
    assert checked.count(": OK") == len([item for item in manifest["items"] if "file" in item])
    modes = box_exec("stat", "-c", "%a %U", f"{BACKUPS}/{nightly}", f"{BACKUPS}/{nightly}/globals.sql").split("\n")
    assert modes[:2] == ["700 root", "600 root"]
    print(f"\nnightly backup: {len(manifest['items'])} items, {len(homes)} homes, checksums match")


def test_old_backups_are_pruned_to_the_retention(nightly):
    # Older complete backups, as earlier nights would have left them.
    for day in range(1, KEEP + 2):
        old = f"{BACKUPS}/202001{day:02d}T030000Z-nightly"
        box_exec("sh", "-c", f"mkdir -p {old} && echo '{{}}' > {old}/manifest.json")
    box_exec("/usr/local/sbin/pophub-backup", "--reason", "manual")
    kept = backups()
    assert len(kept) == KEEP, kept
    assert nightly in kept and kept[-1].endswith("-manual")
    assert "20200101T030000Z-nightly" not in kept, "the oldest backup should have gone first"
    box_exec("sh", "-c", f"rm -rf {BACKUPS}/202001*")


def test_a_damaged_backup_is_refused_before_anything_changes(nightly):
    copy = "/tmp/pophub-damaged-backup"
    box_exec("sh", "-c", f"rm -rf {copy} && cp -a {BACKUPS}/{nightly} {copy} && printf x | "
                         f"dd of={copy}/db-event.dump bs=1 seek=100 conv=notrunc status=none")  # fmt: skip
    before = box_exec("systemctl", "show", "jupyterhub", "--property=ActiveEnterTimestamp")
    result = box_exec("sh", "-c", f"/usr/local/sbin/pophub-restore {copy} 2>&1; echo status=$?", check=False)
    assert "db-event.dump does not match its checksum" in result
    assert "nothing on the box was changed" in result
    assert result.strip().endswith("status=1")
    # The hub was not even stopped.
    assert box_exec("systemctl", "show", "jupyterhub", "--property=ActiveEnterTimestamp") == before
    box_exec("rm", "-rf", copy)
