"""Box B, after the restore (and again after the playbook has run on it once more): everything
users made on box A is here, the same to the byte, counted part by part."""

import json

import pytest
from conftest import STATE, snapshot


@pytest.fixture(scope="module")
def boxes():
    return json.loads((STATE / "snapshot-a.json").read_text()), snapshot()


def same(part, before, after):
    """Compare two maps; the message names what is missing, extra or different."""
    missing = sorted(set(before) - set(after))
    extra = sorted(set(after) - set(before))
    changed = sorted(key for key in set(before) & set(after) if before[key] != after[key])
    assert not (missing or extra or changed), (
        f"{part}: missing {missing[:10]}, extra {extra[:10]}, changed {changed[:10]}"
    )
    return len(before)


def test_every_home_file_came_back(boxes):
    a, b = boxes
    same("home volumes", a["homes"], b["homes"])
    entries = sum(same(f"home {volume}", files, b["homes"][volume]) for volume, files in a["homes"].items())
    print(f"\nhomes: {len(a['homes'])} volumes, {entries} files, directories and links compared")


def test_the_data_and_shared_directories_came_back(boxes):
    a, b = boxes
    counts = {
        name: same(f"directory {name}", files, b["directories"][name]) for name, files in a["directories"].items()
    }
    print(f"\ndirectories: {counts} entries compared")


def test_every_table_came_back_row_for_row(boxes):
    a, b = boxes
    tables = same("tables", a["tables"], b["tables"])
    rows = sum(int(count) for count, _ in a["tables"].values())
    print(f"\ntables: {tables} tables, {rows} rows compared")


def test_database_roles_and_their_passwords_came_back(boxes):
    a, b = boxes
    same("database roles", a["roles"], b["roles"])
    assert a["memberships"] == b["memberships"]
    print(f"\ndatabase roles: {len(a['roles'])} roles, {len(a['memberships'])} memberships compared")


def test_hub_accounts_came_back(boxes):
    a, b = boxes
    same("hub accounts", a["accounts"], b["accounts"])
    print(f"\nhub accounts: {len(a['accounts'])} compared")


def test_stored_oauth_state_came_back_and_is_readable(boxes):
    a, b = boxes
    unreadable = {name: state for name, state in b["auth_states"].items() if state.startswith("unreadable")}
    assert not unreadable, unreadable
    same("auth states", a["auth_states"], b["auth_states"])
    print(f"\nauth states: {len(a['auth_states'])} decrypted on box B and compared")


def test_the_secrets_came_back(boxes):
    a, b = boxes
    same("secrets", a["secrets"], b["secrets"])
    print(f"\nsecrets: {len(a['secrets'])} files compared")
