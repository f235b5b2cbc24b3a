"""What a participant finds when their server starts, checked from inside spawned containers: the
event's packages, the shared data (read-only) and team (writable) directories, a home that is
theirs, the start-up hooks' logs, the synced repository and its data in PostGIS, the limits, and
the choice of images on the spawn page."""

import json
import re
import time

import pytest
from conftest import SETTINGS, box_exec, converge, user_containers

IMAGES = {image["display_name"]: image for image in SETTINGS["event_image_images"]}
DEFAULT, SECOND = list(IMAGES)
ORIGIN = SETTINGS["workspace_git_repo"]
CHECKOUT = "/srv/pophub/data/repo"


def container_of(user):
    (container,) = [c for c in user_containers(user.name) if c["State"]["Running"]]
    return container


def shell(user, command):
    """Run a shell command as the user, from a kernel in their server (the way they would)."""
    return user.run_code(
        "import subprocess\n"
        f"print(subprocess.run({command!r}, shell=True, capture_output=True, text=True).stdout, end='')"
    )


def wait_until(what, predicate, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def push_to_origin(message, script):
    """Commit in a clone of the event's repository on the box and push it to main."""
    box_exec("sh", "-euc", f"""
        work=$(mktemp -d); git clone --quiet {ORIGIN} "$work"; cd "$work"
        {script}
        git add -A; git -c user.name=organizer -c user.email=organizer@example.org commit --quiet -m '{message}'
        git push --quiet origin main; git rev-parse HEAD; rm -rf "$work"
    """)  # fmt: skip
    return box_exec("git", "-C", ORIGIN, "rev-parse", "main").strip()


@pytest.fixture(scope="module")
def alice(hub_user):
    user = hub_user("e2e-ws-alice")
    user.start_server()
    yield user
    user.stop_server()


@pytest.fixture(scope="module")
def bob(hub_user):
    user = hub_user("e2e-ws-bob")
    yield user
    if user.model()["servers"].get(""):
        user.stop_server()


def test_the_event_packages_import(alice):
    output = alice.run_code(
        "import importlib.metadata as m, tabulate, nbgitpuller, psycopg, jupyterlab\n"
        "print(m.version('tabulate'), m.version('nbgitpuller'))"
    )
    assert output.split() == ["0.9.0", "1.3.0"]


def test_an_interact_link_may_pull_only_into_a_visible_folder_of_the_home(alice):
    base = f"{alice.hub_url}/user/{alice.name}/git-pull"
    repo = "https://github.com/my-org/workshop"
    for path in ("", "/api"):
        refused = alice.token_session.get(base + path, params={"repo": repo, "targetpath": ".ipython"}, timeout=30)
        assert refused.status_code == 400 and "visible folder of your home" in refused.text, refused.text[:500]
    # An ordinary target still gets nbgitpuller's own page, which then starts the pull.
    page = alice.token_session.get(base, params={"repo": repo, "targetpath": "workshop"}, timeout=30)
    assert page.status_code == 200 and "nbgitpuller" in page.text.lower(), page.text[:300]
    assert shell(alice, "ls -a ~/.ipython 2>/dev/null | grep -c workshop || true").strip() in ("", "0")


def test_nbgitpuller_is_an_enabled_server_extension(alice):
    listing = re.sub(r"\x1b\[[0-9;]*m", "", shell(alice, "jupyter server extension list 2>&1"))
    assert re.search(r"nbgitpuller enabled\s+- Validating nbgitpuller\.\.\.\s+nbgitpuller 1\.3\.0 OK", listing), listing
    assert re.search(r"pophub_server enabled\s+- Validating pophub_server\.\.\.\s+pophub_server\s+OK", listing), listing


def test_data_is_read_only_and_the_team_directory_writable(alice, bob):
    result = json.loads(alice.run_code("""
import json, os
out = {}
for path in ("/srv/data/new.txt", os.path.expanduser("~/data/new.txt")):
    try:
        open(path, "w").close()
        out[path] = "written"
    except OSError as error:
        out[path] = error.errno
with open("/srv/shared/team-notes.txt", "w") as notes:
    notes.write("from alice\\n")
out["mode"] = oct(os.stat("/srv/shared/team-notes.txt").st_mode & 0o777)
print(json.dumps(out))
"""))
    assert set(result) == {"/srv/data/new.txt", "/home/jovyan/data/new.txt", "mode"}
    assert result["/srv/data/new.txt"] == 30 and result["/home/jovyan/data/new.txt"] == 30, "EROFS expected"
    # Group-writable despite the usual 022 umask: the team directory's default ACL.
    assert result["mode"] == "0o664"
    bob.start_server()
    try:
        output = bob.run_code(
            "open('/srv/shared/team-notes.txt', 'a').write('from bob\\n')\n"
            "print(open('/home/jovyan/shared/team-notes.txt').read(), end='')"
        )
    finally:
        bob.stop_server()
    assert output.splitlines() == ["from alice", "from bob"]


def test_home_files_belong_to_the_user_even_after_root_made_some(alice):
    # Files made by root in the home (by an older image, say) are handed back at the next start.
    container = container_of(alice)
    (volume,) = [m["Name"] for m in container["Mounts"] if m["Destination"] == "/home/jovyan"]
    alice.stop_server()
    box_exec("docker", "run", "--rm", "-u", "0", "-v", f"{volume}:/home/jovyan", "--entrypoint", "sh",
             container["Config"]["Image"], "-c",
             "mkdir -p /home/jovyan/by-root && touch /home/jovyan/by-root/file")  # fmt: skip
    alice.start_server()
    owners = shell(alice, "find /home/jovyan -xdev ! -user jovyan; stat -c %U:%G /home/jovyan/by-root/file")
    assert owners == "jovyan:users\n"
    assert shell(alice, "stat -c %U:%G /home/jovyan") == "jovyan:users\n"
    assert alice.run_code("import os; print(os.getuid(), os.geteuid())").split() == ["1000", "1000"]


def test_both_start_up_hooks_ran_and_logged_where_admins_read_them(alice):
    (logs,) = [m["Source"] for m in container_of(alice)["Mounts"] if m["Destination"] == "/var/log/pophub"]
    assert logs.startswith("/var/log/pophub/servers/")
    root_log = box_exec("cat", f"{logs}/hooks-root.log")
    user_log = box_exec("cat", f"{logs}/hooks-user.log")
    assert f"root hook ran as root for {alice.name}" in root_log
    assert "end root hook 10-root-mark: exit status 0" in root_log
    assert "user hook ran as jovyan in /home/jovyan" in user_log
    assert "end user hook 20-user-mark: exit status 0" in user_log
    assert shell(alice, "stat -c %U /home/jovyan/.user-hook-ran") == "jovyan\n"
    # Users can read their own logs but not change them.
    assert "root hook ran" in shell(alice, "cat /var/log/pophub/hooks-root.log")
    denied = shell(alice, "echo forged >> /var/log/pophub/hooks-root.log 2>&1 || echo refused")
    assert "refused" in denied and "forged" not in box_exec("cat", f"{logs}/hooks-root.log")


def test_memory_and_cpu_limits_apply_to_the_container(alice):
    host_config = container_of(alice)["HostConfig"]
    assert host_config["Memory"] == 1024**3
    # DockerSpawner sets 1.5 cores as a CFS quota of 150 ms per 100 ms period.
    assert host_config["CpuQuota"] == 150_000 and host_config["CpuPeriod"] in (0, 100_000)
    quota = shell(alice, "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    assert quota.split()[0] == "150000"
    # The kernel enforces it for the server's processes (cgroup v2 or v1, depending on the host).
    limit = shell(alice, "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert int(limit) == 1024**3


def sql(user, query):
    return json.loads(user.run_code(f"""
import json, psycopg
with psycopg.connect() as connection:
    print(json.dumps(connection.execute({query!r}).fetchall()))
"""))


def test_the_repository_and_its_data_reach_servers_and_postgis(alice):
    # The first sync ran during the converge: the checkout and both datasets are there.
    assert shell(alice, "cat ~/data/repo/README.md") == "# The test event\n"
    sites = sql(alice, "SELECT name, visitors, ST_AsText(geom) FROM venues ORDER BY visitors DESC LIMIT 2")
    assert sites == [["station", 5400, "POINT(8.54 47.38)"], ["harbour", 1200, "POINT(8.55 47.37)"]]
    ((count,),) = sql(alice, "SELECT count(*) FROM venues")
    assert sql(alice, "SELECT name, GeometryType(geom) FROM areas") == [["old town", "MULTIPOLYGON"]]
    oid_query = "SELECT 'public.venues'::regclass::oid::int, 'public.areas'::regclass::oid::int"
    (oids,) = sql(alice, oid_query)

    # A commit that changes no data file: the checkout follows, the tables are not reloaded.
    pushed = time.monotonic()
    note = f"Bring a laptop ({time.time_ns()})."
    head = push_to_origin("Notes", f"echo '{note}' > NOTES.md")
    arrived = wait_until(
        "the new commit reaching the data directory",
        lambda: box_exec("cat", "/srv/pophub/data/repo/NOTES.md", check=False) == f"{note}\n",
    )
    print(f"\ncommit {head[:12]} reached the data directory {arrived - pushed:.0f} s after the push")
    assert shell(alice, "cat /srv/data/repo/NOTES.md") == f"{note}\n"
    assert sync_git("rev-parse", "HEAD").strip() == head
    assert sql(alice, oid_query) == [oids]
    journal = box_exec("journalctl", "-u", "pophub-git-sync.service", "--since", "-2min", "--no-pager", "-o", "cat")
    assert "data/venues.csv unchanged, not reloaded (table venues)" in journal

    # A commit that changes one data file: that table alone is loaded again.
    push_to_origin("One more site", "echo 'museum,8.56,47.36,800' >> data/venues.csv")
    wait_until("the changed CSV being loaded", lambda: sql(alice, "SELECT count(*) FROM venues") == [[count + 1]])
    (after,) = sql(alice, oid_query)
    assert after[0] != oids[0] and after[1] == oids[1]
    # A table dropped on the box comes back at the next sync, though its file did not change.
    box_exec("sudo", "-u", "postgres", "psql", "--quiet", "--dbname=event", "--command", "DROP TABLE public.areas;")
    query = "SELECT to_regclass('public.areas') IS NOT NULL"
    wait_until(
        "the dropped table being loaded again",
        lambda: box_exec("sudo", "-u", "postgres", "psql", "-tA", "--dbname=event", "--command", query) == "t\n",
    )
    assert sql(alice, "SELECT name FROM areas") == [["old town"]]
    # Users read the event's tables but cannot change them.
    denied = alice.run_code("""
import psycopg
try:
    with psycopg.connect() as connection:
        connection.execute("DELETE FROM venues")
    print("deleted")
except psycopg.errors.InsufficientPrivilege:
    print("refused")
""")
    assert denied.strip() == "refused"


def sync_git(*argv):
    """git in the checkout, as the sync's account that owns it."""
    return box_exec("runuser", "-u", "pophub-sync", "--", "git", "-C", CHECKOUT, *argv)


def event_sql(query):
    return box_exec("runuser", "-u", "postgres", "--", "psql", "-tA", "--dbname=event", "--command", query).strip()


def test_the_sync_runs_as_its_own_account_keeps_no_address_and_follows_no_link(alice):
    unit = box_exec("systemctl", "show", "-p", "User", "-p", "Description", "pophub-git-sync.service")
    assert "User=pophub-sync" in unit and ORIGIN not in unit, unit
    assert ORIGIN not in box_exec("cat", f"{CHECKOUT}/.git/config"), "the address is kept in the checkout"
    assert box_exec("stat", "-c", "%U:%G %a", "/etc/pophub-git-sync/settings.json").strip() == "root:pophub-sync 640"
    assert box_exec("stat", "-c", "%a", "/etc/pophub-git-sync").strip() == "750"

    # Anyone who can push to the event's repository tries to make the box's secrets a table.
    links = "ln -s /etc/shadow data/shadow.csv; ln -s /dev/zero data/zero.csv; ln -s /etc data/etc"
    head = push_to_origin("Links", links)
    wait_until("the commit with links reaching the checkout", lambda: sync_git("rev-parse", "HEAD").strip() == head)
    try:
        # Checked out as plain files that hold the link's target, so nothing points elsewhere.
        kinds = box_exec("stat", "-c", "%F %s", f"{CHECKOUT}/data/shadow.csv", f"{CHECKOUT}/data/etc").splitlines()
        assert kinds == ["regular file 11", "regular file 4"], kinds
        assert shell(alice, "cat ~/data/repo/data/shadow.csv") == "/etc/shadow"
        owners = box_exec("find", CHECKOUT, "-not", "-user", "pophub-sync", "-printf", "%p\n")
        assert owners == "", f"files in the checkout the sync's account does not own: {owners}"
        # Nothing of /etc/shadow reached the database, whatever the sync made of the file.
        for table in ("shadow", "zero"):
            if event_sql(f"SELECT to_regclass('public.{table}') IS NOT NULL") == "t":
                assert "root:" not in event_sql(f"SELECT * FROM public.{table}")
    finally:
        push_to_origin("No links", "git rm --quiet data/shadow.csv data/zero.csv data/etc")
        event_sql("DROP TABLE IF EXISTS public.shadow, public.zero")


def test_the_spawn_page_offers_both_images_and_starts_the_second(bob):
    page = bob.session.get(f"{bob.hub_url}/hub/spawn", timeout=60)
    assert page.status_code == 200
    assert re.findall(r'<option value="([^"]+)"', page.text) == [DEFAULT, SECOND]
    started = bob.session.post(
        f"{bob.hub_url}/hub/spawn",
        data={"image": SECOND, "_xsrf": bob.session.cookies.get("_xsrf")},
        timeout=120,
    )
    assert started.status_code == 200, started.text[:500]
    bob.wait(lambda server: server and server.get("ready"), 300, "ready")
    try:
        assert container_of(bob)["Config"]["Image"].startswith("pophub/second:")
        assert bob.run_code("import humanize; print(humanize.naturalsize(2048))").strip() == "2.0 kB"
    finally:
        bob.stop_server()


def test_a_changed_recipe_reaches_the_next_start_and_leaves_running_servers_alone(alice, tmp_path_factory):
    before = container_of(alice)["Config"]["Image"]
    changed = [dict(SETTINGS["event_image_images"][0], pip_packages=["tabulate==0.9.0", "humanize==4.15.0"]),
               SETTINGS["event_image_images"][1]]  # fmt: skip
    # A run of the image role alone builds the new image, but the hub still offers the old one: a
    # start meanwhile must find it (it used to be pruned, and the start answered 500).
    converge(tmp_path_factory, tags="event_image", event_image_images=changed)
    alice.stop_server()
    alice.start_server()
    assert container_of(alice)["Config"]["Image"] == before
    converge(tmp_path_factory, event_image_images=changed)
    try:
        assert container_of(alice)["Config"]["Image"] == before, "the running server was touched"
        alice.stop_server()
        alice.start_server()
        after = container_of(alice)["Config"]["Image"]
        assert after.startswith("pophub/event:") and after != before
        assert alice.run_code("import humanize; print('new image')").strip() == "new image"
    finally:
        alice.stop_server()
        converge(tmp_path_factory)
        alice.start_server()
    # Back on the original recipe, whose image was kept while a server used it; the changed one
    # is pruned now that nothing uses it.
    assert container_of(alice)["Config"]["Image"] == before
    tags = box_exec("docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "pophub/event").split()
    assert tags == [before]


# A kernel's shell leaves `sleep` running with nobody to wait for it; it is re-parented to PID 1.
ORPHAN = """
import os, time
os.system("(sleep 0.5 &)")
time.sleep(3)
def state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(") ", 1)[1].split()[0]
def name(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()
pids = [p for p in os.listdir("/proc") if p.isdigit()]
zombies = [name(p) for p in pids if state(p) == "Z"]
print(name(1), os.stat("/proc/1").st_uid, len(zombies), zombies)
"""


def test_pid_1_is_an_init_that_reaps_orphans(alice):
    init, uid, count, *zombies = alice.run_code(ORPHAN).split(maxsplit=3)
    assert (init, uid) == ("dumb-init", "1000"), "PID 1 is not the init, run as the user"
    assert count == "0", f"orphans were left as zombies: {zombies}"


def test_a_servers_output_outlives_its_container(hub_user):
    """When a participant says "my server crashed", the organizer can still read what it said."""
    user = hub_user("e2e-ws-logs")
    user.start_server()
    user.run_code("import sys; print('a line for the journal', file=sys.stderr, flush=True)")
    (container,) = [c for c in user_containers(user.name) if c["State"]["Running"]]
    name = container["Name"].lstrip("/")
    user.stop_server()
    assert not [c for c in user_containers(user.name) if c["State"]["Running"]]
    # The container is gone; its output is in the box's journal, found by the container's name.
    logged = box_exec("journalctl", "--no-pager", "-o", "cat", "-t", "pophub-server", f"CONTAINER_NAME={name}")
    assert "jupyterhub-singleuser" in logged or "Jupyter Server" in logged, logged[-2000:]
    print(f"{name}: {len(logged.splitlines())} lines in the journal after the container was removed")
    # And the journal keeps it on disk, for a bounded time and space (journald reads its drop-ins).
    settings = box_exec("systemd-analyze", "cat-config", "systemd/journald.conf")
    assert "Storage=persistent" in settings and "MaxRetentionSec=30day" in settings, settings[-800:]
    assert box_exec("journalctl", "--header", "--no-pager").count("/var/log/journal/") > 0


def test_jupyterlab_asks_nobody_about_news_and_fetches_none(alice):
    plugin = "@jupyterlab/apputils-extension:notification"
    response = alice.token_session.get(f"{alice.hub_url}/user/{alice.name}/lab/api/settings/{plugin}", timeout=30)
    assert response.status_code == 200, response.text[:300]
    properties = response.json()["schema"]["properties"]
    assert properties["fetchNews"]["default"] == "false", properties["fetchNews"]
    assert properties["checkForUpdates"]["default"] is False, properties["checkForUpdates"]
    # Nor offers anyone extensions from PyPI.
    plugin = "@jupyterlab/extensionmanager-extension:plugin"
    response = alice.token_session.get(f"{alice.hub_url}/user/{alice.name}/lab/api/settings/{plugin}", timeout=30)
    assert response.json()["schema"]["properties"]["enabled"]["default"] is False
