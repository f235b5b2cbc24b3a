"""The organizer's event day, on the box: `python -m pophub_hub.eventday <command>`, run as root in
the hub's environment by the playbooks status.yml, announce.yml, stop.yml, unban.yml, logs.yml and
admins.yml.

It reads the hub through its REST API with the pophub-organizer service's token (every user and
server; it may stop servers, and start, open or change nothing), and the box through systemd,
Docker, fail2ban and the file system. Each command prints what it found or did, or one sentence
saying what was wrong with what it was asked, and exits 2 then. Only the standard library and the
hub's own packages are used, so it runs wherever the hub does."""

import argparse
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SETTINGS_FILE = Path("/etc/jupyterhub/pophub-hub.json")
TOKEN_FILE = Path("/etc/jupyterhub/organizer.env")
NGINX_CONF = Path("/etc/nginx/nginx.conf")
JAILS = ("pophub-hub-login", "sshd")
# What the status screen shows, by the name an organizer knows.
UNITS = {
    "hub": "jupyterhub.service",
    "proxy": "jupyterhub-proxy.service",
    "nginx": "nginx.service",
    "postgresql": "postgresql@*-main.service",
    "docker": "docker.service",
    "firewall": "pophub-firewall.service",
    "fail2ban": "fail2ban.service",
    "backup": "pophub-backup.service",
    "git sync": "pophub-git-sync.service",
}
BACKUP_NAME = re.compile(r"[0-9]{8}T[0-9]{6}Z-[a-z0-9-]+")
ACTIVE_MINUTES = 10  # "active now": the hub saw the user within this many minutes
# How JupyterHub (user.py) logs a start that failed: timed out, refused by the spawner, or an error.
FAILED_START = re.compile(
    r"\[[EW] .*(?:'s server failed to start in|Not starting .*'s server|Error starting .*'s server"
    r"|Unhandled error starting .*'s server)"
)


class Refusal(Exception):
    """What was wrong with the command, as a sentence for the organizer."""


class Announcement:
    """The banner `announce` sets: {"text": ...} in `path`, read at each page (and read again only
    when the file changed). Without the file, the page keeps the inventory's announcement."""

    def __init__(self, path, configured):
        self.path, self.configured = Path(path), html.escape(configured)
        self._seen, self._text = None, None

    def text(self):
        try:
            stat = self.path.stat()
        except OSError:
            return None
        if self._seen != (stat.st_mtime_ns, stat.st_size):
            try:
                self._text = str(json.loads(self.path.read_text())["text"])
            except (OSError, ValueError, KeyError, TypeError):
                self._text = None
            self._seen = (stat.st_mtime_ns, stat.st_size)
        return self._text

    def __call__(self, user):
        """JupyterHub calls a template variable's value with the page's user: here the same banner
        for all, a function of the page's own announcement."""
        return self.banner

    def banner(self, page):
        """The banner's HTML for a page whose own announcement is `page` (HTML)."""
        live, page = self.text(), page or ""
        if live is None:
            return page
        live = html.escape(live)
        if self.configured and self.configured in page:
            # NativeAuthenticator's login banner also holds the event's name and hint.
            return page.replace(self.configured, live).removesuffix("<br>")
        return "<br>".join(part for part in (page, live) if part)


def run(*argv, timeout=30):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        return 1, "", str(error)
    return result.returncode, result.stdout, result.stderr


class Hub:
    """The hub's REST API, as the pophub-organizer service."""

    def __init__(self, settings):
        self.base = f"http://{settings['hub_ip']}:{settings['hub_port']}/hub/api"
        match = re.search(r"^POPHUB_ORGANIZER_TOKEN=(\S+)", TOKEN_FILE.read_text(), re.MULTILINE)
        self.token = match[1]

    def call(self, method, path, query=None):
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, method=method, headers={  # noqa: S310 (the same)
            "Authorization": f"token {self.token}", "Accept": "application/jupyterhub-pagination+json",
        })  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (http to the hub, always)
                body = response.read()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise Refusal(
                f"The hub answered {error.code} to {method} {path} for the pophub-organizer service: run "
                "playbooks/site.yml --tags jupyterhub with this inventory, which gives the hub that service."
            ) from error
        except OSError as error:
            raise Refusal(f"The hub does not answer at {self.base} ({error}): `status` shows its unit.") from error
        return json.loads(body) if body else {}

    def users(self):
        found, offset = [], 0
        while True:
            page = self.call("GET", "/users", {"offset": offset, "limit": 200})
            items = page["items"] if isinstance(page, dict) else page
            found += items
            following = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
            if not following:
                return found
            offset = following["offset"]

    def user(self, name):
        found = self.call("GET", f"/users/{urllib.parse.quote(name, safe='')}")
        if found is None:
            raise Refusal(f"There is no user {name!r} on this hub: check the name (`status` lists who has a server).")
        return found


def parse_time(value):
    """Seconds since the epoch of one of the hub's ISO times, or None."""
    if not value:
        return None
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def container_name(user):
    from dockerspawner import DockerSpawner

    return f"jupyter-{DockerSpawner._escape(user)}"


def unit_state(pattern):
    _, out, _ = run("systemctl", "list-units", "--all", "--plain", "--no-legend", pattern)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    if not names:
        return None
    keys = "Id,ActiveState,SubState,Result,StateChangeTimestamp,ExecMainExitTimestamp"
    _, out, _ = run("systemctl", "show", "--timestamp=unix", "-p", keys, names[0])
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def stamp(key):
        value = props.get(key, "").lstrip("@")
        return int(value) if value.isdigit() else None

    failing = props.get("ActiveState") == "failed" or props.get("Result", "success") != "success"
    return {"unit": props.get("Id"), "state": f"{props.get('ActiveState')} ({props.get('SubState')})",
            "failing": failing, "since": stamp("StateChangeTimestamp"),
            "last_run": stamp("ExecMainExitTimestamp")}  # fmt: skip


def server_usage():
    """Image, memory and CPU of every running container, by name (`docker ps` and `docker stats`)."""
    _, out, _ = run("docker", "ps", "--format", "{{.Names}}\t{{.Image}}")
    usage = {name: {"image": image} for name, _, image in (line.partition("\t") for line in out.splitlines())}
    _, out, _ = run("docker", "stats", "--no-stream", "--format", "{{json .}}", timeout=20)
    for line in out.splitlines():
        entry = json.loads(line)
        used, _, limit = entry.get("MemUsage", "").partition(" / ")
        usage.setdefault(entry["Name"], {}).update(memory=used, memory_limit=limit,
                                                   memory_percent=entry.get("MemPerc"),
                                                   cpu_percent=entry.get("CPUPerc"))  # fmt: skip
    return usage


def home_sizes(settings):
    """Bytes in every home volume, by the user name in the volume's name."""
    from escapism import unescape  # DockerSpawner's, which escaped the names

    prefix = settings["home_volume"].split("{username}")[0]
    _, out, _ = run("docker", "volume", "ls", "-q", "--filter", f"name=^{prefix}")
    if not out.split():
        return {}
    _, inspected, _ = run("docker", "volume", "inspect", "-f", "{{.Name}} {{.Mountpoint}}", *out.split())
    sizes = {}
    for volume, _, mountpoint in (line.partition(" ") for line in inspected.splitlines()):
        code, used, _ = run("du", "-sb", mountpoint, timeout=60)
        if code == 0:
            sizes[unescape(volume.removeprefix(prefix), escape_char="-")] = int(used.split()[0])
    return sizes


def certificate():
    match = re.search(r"^\s*ssl_certificate\s+(\S+);", NGINX_CONF.read_text(), re.MULTILINE)
    if not match:
        return None
    _, out, _ = run("openssl", "x509", "-noout", "-enddate", "-subject", "-in", match[1])
    end = re.search(r"notAfter=(.+)", out)
    if not end:
        return None
    expires = time.mktime(time.strptime(end[1].strip().replace(" GMT", ""), "%b %d %H:%M:%S %Y")) - time.timezone
    return {"file": match[1], "expires": int(expires), "days_left": int((expires - time.time()) // 86400)}


def bans():
    found = {}
    for jail in JAILS:
        code, out, _ = run("fail2ban-client", "status", jail)
        listed = re.search(r"Banned IP list:\s*(.*)", out)
        if code == 0 and listed:
            found[jail] = listed[1].split()
    return found


def last_backup(directory):
    """The newest finished backup in `directory`: pophub-backup names each <UTC time>-<reason>
    (a backup being taken is still .partial-<name>)."""
    finished = [path for path in Path(directory).glob("*") if path.is_dir() and BACKUP_NAME.match(path.name)]
    if not finished:
        return None
    newest = max(finished, key=lambda path: path.name)
    size = sum(part.stat().st_size for part in newest.rglob("*") if part.is_file())
    return {"path": str(newest), "when": int(newest.stat().st_mtime), "bytes": size}


def status(settings, hub, backup_dir=None):
    """Everything the status screen shows, as one JSON-ready mapping."""
    now, clock = time.time(), time.monotonic()
    # docker stats samples for a second or two, whatever else is asked: the slow parts run side by side.
    users = hub.users()  # first: a hub that does not answer is said at once
    pool = ThreadPoolExecutor(max_workers=6)
    usage_of = pool.submit(server_usage)
    homes_of = pool.submit(home_sizes, settings)
    certificate_of, bans_of = pool.submit(certificate), pool.submit(bans)
    journal_of = pool.submit(run, "journalctl", "-u", "jupyterhub.service", "--since", "-1h", "-o", "cat", "--no-pager")
    units_of = {label: pool.submit(unit_state, pattern) for label, pattern in UNITS.items()}
    usage = usage_of.result()
    servers, active = [], []
    for user in users:
        seen = parse_time(user.get("last_activity"))
        if seen and now - seen < ACTIVE_MINUTES * 60:
            active.append(user["name"])
        for name, server in (user.get("servers") or {}).items():
            started, last = parse_time(server.get("started")), parse_time(server.get("last_activity"))
            entry = {"user": user["name"], "server": name, "ready": bool(server.get("ready")),
                     "pending": server.get("pending"), "started": int(started) if started else None,
                     "idle_seconds": int(now - last) if last else None, "image": None,
                     **usage.get(container_name(user["name"]), {})}  # fmt: skip
            servers.append(entry)
    _, out, _ = journal_of.result()
    failed_starts = [line for line in out.splitlines() if FAILED_START.search(line)]
    meminfo = {
        line.split(":")[0]: int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
    }
    disk = shutil.disk_usage("/")
    found = {
        "units": {label: unit.result() for label, unit in units_of.items()},
        "users": {"known": len(users), "active_now": sorted(active), "active_minutes": ACTIVE_MINUTES},
        "servers": sorted(servers, key=lambda entry: entry["user"]),
        "failed_starts_last_hour": failed_starts[-20:],
        "failed_starts_count": len(failed_starts),
        "box": {
            "cpus": os.cpu_count(),
            "load": list(Path("/proc/loadavg").read_text().split()[:3]),
            "memory_total": meminfo["MemTotal"],
            "memory_available": meminfo["MemAvailable"],
            "disk_total": disk.total,
            "disk_free": disk.free,
        },
        "homes": homes_of.result(),
        "certificate": certificate_of.result(),
        "backup": last_backup(backup_dir) if backup_dir else None,
        "bans": bans_of.result(),
    }
    pool.shutdown()
    found["took_seconds"] = round(time.monotonic() - clock, 2)
    return found


def size(count):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000


def ago(seconds):
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def render(found):
    """The status screen: one page of plain text, read at a glance."""
    now = time.time()
    lines = ["SERVICES"]
    for label, unit in found["units"].items():
        if unit is None:
            continue
        mark = "FAILING" if unit["failing"] else "ok"
        since = f"since {ago(now - unit['since'])} ago" if unit["since"] else ""
        last = f", last run {ago(now - unit['last_run'])} ago" if unit.get("last_run") else ""
        lines.append(f"  {label:<11} {mark:<8} {unit['state']:<22} {since}{last}")
    users, servers = found["users"], found["servers"]
    running = [s for s in servers if s["ready"]]
    pending = [s for s in servers if s["pending"]]
    lines += ["", f"USERS  {len(users['active_now'])} active in the last {users['active_minutes']} min, "
              f"{users['known']} known; servers: {len(running)} running, {len(pending)} pending; "
              f"{found['failed_starts_count']} failed start(s) in the last hour"]  # fmt: skip
    if servers:
        lines.append(f"  {'user':<24} {'state':<9} {'image':<10} {'started':>8} {'idle':>7} {'memory':>22} {'cpu':>7}")
    for entry in servers:
        state = "ready" if entry["ready"] else (entry["pending"] or "stopped")
        started = ago(now - entry["started"]) if entry["started"] else "-"
        memory = f"{entry.get('memory', '-')} / {entry.get('memory_limit', '-')}"
        image = (entry["image"] or "-").split("/")[-1].split(":")[0]  # pophub/event:0123abcd: event
        name = entry["user"] + (f"/{entry['server']}" if entry["server"] else "")
        lines.append(f"  {name:<24} {state:<9} {image:<10} {started:>8} "
                     f"{ago(entry['idle_seconds']):>7} {memory:>22} {entry.get('cpu_percent', '-'):>7}")  # fmt: skip
    for line in found["failed_starts_last_hour"][-5:]:
        lines.append(f"  failed: {line[:150]}")
    box = found["box"]
    lines += [
        "",
        f"BOX  {box['cpus']} CPUs, load {' '.join(box['load'])}; memory {size(box['memory_available'])} "
        f"free of {size(box['memory_total'])}; disk {size(box['disk_free'])} free of {size(box['disk_total'])}",
    ]
    if found["homes"]:
        biggest = sorted(found["homes"].items(), key=lambda item: -item[1])
        lines.append("  homes: " + ", ".join(f"{name} {size(used)}" for name, used in biggest[:10])
                     + (f" and {len(biggest) - 10} more" if len(biggest) > 10 else ""))  # fmt: skip
    certificate, backup = found["certificate"], found["backup"]
    lines.append(f"  certificate: {certificate['days_left']} days left" if certificate else "  certificate: unknown")
    lines.append(f"  last backup: {ago(now - backup['when'])} ago, {size(backup['bytes'])} ({backup['path']})"
                 if backup else "  last backup: none yet")  # fmt: skip
    for jail, addresses in found["bans"].items():
        lines.append(f"  banned by {jail}: {', '.join(addresses) if addresses else 'nobody'}")
    return "\n".join(lines)


def announce(settings, text=None, clear=False, reset=False):
    path = Path(settings["announcement_file"])
    if reset:
        path.unlink(missing_ok=True)
        configured = settings["announcement"]
        return (
            f"The banner is the inventory's again: {configured!r}."
            if configured
            else "No banner (none in the inventory)."
        )
    text = "" if clear else text
    if text is None or (not clear and not text.strip()):
        raise Refusal('Give the banner\'s text (announce "The room changes at 2 pm"), or --clear, or --reset.')
    if len(text) > 500:
        raise Refusal(f"The announcement is {len(text)} characters long: keep it to 500 or fewer (one or two lines).")
    partial = path.with_suffix(".new")
    partial.write_text(json.dumps({"text": text, "set": int(time.time())}))
    partial.chmod(0o644)
    partial.replace(path)
    return f"Every hub page now shows: {text!r}." if text else "The banner is gone from every hub page."


def stop(hub, names, everyone=False, dry_run=False):
    if everyone:
        targets = [user["name"] for user in hub.users() if (user.get("servers") or {})]
    else:
        if not names:
            raise Refusal("Name the users whose servers to stop, or give --all.")
        targets = []
        for name in names:
            if not (hub.user(name).get("servers") or {}):
                raise Refusal(f"{name} has no server running: nothing to stop (`status` lists who has one).")
            targets.append(name)
    if dry_run:
        return f"This stops {len(targets)} server(s): {', '.join(targets) or 'none'}."
    for name in targets:
        hub.call("DELETE", f"/users/{urllib.parse.quote(name, safe='')}/server")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = [name for name in targets if (hub.user(name).get("servers") or {})]
        if not left:
            break
        time.sleep(1)
    return f"Stopped {len(targets)} server(s): {', '.join(targets) or 'none'}. Their homes are kept."


def admins(hub, unlisted=()):
    """Who is an admin on the hub now, and which of `unlisted` (names just taken off
    jupyterhub_admin_users) still are: the hub keeps an admin flag it once gave."""
    now = sorted(user["name"] for user in hub.users() if user.get("admin"))
    lines = [f"Admins on the hub now: {', '.join(now) or 'none'}."]
    kept = [name for name in unlisted if name in now]
    if kept:
        lines.append(
            f"{', '.join(kept)} {'is' if len(kept) == 1 else 'are'} off the inventory's list but still admin on the "
            "hub, which keeps the flag it gave: an admin unticks Admin for them in /hub/admin (Edit User)."
        )
    return "\n".join(lines)


def unban(address):
    banned = bans()
    jails = [jail for jail, addresses in banned.items() if address in addresses]
    if not jails:
        now = ", ".join(a for addresses in banned.values() for a in addresses) or "nobody"
        raise Refusal(f"{address} is not banned (banned now: {now}).")
    for jail in jails:
        code, out, err = run("fail2ban-client", "set", jail, "unbanip", address)
        if code:
            raise Refusal(f"fail2ban did not lift the ban on {address} in {jail}: {err.strip() or out.strip()}")
    return f"{address} may log in again (the ban is lifted in {', '.join(jails)})."


def logs(hub, who, lines=200):
    if who == "hub":
        _, out, _ = run("journalctl", "-u", "jupyterhub.service", "-n", str(lines), "--no-pager", "-o", "short-iso")
        return out
    hub.user(who)
    _, out, _ = run("journalctl", f"CONTAINER_NAME={container_name(who)}", "-n", str(lines), "--no-pager",
                         "-o", "short-iso")  # fmt: skip
    hooks = Path("/var/log/pophub/servers") / who
    note = f"\n(the start-up hooks' logs are in {hooks} on the box)" if hooks.exists() else ""
    return (out if out.strip() and "-- No entries --" not in out else f"{who}'s server has written nothing yet.") + note


class _Hashed:
    """A file being written, and the SHA-256 and size of what went into it."""

    def __init__(self, out):
        self.out, self.digest, self.size = out, hashlib.sha256(), 0

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)


def hand_back(settings, hub, names, directory):
    """Each user's home as <user>.tar.gz in `directory` (made afresh), with MANIFEST.json and
    SHA256SUMS; the homes themselves are only read. Returns the manifest."""
    import docker

    from pophub_hub import handback

    for name in names:
        hub.user(name)
    names = names or sorted(user["name"] for user in hub.users())
    directory = Path(directory)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    client = docker.from_env(timeout=300)
    manifest = {"event": settings["event_name"], "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "archives": [], "without_home": []}  # fmt: skip
    taken = set()
    for name in names:
        top = base = handback.folder_name(name)
        count = 2
        while top in taken:  # "a b" is kept as a-20b, which another user may be called: the manifest says whose
            top, count = f"{base}-{count}", count + 1
        taken.add(top)
        path = directory / f"{top}.tar.gz"
        volume = handback.volume_name(settings["home_volume"], name)
        try:
            with path.open("wb") as out:
                target = _Hashed(out)
                counted = handback.write_home(client, settings["images"][0]["ref"], volume, settings["home_path"],
                                              top, target)  # fmt: skip
        except handback.NoHome:
            path.unlink()
            manifest["without_home"].append(name)
            continue
        manifest["archives"].append({"user": name, "file": path.name, "bytes": target.size,
                                     "sha256": target.digest.hexdigest(), **counted})  # fmt: skip
    (directory / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (directory / "SHA256SUMS").write_text("".join(f"{a['sha256']}  {a['file']}\n" for a in manifest["archives"]))
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pophub_hub.eventday", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="the whole box in one screen")
    show.add_argument("--json", action="store_true")
    show.add_argument("--backup-dir")
    told = commands.add_parser("announce", help="the banner on every hub page")
    told.add_argument("text", nargs="?")
    told.add_argument("--clear", action="store_true", help="no banner at all")
    told.add_argument("--reset", action="store_true", help="the inventory's banner again")
    halt = commands.add_parser("stop", help="stop servers (homes are kept)")
    halt.add_argument("users", nargs="*")
    halt.add_argument("--all", action="store_true")
    halt.add_argument("--dry-run", action="store_true")
    lift = commands.add_parser("unban", help="lift a login ban")
    lift.add_argument("address")
    chiefs = commands.add_parser("admins", help="who is an admin on the hub")
    chiefs.add_argument("--unlisted", nargs="*", default=[], help="names just taken off the inventory's list")
    read = commands.add_parser("logs", help="a user's server output, or the hub's")
    read.add_argument("who", help="a user name, or hub")
    read.add_argument("--lines", type=int, default=200)
    back = commands.add_parser("hand-back", help="every user's home as one archive, with a manifest")
    back.add_argument("users", nargs="*", help="only these users (default: everyone on the hub)")
    back.add_argument("--dir", required=True, help="where the archives go (made afresh)")
    args = parser.parse_args(argv)
    settings = json.loads(SETTINGS_FILE.read_text())
    try:
        if args.command == "status":
            found = status(settings, Hub(settings), args.backup_dir)
            print(json.dumps(found, indent=1) if args.json else render(found))
        elif args.command == "announce":
            print(announce(settings, args.text, args.clear, args.reset))
        elif args.command == "stop":
            print(stop(Hub(settings), args.users, args.all, args.dry_run))
        elif args.command == "unban":
            print(unban(args.address))
        elif args.command == "admins":
            print(admins(Hub(settings), args.unlisted))
        elif args.command == "logs":
            print(logs(Hub(settings), args.who, args.lines))
        elif args.command == "hand-back":
            print(json.dumps(hand_back(settings, Hub(settings), args.users, args.dir)))
    except Refusal as refusal:
        print(refusal, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
