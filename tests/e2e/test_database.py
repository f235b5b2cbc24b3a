"""The event database from inside users' servers: each user has a role and a private schema of
their own, everyone reads the shared datasets, and nothing else is let in."""

import hashlib
import json
import re

import pytest
from conftest import box_exec

CONNECT = """
import json, psycopg
try:
    with psycopg.connect(%s, connect_timeout=5) as conn:
        for statement in %r:
            cursor = conn.execute(statement)
        print(json.dumps({"ok": cursor.fetchall() if cursor.description else []}, default=str))
except psycopg.Error as error:
    print(json.dumps({"error": str(error).strip()}))
"""


def query(server, *statements, conninfo=""):
    """Run the statements, in one transaction, in a kernel of `server`; the last one's rows."""
    return json.loads(server.run_code(CONNECT % (repr(conninfo), list(statements))))


@pytest.fixture(scope="module")
def shared_dataset():
    """A dataset the organizer loaded as the event database's owner."""
    box_exec(
        "sudo", "-u", "postgres", "psql", "--quiet", "--dbname=event", "--command",
        "SET ROLE event; DROP TABLE IF EXISTS public.sites;"
        " CREATE TABLE public.sites (name text, geom geometry(Point, 4326));"
        " INSERT INTO public.sites VALUES ('pier', ST_SetSRID(ST_MakePoint(-122.4, 37.8), 4326));",
    )  # fmt: skip
    yield "public.sites"
    box_exec("sudo", "-u", "postgres", "psql", "--quiet", "--dbname=event", "--command", "DROP TABLE public.sites;")


@pytest.fixture(scope="module")
def other_user(hub_user):
    user = hub_user("e2e-db-bob")
    user.start_server()
    yield user
    user.stop_server()


def test_each_user_has_a_role_of_their_own(running_server, other_user):
    mine = query(running_server, "SELECT current_user")["ok"][0][0]
    theirs = query(other_user, "SELECT current_user")["ok"][0][0]
    assert mine.startswith("u_e2e_alice_") and theirs.startswith("u_e2e_db_bob_") and mine != theirs


def role_names(username):
    """The role pophub names for `username` now, and the one an older pophub named (md5, 32 bits)."""
    readable = re.sub("[^a-z0-9]+", "_", username.lower())
    new = f"u_{readable[:28]}_{hashlib.sha256(username.encode()).hexdigest()[:32]}"
    return new, f"u_{readable[:40]}_{hashlib.md5(username.encode(), usedforsecurity=False).hexdigest()[:8]}"


def test_a_role_is_named_by_128_bits_of_sha256_and_holds_few_connections(running_server):
    mine = "SELECT current_user, rolconnlimit FROM pg_roles WHERE rolname = current_user"
    ((role, limit),) = query(running_server, mine)["ok"]
    assert role == role_names(running_server.name)[0] and limit == 10, (role, limit)


def test_a_role_an_older_pophub_named_moves_to_the_new_name_with_its_tables(hub_user):
    user = hub_user("e2e-db-old-carol")
    new, old = role_names(user.name)
    box_exec(
        "runuser", "-u", "postgres", "--", "psql", "--quiet", "--dbname=event", "--command",
        f'CREATE ROLE "{old}" LOGIN IN ROLE event_users; CREATE SCHEMA "{old}" AUTHORIZATION "{old}";'
        f" CREATE TABLE \"{old}\".kept AS SELECT 'from before' AS text;"
        f' ALTER TABLE "{old}".kept OWNER TO "{old}";',
    )  # fmt: skip
    user.start_server()
    try:
        found = query(user, "SELECT current_user, current_schema, (SELECT text FROM kept)")["ok"]
        assert found == [[new, new, "from before"]], found
        gone = box_exec("runuser", "-u", "postgres", "--", "psql", "-tA", "--dbname=event", "--command",
                        f"SELECT count(*) FROM pg_roles WHERE rolname = '{old}'")  # fmt: skip
        assert gone.strip() == "0"
    finally:
        user.stop_server()


def test_private_schemas_stay_private(running_server, other_user):
    created = query(
        running_server,
        "DROP TABLE IF EXISTS notes",
        "CREATE TABLE notes AS SELECT 'mine' AS text",
        "SELECT current_schema",
    )
    schema = created["ok"][0][0]
    assert schema.startswith("u_e2e_alice_")
    assert query(running_server, "SELECT text FROM notes")["ok"] == [["mine"]]
    refused = query(other_user, f"SELECT * FROM {schema}.notes")
    assert "permission denied for schema" in refused["error"]


def test_everyone_reads_the_shared_datasets_and_no_one_changes_them(running_server, other_user, shared_dataset):
    for user in (running_server, other_user):
        rows = query(user, f"SELECT name, ST_AsText(geom) FROM {shared_dataset}")["ok"]
        assert rows == [["pier", "POINT(-122.4 37.8)"]]
    refused = query(other_user, f"DELETE FROM {shared_dataset}")
    assert "permission denied" in refused["error"]


def test_the_superuser_is_refused_from_a_container(running_server):
    refused = query(running_server, "SELECT 1", conninfo="user=postgres password=anything")
    assert "rejects connection" in refused["error"] or "no pg_hba.conf entry" in refused["error"], refused


def test_other_databases_are_refused(running_server):
    refused = query(running_server, "SELECT 1", conninfo="dbname=jupyterhub")
    assert "rejects connection" in refused["error"] or "no pg_hba.conf entry" in refused["error"], refused


def test_only_scram_is_accepted(running_server):
    assert "ok" in query(running_server, "SELECT 1", conninfo="require_auth=scram-sha-256")
    refused = query(running_server, "SELECT 1", conninfo="require_auth=md5")
    # The server asked for SASL (SCRAM), which a client that insists on md5 refuses.
    assert 'requirement "md5" failed: server requested SASL authentication' in refused["error"], refused
