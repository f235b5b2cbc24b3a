#!/usr/bin/env python3
"""Measurements that must run inside the box. The box has python3 and its standard library only,
so this file uses nothing else; bench/run copies it in and runs it with `docker exec`.

  boxtool.py load URL --token T [--cafile F] [--concurrency 10] [--processes 2] [--duration 15]
                      [--max-requests N]
      keep-alive GET load like a browser's tab; prints requests/s and latency percentiles as JSON
  boxtool.py floor IMAGE --network NET [--timeout 120]
      `docker run` of IMAGE until its Jupyter server answers: the floor a hub spawn cannot beat
  boxtool.py footprint
      resident memory (RSS and PSS) of the hub, proxy, nginx and PostgreSQL process trees
  boxtool.py cpu OUT --duration S [--interval 1]
      CPU use of the box and of those same process trees, one JSON line per interval, into OUT

Each prints one JSON document on stdout (cpu writes to OUT, so it can run detached).
"""

import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

# The services whose memory and CPU the report shows, by their systemd unit.
SERVICES = {
    "hub": "jupyterhub.service",
    "proxy": "jupyterhub-proxy.service",
    "nginx": "nginx.service",
    "postgresql": "postgresql@*-main.service",
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values, fraction):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --- load ----------------------------------------------------------------------------------
def load_threads(args, concurrency, max_requests):
    """`concurrency` threads, each on one keep-alive connection (as a browser holds one per tab);
    returns (latencies of 200 answers, error kinds, status counts)."""
    parts = urlsplit(args.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Authorization": f"token {args.token}"}
    if args.host:
        headers["Host"] = args.host  # a server at a name of its own (per-user subdomains)
    context = None
    if parts.scheme == "https":
        # Verified as a browser would: the box's certificate names 127.0.0.1 too.
        context = ssl.create_default_context(cafile=args.cafile or None)

    def connect():
        if context is None:
            return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        return http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=30, context=context)

    latencies, errors, statuses = [], [], {}
    lock = threading.Lock()
    budget = [max_requests]
    deadline = time.monotonic() + args.duration

    def take_one():
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def worker():
        # A new connection only after an error or a close, so a server that closes connections
        # shows up as handshake cost.
        connection = connect()
        while time.monotonic() < deadline and take_one():
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status == 200:
                        latencies.append(elapsed)
                    else:
                        errors.append(f"HTTP {response.status}")
                if response.will_close:
                    connection.close()
                    connection = connect()
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    errors.append(type(error).__name__)
                connection.close()
                connection = connect()
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.duration + 60)
    return latencies, errors, statuses


def load(args):
    """The connections are spread over `processes` processes, so Python's one-thread-at-a-time
    lock does not make the generator the bottleneck on the TLS side."""
    processes = max(1, min(args.processes, args.concurrency))
    shares = [args.concurrency // processes + (1 if i < args.concurrency % processes else 0) for i in range(processes)]
    started = time.monotonic()
    readers = []
    for share in shares:
        read_end, write_end = os.pipe()
        if os.fork() == 0:
            os.close(read_end)
            outcome = load_threads(args, share, max(1, args.max_requests * share // args.concurrency))
            with os.fdopen(write_end, "w") as pipe:
                json.dump(outcome, pipe)
            os._exit(0)
        os.close(write_end)
        readers.append(read_end)
    latencies, errors, statuses = [], [], {}
    for read_end in readers:
        with os.fdopen(read_end) as pipe:
            got_latencies, got_errors, got_statuses = json.load(pipe)
        latencies += got_latencies
        errors += got_errors
        for status, count in got_statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    for _ in readers:
        os.wait()
    wall = time.monotonic() - started
    result = {
        "url": args.url,
        "concurrency": args.concurrency,
        "processes": processes,
        "seconds": round(wall, 3),
        "requests": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "statuses": statuses,
        "requests_per_second": round(len(latencies) / wall, 1) if wall else None,
    }
    for name, fraction in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        value = percentile(latencies, fraction)
        result[name] = round(value * 1000, 2) if value is not None else None
    print(json.dumps(result))


# --- a container's CPU ---------------------------------------------------------------------
def container_cpu_seconds(name):
    """The CPU-seconds a container has used since it was started: its cgroup's counter, as the
    engine's stats API reports it (one sample, no waiting for a second one)."""
    connection = http.client.HTTPConnection("docker")
    connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.sock.settimeout(30)
    connection.sock.connect("/var/run/docker.sock")
    try:
        connection.request("GET", f"/containers/{name}/stats?stream=false&one-shot=true")
        response = connection.getresponse()
        stats = json.loads(response.read())
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"docker stats of {name}: HTTP {response.status} {stats}")
    return round(stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9, 3)


def container_cpu(args):
    print(json.dumps({"cpu_seconds": container_cpu_seconds(args.name)}))


# --- floor ---------------------------------------------------------------------------------
def floor(args):
    """The same image on the same engine, started by hand, until Jupyter answers over HTTP."""
    name = f"pophub-bench-floor-{os.getpid()}"
    started = time.monotonic()
    # The image's own entry point (the start script) and Jupyter Server on its default port,
    # without the hub: what is left is container start and Python start-up, which no spawner skips.
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, "--network", args.network, args.image,
         "jupyter", "server", "--ip=0.0.0.0", "--port=8888", "--IdentityProvider.token=", "--no-browser"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    try:
        address = subprocess.run(
            ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        url = f"http://{address}:8888/api"
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        seconds = round(time.monotonic() - started, 3)
                        print(json.dumps({"seconds": seconds, "cpu_seconds": container_cpu_seconds(name)}))
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        print(json.dumps({"seconds": None, "error": f"no answer from {url} within {args.timeout} s"}))
        sys.exit(1)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


# --- process trees -------------------------------------------------------------------------
def children_map():
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    return children


def main_pid(unit):
    if "*" in unit:
        listed = subprocess.run(
            ["systemctl", "list-units", "--plain", "--no-legend", "--state=running", unit],
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        if not listed:
            return 0
        unit = listed[0]
    shown = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", unit], capture_output=True, text=True)
    return int(shown.stdout.strip() or 0)


def tree(pid, children):
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def service_trees():
    children = children_map()
    trees = {}
    for name, unit in SERVICES.items():
        pid = main_pid(unit)
        trees[name] = tree(pid, children) if pid else []
    return trees


def memory_of(pid):
    """(RSS, PSS) in KiB; PSS splits shared pages among their users, so it adds up across processes."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def footprint(_args):
    result = {}
    for name, pids in service_trees().items():
        sizes = [memory_of(pid) for pid in pids]
        result[name] = {
            "processes": len(pids),
            "rss_mib": round(sum(rss for rss, _ in sizes) / 1024, 1),
            "pss_mib": round(sum(pss for _, pss in sizes) / 1024, 1),
        }
    print(json.dumps(result))


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except OSError:
        return 0


def total_ticks():
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # all, idle + iowait


def cpu(args):
    """One line per interval: each service tree's CPU in cores, and the whole machine's busy cores.
    The box shares the kernel with the machine, so /proc/stat is the machine's, other work included."""
    deadline = time.monotonic() + args.duration
    cores = os.cpu_count()
    with open(args.out, "w") as out:
        trees = service_trees()
        before = {name: sum(cpu_ticks(pid) for pid in pids) for name, pids in trees.items()}
        all_before, idle_before = total_ticks()
        while time.monotonic() < deadline and not os.path.exists(args.out + ".stop"):
            time.sleep(args.interval)
            # Trees change as PostgreSQL forks backends; re-read them each time.
            trees = service_trees()
            now = {name: sum(cpu_ticks(pid) for pid in pids) for name, pids in trees.items()}
            all_now, idle_now = total_ticks()
            span = (all_now - all_before) or 1
            sample = {"t": time.time(), "machine_busy_cores": round(cores * (1 - (idle_now - idle_before) / span), 2)}
            for name in now:
                sample[name] = round(max(0, now[name] - before.get(name, now[name])) / CLOCK_TICKS / args.interval, 2)
            out.write(json.dumps(sample) + "\n")
            out.flush()
            before, all_before, idle_before = now, all_now, idle_now


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("load")
    p.add_argument("url")
    p.add_argument("--token", required=True)
    p.add_argument("--cafile", default="")
    p.add_argument("--host", default="", help="the Host header, when the URL names the box by address")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--max-requests", type=int, default=200000)
    p = commands.add_parser("floor")
    p.add_argument("image")
    p.add_argument("--network", required=True)
    p.add_argument("--timeout", type=float, default=120)
    p = commands.add_parser("container-cpu")
    p.add_argument("name")
    commands.add_parser("footprint")
    p = commands.add_parser("cpu")
    p.add_argument("out")
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    run = {"load": load, "floor": floor, "container-cpu": container_cpu, "footprint": footprint, "cpu": cpu}
    run[args.command](args)


if __name__ == "__main__":
    main()
