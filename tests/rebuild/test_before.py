"""Box A, before its backup: a participant leaves a file, a table and a long-lived token behind,
and everything users made is written down (snapshot.py) for box B to be compared with."""

import json
import secrets

from conftest import MARKER_USER, STATE, snapshot

WORK = """
import os, psycopg
with open(os.path.expanduser("~/rebuild-notes.txt"), "w") as notes:
    notes.write({content!r})
with psycopg.connect() as connection:
    connection.execute("CREATE TABLE IF NOT EXISTS findings (id int PRIMARY KEY, note text)")
    connection.execute("INSERT INTO findings VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET note = excluded.note",
                       ({content!r},))
print("saved")
"""


def test_a_participant_leaves_work_behind(login):
    user = login(MARKER_USER)
    user.start_server()
    content = secrets.token_hex(32)
    assert user.run_code(WORK.format(content=content)).strip() == "saved"
    user.stop_server()
    made = user.api("POST", f"/users/{MARKER_USER}/tokens", json={"note": "rebuild", "expires_in": 30 * 86400})
    assert made.status_code == 201, made.text
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "marker.json").write_text(json.dumps({"content": content, "token": made.json()["token"]}))


def test_what_users_made_is_written_down():
    found = snapshot()
    # Each part must hold something, or comparing it on box B would prove nothing.
    # DockerSpawner escapes the name in the volume's: rebuild-carol becomes rebuild-2dcarol.
    assert "pophub-home-rebuild-2dcarol" in found["homes"], sorted(found["homes"])
    assert any(table.endswith(".findings") for table in found["tables"]), sorted(found["tables"])
    assert found["auth_states"], "no stored OAuth state on box A: the GitHub and OIDC logins should have left some"
    unreadable = {name: state for name, state in found["auth_states"].items() if state.startswith("unreadable")}
    assert not unreadable
    (STATE / "snapshot-a.json").write_text(json.dumps(found))
    files = sum(len(home) for home in found["homes"].values())
    print(f"\nbox A: {len(found['homes'])} homes with {files} entries, {len(found['tables'])} tables, "
          f"{len(found['roles'])} database roles, {len(found['accounts'])} hub accounts, "
          f"{len(found['auth_states'])} stored auth states")  # fmt: skip
