"""The benchmark's parts. Each takes the run's context and returns a JSON-able dict of figures.
Every loop is bounded in count and in time; traffic goes to 127.0.0.1 and the box only."""

import collections
import contextlib
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests
from participant import PHASES, Participant, PhaseFailed, session_flow

from pophub.hubclient import HubError
from pophub_hub.eventday import container_name


class Context:
    def __init__(self, box, cafile, password, admin, admin_password, workdir, log):
        self.box, self.cafile, self.password = box, cafile, password
        self.admin, self.admin_password = admin, admin_password
        self.workdir, self.log = workdir, log
        self._admin_user = None

    @property
    def hub_url(self):
        return self.box.url

    def participant(self, name):
        user = Participant(self.hub_url, name, self.cafile)
        user.login(self.password)
        return user

    def admin_user(self):
        """The organizer, logged in, for clean-up across users (needs the admin password)."""
        if self._admin_user is None and self.admin_password:
            user = Participant(self.hub_url, self.admin, self.cafile)
            user.login(self.admin_password)
            self._admin_user = user
        return self._admin_user

    def stop_servers(self, names):
        """Stop whatever servers of `names` a failed session left running."""
        admin = self.admin_user()
        if admin is None:
            return
        for name in names:
            admin.client.api("DELETE", f"/users/{quote(name)}/server")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            users = admin.client.api("GET", "/users").json()
            if not any(u["name"] in names and u["servers"] for u in users):
                return
            time.sleep(1)


def summary(values):
    """median, p95, min, max of a list of seconds (nearest-rank p95)."""
    if not values:
        return {"n": 0, "median": None, "p95": None, "min": None, "max": None}
    ordered = sorted(values)
    p95 = ordered[max(0, -(-95 * len(ordered) // 100) - 1)]
    return {"n": len(ordered), "median": round(statistics.median(ordered), 3), "p95": round(p95, 3),
            "min": round(ordered[0], 3), "max": round(ordered[-1], 3)}  # fmt: skip


class CpuSampler:
    """boxtool's CPU sampler, detached inside the box for the length of a `with` block."""

    def __init__(self, ctx, name, limit):
        self.ctx, self.path, self.limit = ctx, f"/root/bench-cpu-{name}.jsonl", limit

    def __enter__(self):
        self.ctx.box.exec("rm", "-f", self.path, self.path + ".stop")
        self.ctx.box.boxtool_detached("cpu", self.path, "--duration", str(self.limit))
        return self

    def __exit__(self, *_):
        self.ctx.box.exec("touch", self.path + ".stop")
        time.sleep(1.2)
        text = self.ctx.box.exec("cat", self.path, check=False)
        self.samples = [json.loads(line) for line in text.splitlines() if line.strip()]
        return False

    def stats(self):
        out = {}
        for key in ("hub", "proxy", "nginx", "postgresql", "machine_busy_cores"):
            values = [s[key] for s in self.samples if key in s]
            out[key] = {"mean": round(statistics.mean(values), 2) if values else None, "max": max(values, default=None)}
        return out


class HubProfiler:
    """py-spy sampling the hub's Python stacks from this machine (the box lacks CAP_SYS_PTRACE; the
    machine's root has it) for the length of a `with` block; --nonblocking, so the hub is never
    paused. Without py-spy in .venv it records nothing and says so."""

    def __init__(self, ctx, name, limit):
        self.ctx, self.limit = ctx, limit
        self.path = ctx.workdir / f"hub-profile-{name}.txt"
        self.process, self.summary = None, {"available": False}

    def __enter__(self):
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
        top = subprocess.run(["docker", "top", self.ctx.box.name, "-eo", "pid,args"], capture_output=True, text=True)
        pid = next((line.split()[0] for line in top.stdout.splitlines() if "bin/jupyterhub --config" in line), None)
        if py_spy and pid:
            self.process = subprocess.Popen(
                [py_spy, "record", "--pid", pid, "--nonblocking", "--rate", "50", "--format", "raw",
                 "--duration", str(int(self.limit)), "--output", str(self.path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
        return self

    def __exit__(self, *_):
        if self.process is None:
            return False
        # py-spy writes what it has on SIGINT.
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        self.summary = summarize_profile(self.path) if self.path.exists() else {"available": False, "error": err[-300:]}
        return False


def summarize_profile(path, top=12):
    """From py-spy's collapsed stacks: the functions the hub spent its busy samples in, by self time
    (the leaf frame) and including callees (any frame of jupyterhub, dockerspawner, sqlalchemy...)."""
    leaf, inclusive, total = collections.Counter(), collections.Counter(), 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        count = int(count)
        total += count
        frames = stack.split(";")
        leaf[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter):
        return [{"frame": frame, "percent": round(100 * count / total, 1)} for frame, count in counter.most_common(top)]

    ours = collections.Counter({f: c for f, c in inclusive.items()
                                if any(k in f for k in ("jupyterhub/", "dockerspawner/", "sqlalchemy/", "tornado/web",
                                                        "psycopg", "docker/api", "pamela", "bcrypt"))})  # fmt: skip
    return {"available": True, "samples": total, "self": share(leaf), "inclusive": share(ours), "file": path.name}


# --- spawn latency -------------------------------------------------------------------------
# The event image as it was before pophub removed rfc3987-syntax (jsonschema's IRI checker, which
# builds a grammar at every server start): the same image with that one package put back (the
# version jsonschema's format-nongpl extra installed; lark, its dependency, is still in the image).
# Built in the box from PyPI, so its floor is measured in the same run as the image's own.
AS_BEFORE_IMAGE = "pophub-bench/as-before:rfc3987-syntax"
AS_BEFORE_RECIPE = """FROM {image}
RUN PIP_USER=0 pip install --no-cache-dir --no-deps rfc3987-syntax==1.1.0 && python3 -c "import rfc3987_syntax"
"""


def spawn_latency(ctx, runs):
    """`runs` hub spawns of one user against `runs` floor starts, interleaved, so both see the same
    load from whatever else the machine runs, and the CPU each start cost; the floor of the image
    as it was before rfc3987-syntax left it, interleaved too. One warm-up of each is not counted."""
    started = time.monotonic()
    user = ctx.participant("bench-spawn")
    image = ctx.box.image()
    spawns, floors, errors = [], [], []
    # CPU-seconds of each start, create to ready, from the container's cgroup (docker stats).
    spawn_cpu, floor_cpu = [], []
    container = container_name(user.name)

    def one_spawn():
        started = time.monotonic()
        user.spawn()
        seconds = time.monotonic() - started
        try:
            cpu = ctx.box.boxtool("container-cpu", container, timeout=60)["cpu_seconds"]
        finally:
            user.stop()
        return seconds, cpu

    def one_spawn_as_before():
        """A hub spawn of the image as it was: its tag lent to that image for one start, then given back."""
        ctx.box.exec("docker", "tag", AS_BEFORE_IMAGE, image)
        try:
            return one_spawn()[1]
        finally:
            ctx.box.exec("docker", "tag", image_id, image)

    def one_floor(of=image):
        answer = ctx.box.boxtool("floor", of, "--network", "pophub-users", timeout=180)
        return answer["seconds"], answer["cpu_seconds"]

    as_before_cpu, as_before_spawn_cpu, as_before_error = [], [], None
    image_id = ctx.box.exec("docker", "image", "inspect", "-f", "{{.Id}}", image).strip()
    try:
        ctx.box.exec("docker", "build", "-q", "-t", AS_BEFORE_IMAGE, "-", stdin=AS_BEFORE_RECIPE.format(image=image))
    except (RuntimeError, subprocess.SubprocessError) as error:
        as_before_error = f"the image as it was before could not be built: {str(error)[-300:]}"
    one_spawn(), one_floor()
    for index in range(runs):
        try:
            seconds, cpu = one_spawn()
            spawns.append(seconds)
            spawn_cpu.append(cpu)
        except (PhaseFailed, RuntimeError, subprocess.SubprocessError) as error:
            errors.append(str(error))
            ctx.stop_servers([user.name])
        try:
            seconds, cpu = one_floor()
            floors.append(seconds)
            floor_cpu.append(cpu)
        except (RuntimeError, subprocess.SubprocessError, TypeError) as error:
            errors.append(f"floor: {error}")
        if not as_before_error:
            try:
                as_before_cpu.append(one_floor(AS_BEFORE_IMAGE)[1])
                as_before_spawn_cpu.append(one_spawn_as_before())
            except (PhaseFailed, RuntimeError, subprocess.SubprocessError, TypeError) as error:
                errors.append(f"the image as before: {error}")
                ctx.stop_servers([user.name])
        ctx.log(f"  spawn {index + 1}/{runs}: hub {spawns[-1] if spawns else float('nan'):.2f} s "
                f"({spawn_cpu[-1] if spawn_cpu else float('nan'):.2f} core-s), floor "
                f"{floors[-1] if floors else float('nan'):.2f} s ({floor_cpu[-1] if floor_cpu else float('nan'):.2f} "
                f"core-s); the image as before: floor {as_before_cpu[-1] if as_before_cpu else float('nan'):.2f}, "
                f"hub {as_before_spawn_cpu[-1] if as_before_spawn_cpu else float('nan'):.2f} core-s")  # fmt: skip
    ctx.box.exec("docker", "image", "rm", "-f", AS_BEFORE_IMAGE, check=False)
    hub, bare = summary(spawns), summary(floors)
    ratio = round(hub["median"] / bare["median"], 2) if hub["median"] and bare["median"] else None
    journal = ctx.box.exec("journalctl", "-u", "jupyterhub", "--no-pager", "-o", "short-iso-precise",
                           "--since", f"-{int(time.monotonic() - started) + 5}s", check=False)  # fmt: skip
    return {"image": image, "hub": hub, "floor": bare, "median_ratio": ratio,
            "hub_seconds": [round(s, 3) for s in spawns], "floor_seconds": [round(s, 3) for s in floors],
            "cpu_per_start": {"hub": summary(spawn_cpu), "floor": summary(floor_cpu),
                              "floor_as_before": summary(as_before_cpu), "hub_as_before": summary(as_before_spawn_cpu),
                              "as_before_error": as_before_error},
            "breakdown": spawn_breakdown(journal, user.name), "errors": errors}  # fmt: skip


def spawn_breakdown(journal, name):
    """Where each spawn's time went, from the hub's own log: before the container exists (the
    API, the database role, the OAuth client, docker create), from its start until the server
    first calls the hub (Jupyter starting in the container), and from then until the hub has seen
    it answer and routed it (the hub's readiness poll and the proxy route)."""
    import re
    from datetime import datetime

    def when(line):
        return datetime.fromisoformat(line.split()[0]).timestamp()

    spans, current = [], {}
    for line in journal.splitlines():
        if f"Creating oauth client jupyterhub-user-{name}" in line:
            current = {"oauth": when(line)}
        elif "Starting container" in line and current:
            current["starting"] = when(line)
        elif f"POST /hub/api/users/{name}/activity" in line and "starting" in current and "activity" not in current:
            current["activity"] = when(line)
        elif (took := re.search(rf"User {re.escape(name)} took ([0-9.]+) seconds to start", line)) and current:
            ready = when(line)
            begun = ready - float(took.group(1))
            if "starting" in current and "activity" in current:
                spans.append({"before_container_start": current["starting"] - begun,
                              "container_to_first_hub_call": current["activity"] - current["starting"],
                              "first_hub_call_to_ready": ready - current["activity"]})  # fmt: skip
            current = {}
    return {key: summary([span[key] for span in spans]) for key in
            ("before_container_start", "container_to_first_hub_call", "first_hub_call_to_ready")}  # fmt: skip


# --- session load --------------------------------------------------------------------------
def session_load(ctx, levels, limit=600):
    """N participants at once, each through a whole session; per phase median, p95 and failures,
    with the CPU of the hub and the machine meanwhile."""
    results = []
    for level in levels:
        names = [f"bench-u{level:02d}-{index:02d}" for index in range(level)]
        ctx.log(f"  {level} participants at once")
        started = time.monotonic()
        with CpuSampler(ctx, f"load{level}", limit + 60) as cpu, HubProfiler(ctx, f"load{level}", limit) as profile:
            # A barrier lines the logins up, as when an organizer says "everyone, log in now".
            barrier = threading.Barrier(level)

            def session(name, barrier=barrier):
                barrier.wait(timeout=120)
                return session_flow(ctx.hub_url, name, ctx.password, ctx.cafile)

            with ThreadPoolExecutor(max_workers=level) as pool:
                futures = [pool.submit(session, name) for name in names]
                sessions = [future.result(timeout=limit + 120) for future in futures]
        wall = time.monotonic() - started
        failed = [s for s in sessions if s["error"]]
        if failed:
            ctx.stop_servers([s["user"] for s in failed])
        phases = {phase: summary([s["times"][phase] for s in sessions if phase in s["times"]])
                  for phase in [*PHASES, "first_result"]}  # fmt: skip
        failures = {phase: sum(1 for s in failed if s["error"]["phase"] == phase) for phase in PHASES}
        results.append({
            "users": level, "wall_seconds": round(wall, 1), "phases": phases, "failures": failures,
            "failed_sessions": len(failed), "throttled_starts": sum(s["throttled"] for s in sessions),
            "errors": sorted({s["error"]["message"] for s in failed})[:10], "cpu": cpu.stats(),
            "cpu_samples": cpu.samples, "hub_profile": profile.summary,
        })  # fmt: skip
        ctx.log(f"    {len(failed)} failed; p95 login {phases['login']['p95']} s, "
                f"p95 first result {phases['first_result']['p95']} s; hub CPU max {cpu.stats()['hub']['max']}")
    return results


# --- a room arriving -------------------------------------------------------------------------
WRONG_PASSWORD = "not-the-event-password"


def wave_arrival(ctx, name, arrives_at, mistypes):
    """One participant of the room: arrives at `arrives_at` (monotonic), types a wrong password
    `mistypes` times, logs in, presses Start and runs `print(5 * 4)`. Every answer that is neither
    the page they asked for nor the login form again (for a wrong password) is an error page: a
    429 to Start counts, and the participant presses Start again 2 s later, as people do."""
    time.sleep(max(0.0, arrives_at - time.monotonic()))
    participant = Participant(ctx.hub_url, name, ctx.cafile)
    out = {"user": name, "error_pages": [], "error": None}
    try:
        for _ in range(mistypes):
            answer = participant.mistype(WRONG_PASSWORD)
            # JupyterHub answers a wrong password with the form again, status 403, and a sentence.
            if answer.status_code != 403 or "Invalid username or password" not in answer.text:
                out["error_pages"].append(f"a wrong password answered {answer.status_code}")
        participant.login(ctx.password)
        participant.spawn()
        participant.run_cell("print(5 * 4)", "20")
    except PhaseFailed as failed:
        out["error"] = {"phase": failed.phase, "message": str(failed)[:300]}
        out["error_pages"].append(str(failed)[:300])
    out["error_pages"] += ["the start request answered 429"] * participant.throttled
    times = dict(participant.times)
    if all(phase in times for phase in ("spawn", "kernel", "cell")):
        times["first_result"] = times["spawn"] + times["kernel"] + times["cell"]
    out["times"] = times
    return out


def core_seconds(samples, key):
    """CPU a sampler's series adds up to, in core-seconds (each sample covers the time since the last)."""
    total, last = 0.0, None
    for sample in samples:
        if key in sample and last is not None:
            total += sample[key] * (sample["t"] - last)
        last = sample["t"]
    return round(total, 1)


def mib(text):
    """One of docker's sizes (0B, 12.3kB, 1.2GB, 45.6MiB) in MiB."""
    found = re.fullmatch(r"\s*([\d.]+)\s*([kMG]?i?B)\s*", text)
    if not found:
        return None
    factor = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[found[2]]
    return round(float(found[1]) * factor / 1024**2, 2)


def room_footprint(ctx, names):
    """Memory of the room's running servers (docker stats) and the disk each participant adds:
    their home volume and their container's own layer."""
    by_user = {}
    for container in ctx.box.user_containers():
        found = json.loads(ctx.box.exec("docker", "inspect", container))[0]
        user = next((e.split("=", 1)[1] for e in found["Config"]["Env"] if e.startswith("JUPYTERHUB_USER=")), None)
        if user in names:
            by_user[user] = found
    stats = {}
    if by_user:
        ids = [c["Id"][:12] for c in by_user.values()]
        found = ctx.box.exec("docker", "stats", "--no-stream", "--format", "{{.ID}} {{.MemUsage}}", *ids)
        for line in found.splitlines():
            ident, usage = line.split(" ", 1)
            stats[ident] = mib(usage.split("/")[0])
    sizes = {}
    for line in ctx.box.exec("docker", "ps", "--size", "--format", "{{.ID}}\t{{.Size}}").splitlines():
        ident, size = line.split("\t")
        sizes[ident] = mib(size.split("(")[0])
    homes = []
    for found in by_user.values():
        for mount in found["Mounts"]:
            if mount.get("Type") == "volume" and mount["Name"].startswith("pophub-home-"):
                homes.append(int(ctx.box.exec("du", "-sk", mount["Source"]).split()[0]) / 1024)
    return {
        "servers": len(by_user),
        "memory_mib": summary([value for value in stats.values() if value is not None]),
        "container_layer_mib": summary([sizes[c["Id"][:12]] for c in by_user.values() if c["Id"][:12] in sizes]),
        "home_mib": summary([round(h, 2) for h in homes]),
    }


def wave(ctx, levels, spread=10.0, limit=600):
    """The room: N participants arriving within `spread` seconds (evenly), a tenth of them
    mistyping the password twice first. Counts error pages (none is the goal), times login and
    Start-to-first-result, adds up the CPU each part of the box spent per participant, then reads
    the memory and disk of the room's servers before stopping them."""
    import resource

    results = []
    for level in levels:
        names = [f"bench-w{level:02d}-{index:02d}" for index in range(level)]
        ctx.log(f"  {level} participants arriving within {spread:.0f} s")
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        with CpuSampler(ctx, f"wave{level}", limit + 60) as cpu, ThreadPoolExecutor(max_workers=level) as pool:
            # Evenly over the spread; every tenth arrival mistypes the password twice first.
            futures = [pool.submit(wave_arrival, ctx, name, started + spread * index / max(1, level - 1),
                                   2 if index % 10 == 9 else 0) for index, name in enumerate(names)]  # fmt: skip
            sessions = [future.result(timeout=limit + 120) for future in futures]
        wall = time.monotonic() - started
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        client = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
        time.sleep(5)  # the servers settle to idle before their memory is read
        room = room_footprint(ctx, set(names))
        with_kernel = []
        for session in sessions[:3]:
            if session["error"] is None:
                user = ctx.participant(session["user"])
                with user.client.kernel(timeout=120) as kernel:
                    kernel.run("print(5 * 4)")
                    with_kernel.append(room_footprint(ctx, {session["user"]})["memory_mib"]["median"])
        ctx.stop_servers(names)
        spent = {key: core_seconds(cpu.samples, key)
                 for key in ("machine_busy_cores", "hub", "proxy", "nginx", "postgresql")}  # fmt: skip
        spent["bench_client"] = round(client, 1)
        services = sum(spent[key] for key in ("hub", "proxy", "nginx", "postgresql", "bench_client"))
        spent["user_servers_and_docker"] = round(spent["machine_busy_cores"] - services, 1)
        phases = {phase: summary([s["times"][phase] for s in sessions if phase in s["times"]])
                  for phase in ("mistype", "login", "spawn", "kernel", "cell", "first_result")}  # fmt: skip
        error_pages = [page for s in sessions for page in s["error_pages"]]
        results.append({
            "users": level, "spread_seconds": spread, "mistyping": sum(1 for i in range(level) if i % 10 == 9),
            "wall_seconds": round(wall, 1), "phases": phases,
            "got_result": sum(1 for s in sessions if "first_result" in s["times"]),
            "error_pages": len(error_pages), "error_page_kinds": dict(collections.Counter(error_pages).most_common(8)),
            "failed_starts": sum(1 for s in sessions if s["error"] and s["error"]["phase"] == "spawn"),
            "core_seconds": spent, "cpu": cpu.stats(), "room": room,
            "memory_with_kernel_mib": summary(with_kernel),
        })  # fmt: skip
        ctx.log(f"    {results[-1]['got_result']}/{level} got a result, {len(error_pages)} error pages; "
                f"p95 login {phases['login']['p95']} s, p95 first result {phases['first_result']['p95']} s")
    return results


# --- the organizer's status screen ------------------------------------------------------------
# The event-day command as bin/pophub status runs it on the box (playbooks/status.yml), minus Ansible.
STATUS = ["sh", "-c", "/opt/jupyterhub/*/bin/python -m pophub_hub.eventday status --json "
          "--backup-dir /var/backups/pophub"]


def status_answer(ctx, runs=3):
    """How long `status` takes on the box with the servers running now: median and max of `runs`."""
    times, found = [], {}
    for _ in range(runs):
        started = time.monotonic()
        found = json.loads(ctx.box.exec(*STATUS, timeout=120))
        times.append(time.monotonic() - started)
    return {"servers": len(found["servers"]), "median_seconds": round(statistics.median(times), 2),
            "max_seconds": round(max(times), 2)}  # fmt: skip


def status_load(ctx, servers):
    """`status` with no server of this part running (the floor), then with `servers` more running."""
    floor = status_answer(ctx)
    names = [f"bench-status-{index:02d}" for index in range(servers)]
    users = [ctx.participant(name) for name in names]
    try:
        with ThreadPoolExecutor(max_workers=min(servers, 10)) as pool:
            list(pool.map(lambda user: user.spawn(), users))
        loaded = status_answer(ctx)
    finally:
        ctx.stop_servers(names)
    return {"floor": floor, "loaded": loaded}


# --- data path -----------------------------------------------------------------------------
def data_path(ctx, user, duration, concurrency=10, rounds=4):
    """The same small authenticated request to a user server through nginx (TLS) and straight to
    the proxy, both generated inside the box, in alternating rounds. The ratio is the median of
    each round's TLS figure over the direct one next to it: on a shared machine the load of the
    neighbours drifts within a minute, and a pair of neighbouring rounds sees the same drift."""
    server = urlsplit(user.client.server_url())
    path = f"{server.path}api/status"
    cafile_in_box = "/etc/pophub/tls/selfsigned.crt"
    # By address, with the server's name as Host: the proxy routes by it with per-user subdomains.
    targets = {
        "tls": ["load", f"https://127.0.0.1:443{path}", "--cafile", cafile_in_box, "--host", server.netloc],
        "direct": ["load", f"http://127.0.0.1:8000{path}", "--host", server.netloc],
    }
    runs = {name: [] for name in targets}
    for _ in range(rounds):
        for name, argv in targets.items():
            runs[name].append(ctx.box.boxtool(*argv, "--token", user.token, "--concurrency", str(concurrency),
                                               "--duration", str(duration), timeout=duration + 120))  # fmt: skip
    out = {"concurrency": concurrency, "seconds_per_round": duration, "rounds": runs}
    for name, measured in runs.items():
        out[name] = {
            "requests_per_second": round(statistics.median(r["requests_per_second"] for r in measured), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in measured if r["p50_ms"] is not None), 2),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in measured if r["p99_ms"] is not None), 2),
            "errors": sum(r["errors"] for r in measured),
        }
    pairs = [t["requests_per_second"] / d["requests_per_second"]
             for t, d in zip(runs["tls"], runs["direct"], strict=True) if d["requests_per_second"]]  # fmt: skip
    out["round_ratios"] = [round(r, 2) for r in pairs]
    out["tls_over_direct"] = round(statistics.median(pairs), 2) if pairs else None
    return out


# --- recovery ------------------------------------------------------------------------------
class Prober:
    """Requests to a running user server through nginx every `interval` s, counting failures, in
    a thread, for the length of a `with` block."""

    def __init__(self, ctx, user, interval=0.1):
        self.url = f"{user.client.server_url()}api/status"
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ctx.cafile
        self.session.headers["Authorization"] = f"token {user.token}"
        self.interval, self.ok, self.failed, self.kinds = interval, 0, 0, set()
        self._done = threading.Event()

    def _loop(self):
        while not self._done.is_set():
            try:
                status = self.session.get(self.url, timeout=5).status_code
                if status == 200:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.kinds.add(f"HTTP {status}")
            except requests.RequestException as error:
                self.failed += 1
                self.kinds.add(type(error).__name__)
            self._done.wait(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._done.set()
        self._thread.join(10)
        return False


def health_ok(ctx):
    try:
        return requests.get(f"{ctx.hub_url}/hub/health", verify=ctx.cafile, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_until(ready, timeout, interval=0.1):
    """Seconds until ready() is true, or None after timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if ready():
            return round(time.monotonic() - started, 2)
        time.sleep(interval)
    return None


def hub_kill(ctx, user, timeout=120):
    """SIGKILL the hub's main process (as a crash would) and time until /hub/health answers again,
    while a running user server is asked for its status ten times a second."""
    with Prober(ctx, user) as probe:
        time.sleep(2)
        ctx.box.exec("systemctl", "kill", "--kill-who=main", "--signal=SIGKILL", "jupyterhub.service")
        killed = time.monotonic()
        # The hub is still answering for a moment after the signal; wait for it to be gone first.
        wait_until(lambda: not health_ok(ctx), 10, 0.05)
        healthy = wait_until(lambda: health_ok(ctx), timeout, 0.1)
        seconds = round(time.monotonic() - killed, 2) if healthy is not None else None
        time.sleep(3)
    return {"seconds_to_healthy": seconds, "probe_requests": probe.ok + probe.failed,
            "probe_failed": probe.failed, "probe_errors": sorted(probe.kinds)}  # fmt: skip


def box_restart(ctx, user_name, timeout=600):
    """`docker restart` of the whole box, then the first successful spawn (of a user whose server
    was running before the restart, which is what a returning participant does)."""
    started = time.monotonic()
    subprocess.run(["docker", "restart", ctx.box.name], check=True, capture_output=True, timeout=180)
    restarted = round(time.monotonic() - started, 2)
    to_health = wait_until(lambda: health_ok(ctx), timeout, 0.25)
    out = {"docker_restart_seconds": restarted, "seconds_to_healthy": None, "seconds_to_first_spawn": None}
    if to_health is None:
        out["error"] = "the hub did not answer /hub/health"
        return out
    out["seconds_to_healthy"] = round(time.monotonic() - started, 2)
    ctx._admin_user = None  # a restart keeps sessions, but start afresh like a participant would
    deadline = started + timeout
    attempts, last_error = 0, ""
    while time.monotonic() < deadline and attempts < 20:
        attempts += 1
        try:
            user = ctx.participant(user_name)
            if user.server_model():
                # The hub still lists the server from before; a participant would stop and start it.
                user.stop()
            user.spawn()
            out["seconds_to_first_spawn"] = round(time.monotonic() - started, 2)
            out["attempts"] = attempts
            user.stop()
            return out
        except (PhaseFailed, HubError, requests.RequestException) as error:
            last_error = str(error)[:300]
            time.sleep(2)
    out["error"] = last_error
    out["attempts"] = attempts
    return out


# --- footprint -----------------------------------------------------------------------------
def footprint(ctx, running_user=None):
    """Resident memory of the box's services, and of one idle user server's container."""
    out = {"services": ctx.box.boxtool("footprint")}
    if running_user:
        def environment(container):
            return ctx.box.exec("docker", "inspect", "-f", "{{.Config.Env}}", container)

        ids = [c for c in ctx.box.user_containers() if f"JUPYTERHUB_USER={running_user}" in environment(c)]
        if ids:
            stats = json.loads(ctx.box.exec("docker", "stats", "--no-stream", "--format", "{{json .}}", ids[0]))
            pids = ctx.box.exec("docker", "top", ids[0], "-eo", "pid").split()[1:]
            rss = pss = 0
            for pid in pids:
                status = ctx.box.exec("cat", f"/proc/{pid}/status", check=False)
                rollup = ctx.box.exec("cat", f"/proc/{pid}/smaps_rollup", check=False)
                rss += sum(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
                pss += sum(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
            out["user_server"] = {"docker_stats_mem": stats.get("MemUsage"), "processes": len(pids),
                                  "rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1)}  # fmt: skip
    return out


# --- the browser path ----------------------------------------------------------------------
def browser_path(ctx, name, code="print(5 * 4)", expect="20"):
    """One participant in headless Chromium, the way a room's browsers go: the login page, the
    form, the spawn page, their server starting, JupyterLab (through its OAuth round trip with the
    hub), a new notebook and a cell's result; then a reload of JupyterLab, as after a lost
    connection. Reports the bytes received on each visit by what served them, and the times."""
    import chromium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    if not shutil.which("chromedriver"):
        return {"error": "chromium-driver is not installed (bin/pophub base-image installs it)"}
    # A participant new to this box: JupyterLab shows a returning one their last notebook, not the launcher.
    name = f"{name}-{uuid.uuid4().hex[:6]}"
    profile = ctx.workdir / f"chromium-{name}"
    shutil.rmtree(profile, ignore_errors=True)
    driver = chromium.start(ctx.cafile, profile)

    def until(condition, timeout=180):
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)

    def visit():
        by_kind = collections.Counter()
        for url, size in chromium.received(driver):
            if url.startswith("http"):
                by_kind[chromium.kind(url)] += size
        return {"bytes": sum(by_kind.values()), "by_kind": dict(by_kind.most_common())}

    out, started = {}, time.monotonic()
    try:
        driver.get(f"{ctx.hub_url}/hub/login")
        driver.find_element(By.ID, "username_input").send_keys(name)
        driver.find_element(By.ID, "password_input").send_keys(ctx.password)
        driver.find_element(By.ID, "login_submit").click()
        # A box that offers several images shows the spawn form first; one with a single image starts
        # the server straight away and shows its progress, then JupyterLab.
        launcher_card = seen.element_to_be_clickable((By.CSS_SELECTOR, '.jp-LauncherCard[data-category="Notebook"]'))
        shown = until(seen.any_of(seen.element_to_be_clickable((By.CSS_SELECTOR, "#spawn_form [type=submit]")),
                                  launcher_card))  # fmt: skip
        out["spawn_form"] = shown.get_attribute("data-category") != "Notebook"
        if out["spawn_form"]:
            shown.click()
            shown = until(launcher_card)
        launcher = shown
        out["seconds_to_jupyterlab"] = round(time.monotonic() - started, 2)
        launcher.click()
        accept = seen.element_to_be_clickable((By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"))
        idle = seen.text_to_be_present_in_element((By.ID, "jp-main-statusbar"), "Idle")
        if until(seen.any_of(accept, idle), 90) is not True:
            driver.find_element(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept").click()
            until(idle, 90)
        editor = until(seen.element_to_be_clickable((By.CSS_SELECTOR, ".jp-Notebook .cm-content")), 60)
        editor.click()
        editor.send_keys(code)
        editor.send_keys(Keys.SHIFT, Keys.ENTER)
        until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".jp-OutputArea-output"), expect), 90)
        out["seconds_to_result"] = round(time.monotonic() - started, 2)
        out["server_url"] = driver.current_url.split("/lab")[0] + "/"
        out["first_visit"] = visit()
        driver.refresh()
        until(seen.text_to_be_present_in_element((By.ID, "jp-main-statusbar"), "Idle"), 90)
        time.sleep(2)  # what JupyterLab asks for once it is up (its settings, the kernel list)
        out["reload"] = visit()
    except Exception as error:  # noqa: BLE001 (the part reports what stopped it, the run goes on)
        out["error"] = f"{type(error).__name__} at {driver.current_url}: {str(error)[:300]}"
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        with contextlib.suppress(PhaseFailed, HubError, requests.RequestException):
            user = ctx.participant(name)
            if user.server_model():
                user.stop()
    return out
