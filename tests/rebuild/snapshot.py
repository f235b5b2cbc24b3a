"""What users made on a pophub box, printed as JSON, to compare one box with another.

Run inside the box as root with the hub's Python (it reads stored auth state with JupyterHub's
own crypto): docker exec -i BOX /opt/jupyterhub/venv/bin/python - < snapshot.py

Each part maps a name to what identifies its content: every file's type, mode, owner and SHA-256;
every table's row count and the MD5 of its rows in a fixed order; every role's attributes and
password hash; every hub account; every stored auth state, decrypted, as a SHA-256.
"""

import asyncio
import fnmatch
import grp
import hashlib
import json
import os
import pwd
import subprocess
from pathlib import Path

HOME_VOLUMES = "pophub-home-*"
# The synced checkout's git metadata is rewritten by every pull; its files are compared.
SKIP_DIRS = {".git"}
DIRECTORIES = {
    "data": "/srv/pophub/data",
    "shared": "/srv/pophub/shared",
    "secrets": "/etc/pophub/secrets",
}
SECRET_FILES = [
    "/etc/jupyterhub/hub.env",
    "/etc/jupyterhub/proxy.env",
    "/etc/jupyterhub/verify.env",
    "/etc/jupyterhub/organizer.env",
    "/var/lib/jupyterhub/jupyterhub_cookie_secret",
    "/etc/pophub/tls/selfsigned.key",
]
DATABASES = ["event"]


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def owner(number, lookup):
    try:
        return lookup(number)[0]
    except KeyError:
        return number


def tree(root, mtimes=True, by_name=False):
    """Every entry under root: type, mode, owner, and the content's hash (and modification time)
    or a link's target. Owners by name where the box's own accounts own the files and the restore
    goes by name (`by_name`): a rebuilt box on another release may number its system accounts
    differently (say pophub-sync, which owns the synced checkout). Users' files keep numbers: uid
    1000 is the containers' user, whatever account the box may have under that number."""
    found = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            relative = os.path.relpath(path, root)
            if by_name:
                entry = [oct(st.st_mode), owner(st.st_uid, pwd.getpwuid), owner(st.st_gid, grp.getgrgid)]
            else:
                entry = [oct(st.st_mode), st.st_uid, st.st_gid]
            if os.path.islink(path):
                entry.append("link:" + os.readlink(path))
            elif os.path.isfile(path):
                entry += [st.st_size, digest(path)] + ([int(st.st_mtime)] if mtimes else [])
            found[relative] = entry
    return found


def volumes():
    names = subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True, text=True, check=True).stdout.split()
    names = sorted(n for n in names if fnmatch.fnmatchcase(n, HOME_VOLUMES))
    if not names:
        return {}
    inspected = json.loads(subprocess.run(["docker", "volume", "inspect", *names], capture_output=True, text=True,
                                          check=True).stdout)  # fmt: skip
    return {v["Name"]: tree(v["Mountpoint"]) for v in inspected}


def psql(database, sql):
    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-X", "-At", "-F", "\t", "-d", database, "-c", sql],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def fingerprint(database, relation, columns="t", where="true"):
    """Row count and the MD5 of the rows as text, sorted, so the order rows were written in is moot."""
    rows = psql(
        database,
        f"SELECT count(*), md5(coalesce(string_agg({columns}::text, E'\\n' ORDER BY {columns}::text), '')) "
        f"FROM {relation} t WHERE {where}",
    )
    return rows[0]


def user_tables(database):
    """Tables in every schema but the catalogs and those an extension owns (PostGIS's reference
    tables come with the extension, not with the event)."""
    return psql(
        database,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') ORDER BY 1",
    )


def databases():
    found = {}
    for database in DATABASES:
        for (table,) in user_tables(database):
            found[f"{database}:{table}"] = fingerprint(database, table)
    # The hub's database: what users made. The hub rewrites the rest itself at every start
    # (services, roles from the config, which servers run).
    hub = {
        "users": ("(t.id, t.name, t.created, t.cookie_id, t.encrypted_auth_state)", "true"),
        "users_info": ("t", "true"),
        "groups": ("(t.name)", "true"),
        "user_group_map": ("t", "true"),
        # Tokens users made, without when they were last used; the hub purges expired ones at start.
        "api_tokens": (
            "(t.id, t.hashed, t.prefix, t.user_id, t.created, t.expires_at, t.note)",
            "t.user_id IS NOT NULL AND (t.expires_at IS NULL OR t.expires_at > now() + interval '1 hour')",
        ),
    }
    for table, (columns, where) in hub.items():
        found[f"jupyterhub:{table}"] = fingerprint("jupyterhub", table, columns, where)
    return found


def roles():
    rows = psql(
        "postgres",
        "SELECT rolname, rolsuper, rolcanlogin, rolinherit, rolcreaterole, rolcreatedb, coalesce(rolpassword, '') "
        "FROM pg_authid WHERE rolname NOT LIKE 'pg\\_%' AND rolname <> 'postgres' ORDER BY 1",
    )
    members = psql(
        "postgres",
        "SELECT r.rolname, m.rolname, a.admin_option FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
        "JOIN pg_roles m ON m.oid = a.member ORDER BY 1, 2",
    )
    return {
        "roles": {row[0]: [*row[1:-1], hashlib.sha256(row[-1].encode()).hexdigest()] for row in rows},
        "memberships": sorted("|".join(row) for row in members),
    }


def accounts():
    rows = psql("jupyterhub", "SELECT name, admin FROM users ORDER BY name")
    return dict(rows)


def auth_states():
    """Every stored auth state decrypted with the box's key: proof the key came back with it."""
    env = dict(line.split("=", 1) for line in Path("/etc/jupyterhub/hub.env").read_text().split() if "=" in line)
    os.environ["JUPYTERHUB_CRYPT_KEY"] = env["JUPYTERHUB_CRYPT_KEY"]
    from jupyterhub.crypto import decrypt

    async def read(blob):
        try:
            state = await decrypt(bytes.fromhex(blob))
            return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
        except Exception as error:  # noqa: BLE001 (the comparison shows which one could not be read, and why)
            return f"unreadable: {type(error).__name__}: {error}"

    async def read_all(rows):
        return {name: await read(blob) for name, blob in rows}

    rows = psql("jupyterhub", "SELECT name, encode(encrypted_auth_state, 'hex') FROM users "
                              "WHERE encrypted_auth_state IS NOT NULL ORDER BY name")  # fmt: skip
    found = asyncio.run(read_all(rows))
    return found


def main():
    snapshot = {
        "homes": volumes(),
        # The synced checkout in the data directory is git's: a pull after the restore may write
        # the same content again, with a new time.
        # shared holds users' files, restored by number (uid 1000 in every container); the others by name.
        "directories": {
            name: tree(path, mtimes=name != "data", by_name=name != "shared") for name, path in DIRECTORIES.items()
        },
        "secrets": {path: digest(path) for path in SECRET_FILES if os.path.exists(path)},
        "tables": databases(),
        **roles(),
        "accounts": accounts(),
        "auth_states": auth_states(),
    }
    print(json.dumps(snapshot, indent=1, sort_keys=True))


main()
