"""results.json -> report.md and PNG plots. Each figure sits next to its goal and its floor.

  .venv/bin/python bench/report.py DIR
      re-makes DIR/report.md and the plots from DIR/results.json; a hand-written DIR/findings.md
      (why a goal was missed, what was tried) goes in too.
"""

import json
import sys
from pathlib import Path

GOALS = {
    "rerun_seconds": 45,
    "rerun_over_cold": 0.3,
    "spawn_over_floor": 1.5,
    # The CPU of a server start, at most half what it was (the image with rfc3987-syntax).
    "start_cpu_over_before": 0.5,
    "load_users": 30,
    "login_p95": 2.0,
    "first_result_p95": 30.0,
    "tls_over_direct": 0.8,
    "hub_kill_seconds": 15,
    "wave_users": (30, 50),
    "first_visit_mb": 2.0,
    "reload_mb": 0.3,
}


def verdict(ok):
    return "met" if ok else "**missed**"


def fmt(value, unit=""):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    return f"{value}{unit}"


def goals_table(results):
    """(figure, measured, goal, verdict) rows for every goal the run measured."""
    rows = []
    prov = results.get("provisioning")
    if prov:
        rerun, cold = prov["rerun"]["seconds"], prov["cold"]["seconds"]
        rows.append(("Re-run with no changes", f"{rerun:.0f} s (changed={prov['rerun']['recap'].get('changed')})",
                     f"<= {GOALS['rerun_seconds']} s, changed=0",
                     verdict(rerun <= GOALS["rerun_seconds"] and prov["rerun"]["recap"].get("changed") == 0)))
        rows.append(("Re-run / cold converge", f"{rerun / cold:.2f} ({rerun:.0f} s / {cold:.0f} s)",
                     f"<= {GOALS['rerun_over_cold']}", verdict(rerun / cold <= GOALS["rerun_over_cold"])))
    spawn = results.get("spawn")
    if spawn and spawn.get("median_ratio"):
        rows.append(("Spawn median / docker run floor",
                     f"{spawn['median_ratio']:.2f} ({spawn['hub']['median']:.2f} s / {spawn['floor']['median']:.2f} s)",
                     f"<= {GOALS['spawn_over_floor']}", verdict(spawn["median_ratio"] <= GOALS["spawn_over_floor"])))
    cpu = (spawn or {}).get("cpu_per_start") or {}
    for key, label in (("hub", "hub spawn"), ("floor", "floor")):
        now, before = (cpu.get(key) or {}).get("median"), (cpu.get(f"{key}_as_before") or {}).get("median")
        if now and before:
            goal = GOALS["start_cpu_over_before"]
            rows.append((f"CPU per server start ({label}), now / image as before",
                         f"{now / before:.2f} ({now:.2f} / {before:.2f} core-s)", f"<= {goal}",
                         verdict(now / before <= goal)))
    for level in results.get("load", []):
        if level["users"] != GOALS["load_users"]:
            continue
        phases = level["phases"]
        rows.append((f"{level['users']} participants: failed sessions", str(level["failed_sessions"]), "0",
                     verdict(level["failed_sessions"] == 0)))
        rows.append((f"{level['users']} participants: p95 login", fmt(phases["login"]["p95"], " s"),
                     f"<= {GOALS['login_p95']} s", verdict((phases["login"]["p95"] or 1e9) <= GOALS["login_p95"])))
        rows.append((f"{level['users']} participants: p95 Start to first cell result",
                     fmt(phases["first_result"]["p95"], " s"), f"<= {GOALS['first_result_p95']} s",
                     verdict((phases["first_result"]["p95"] or 1e9) <= GOALS["first_result_p95"])))
    for level in results.get("wave", []):
        if level["users"] not in GOALS["wave_users"]:
            continue
        n, phases = level["users"], level["phases"]
        rows.append((f"Room of {n} within {level['spread_seconds']:.0f} s: got a result",
                     f"{level['got_result']} of {n}", f"{n} of {n}", verdict(level["got_result"] == n)))
        rows.append((f"Room of {n}: error pages", str(level["error_pages"]), "0", verdict(level["error_pages"] == 0)))
        if n == GOALS["load_users"]:
            rows.append((f"Room of {n}: p95 login", fmt(phases["login"]["p95"], " s"), f"<= {GOALS['login_p95']} s",
                         verdict((phases["login"]["p95"] or 1e9) <= GOALS["login_p95"])))
            rows.append((f"Room of {n}: p95 Start to first result", fmt(phases["first_result"]["p95"], " s"),
                         f"<= {GOALS['first_result_p95']} s",
                         verdict((phases["first_result"]["p95"] or 1e9) <= GOALS["first_result_p95"])))
    data = results.get("data_path")
    if data:
        rows.append(("Data path: TLS req/s / direct req/s",
                     f"{data['tls_over_direct']:.2f} ({data['tls']['requests_per_second']:.0f} / "
                     f"{data['direct']['requests_per_second']:.0f})",
                     f">= {GOALS['tls_over_direct']}", verdict(data["tls_over_direct"] >= GOALS["tls_over_direct"])))
    browser = results.get("browser") or {}
    for key, label, goal in (("first_visit", "Browser: login page to a cell's result", "first_visit_mb"),
                             ("reload", "Browser: a reload of JupyterLab", "reload_mb")):  # fmt: skip
        if key in browser:
            megabytes = browser[key]["bytes"] / 1e6
            rows.append((label, f"{megabytes:.2f} MB", f"<= {GOALS[goal]} MB", verdict(megabytes <= GOALS[goal])))
    kill = (results.get("recovery") or {}).get("hub_kill")
    if kill:
        ok = kill["seconds_to_healthy"] is not None and kill["seconds_to_healthy"] <= GOALS["hub_kill_seconds"]
        rows.append(("Hub SIGKILL to /hub/health", fmt(kill["seconds_to_healthy"], " s"),
                     f"<= {GOALS['hub_kill_seconds']} s", verdict(ok)))
        rows.append(("Failed requests to a user server meanwhile",
                     f"{kill['probe_failed']} of {kill['probe_requests']}", "0", verdict(kill["probe_failed"] == 0)))
    return rows


def plots(results, outdir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(outdir / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        made.append(name)

    spawn = results.get("spawn")
    if spawn and spawn["hub_seconds"]:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.boxplot([spawn["hub_seconds"], spawn["floor_seconds"]], showfliers=True)
        ax.set_xticks([1, 2], ["hub spawn (API start to ready)", "floor: docker run to HTTP 200"])
        ax.set_ylabel("seconds")
        ax.set_title(f"Spawn latency, {len(spawn['hub_seconds'])} runs each")
        save(fig, "spawn.png")

    load = results.get("load")
    if load:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
        users = [level["users"] for level in load]
        for phase in ("login", "spawn", "kernel", "cell", "stop", "first_result"):
            left.plot(users, [level["phases"][phase]["p95"] for level in load], marker="o", label=phase)
        left.axhline(GOALS["first_result_p95"], color="grey", linestyle=":", linewidth=1)
        floor = (results.get("spawn") or {}).get("floor", {}).get("median")
        if floor:
            cores = results["machine"]["nproc"]
            left.plot(users, [n * floor / cores for n in users], color="black", linestyle="--", linewidth=1,
                      label="CPU floor of N starts")
        left.set_xlabel("participants at once")
        left.set_ylabel("p95 seconds")
        left.set_title("Session phases (p95)")
        left.legend(fontsize=7)
        for index, level in enumerate(load):
            samples = level["cpu_samples"]
            if samples:
                start = samples[0]["t"]
                right.plot([s["t"] - start for s in samples], [s["hub"] for s in samples], color=f"C{index}",
                           label=f"hub, {level['users']} users")
                right.plot([s["t"] - start for s in samples], [s["machine_busy_cores"] for s in samples],
                           color=f"C{index}", linestyle=":", label=f"machine, {level['users']} users")
        right.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        right.set_xlabel("seconds into the run")
        right.set_ylabel("cores busy")
        right.set_title("CPU: hub process tree vs whole machine")
        right.legend(fontsize=7)
        save(fig, "load.png")

    wave = results.get("wave")
    if wave:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        users = [level["users"] for level in wave]
        for phase in ("login", "first_result"):
            ax.plot(users, [level["phases"][phase]["p95"] for level in wave], marker="o", label=f"{phase} p95")
        ax.plot(users, [level["phases"]["first_result"]["median"] for level in wave], marker=".", linestyle=":",
                label="first_result median")
        ax.axhline(GOALS["first_result_p95"], color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(f"participants arriving within {wave[0]['spread_seconds']:.0f} s")
        ax.set_ylabel("seconds")
        ax.set_title("A room arriving: login and Start to first result")
        ax.legend(fontsize=7)
        save(fig, "wave.png")

    data = results.get("data_path")
    if data:
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
        names = ["tls", "direct"]
        labels = ["nginx TLS -> proxy", "proxy direct"]
        left.bar(labels, [data[n]["requests_per_second"] for n in names], color=["tab:blue", "tab:grey"])
        left.set_ylabel("requests/s")
        right.bar(labels, [data[n]["p99_ms"] for n in names], color=["tab:blue", "tab:grey"])
        right.set_ylabel("p99 ms")
        fig.suptitle(f"Data path, concurrency {data['concurrency']}")
        save(fig, "data_path.png")

    prov = results.get("provisioning")
    if prov:
        top = prov["cold"]["tasks"][:10][::-1]
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.barh([t["task"][:70] for t in top], [t["seconds"] for t in top])
        ax.set_xlabel("seconds")
        ax.set_title("Cold converge: ten slowest tasks")
        ax.tick_params(axis="y", labelsize=7)
        save(fig, "provisioning.png")

    foot = results.get("footprint")
    if foot:
        services = foot["services"]
        names = list(services)
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.bar(names, [services[n]["pss_mib"] for n in names], label="PSS")
        ax.plot(names, [services[n]["rss_mib"] for n in names], "k_", markersize=20, label="RSS")
        if foot.get("user_server"):
            ax.bar(["user server"], [foot["user_server"]["pss_mib"]], color="tab:orange")
        ax.set_ylabel("MiB")
        ax.set_title("Resident memory at idle")
        ax.legend(fontsize=7)
        save(fig, "footprint.png")
    return made


def per_participant(level):
    """Core-seconds one arriving participant cost the box (the bench client's own CPU left out)."""
    spent = level["core_seconds"]
    return (spent["machine_busy_cores"] - spent["bench_client"]) / level["users"]


def wave_section(results, wave):
    cores = results["machine"]["nproc"]
    out = ["## A room arriving", ""]
    add = out.append
    add(f"Each participant arrives at their moment within {wave[0]['spread_seconds']:.0f} s (evenly spread), "
        "every tenth types a wrong password twice first, then logs in through the form, presses Start (a 429 "
        "answer is an error page; they press again after 2 s), and runs `print(5 * 4)` in a new kernel. An error "
        "page is any answer a person would see as one: a 429, a failed start, a wrong password answered with "
        "anything but the login form again. CPU is what the whole machine was busy for during the wave, in "
        "core-seconds per participant, split by process tree; `user servers + Docker` is the rest of the machine "
        "(the containers, dockerd, containerd), with the bench client's own CPU (TLS, threads) left out. The "
        "ratio is the first-result p95 over the CPU floor of the room: N x (core-seconds per participant) / cores.")
    add("")
    add("| Users | Wall | Got a result | Error pages | Failed starts | login p50/p95 | first result p50/p95 | "
        "core-s per participant | of which user servers + Docker / hub / PostgreSQL / nginx / proxy | "
        "p95 / CPU floor |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    for level in wave:
        n, phases, spent = level["users"], level["phases"], level["core_seconds"]
        cost = per_participant(level)
        floor = n * cost / cores
        p95 = phases["first_result"]["p95"]
        split = " / ".join(f"{spent[key] / n:.2f}" for key in ("user_servers_and_docker", "hub", "postgresql",
                                                                "nginx", "proxy"))  # fmt: skip
        add(f"| {n} | {level['wall_seconds']:.0f} s | {level['got_result']} | {level['error_pages']} | "
            f"{level['failed_starts']} | {fmt(phases['login']['median'])} / {fmt(phases['login']['p95'])} | "
            f"{fmt(phases['first_result']['median'])} / {fmt(p95)} | {cost:.2f} | {split} | "
            f"{fmt(p95 / floor if p95 and floor else None)} ({fmt(floor, ' s')}) |")
    add("")
    start_cpu = ((results.get("spawn") or {}).get("cpu_per_start") or {}).get("hub", {}).get("median")
    if start_cpu:
        add(f"Against the CPU of the starts alone (the spawn part: {start_cpu:.2f} core-s per start, from the "
            "container's cgroup), the floor of a room of N is N x that / cores: "
            + "; ".join(f"{level['users']}: p95 {fmt(level['phases']['first_result']['p95'], ' s')} over "
                        f"{level['users'] * start_cpu / cores:.1f} s = "
                        f"{fmt(level['phases']['first_result']['p95'] / (level['users'] * start_cpu / cores))}"
                        for level in wave if level["phases"]["first_result"]["p95"])
            + ".")
        add("")
    for level in wave:
        if level["error_page_kinds"]:
            add(f"- {level['users']} users, error pages: "
                + "; ".join(f"{kind} ({count})" for kind, count in level["error_page_kinds"].items()))
    add("")
    out.extend(sizing_section(results, wave))
    return out


def browser_section(browser):
    """What one participant's browser received, by what served it: a venue connection carries this
    once per participant."""
    lines = ["## The browser path", ""]
    if browser.get("error"):
        return [*lines, f"The browser part stopped: {browser['error']}", ""]
    lines += [
        "One participant in headless Chromium (Debian's, driven by selenium; bench/chromium.py): the login page, "
        "the form, the spawn page, the server starting, JupyterLab through its OAuth round trip with the hub, a new "
        "notebook and a cell's result; then a reload of JupyterLab. Bytes as Chromium received them (compressed, "
        "headers included, redirects too; nothing for what came from its cache). "
        f"JupyterLab after {browser['seconds_to_jupyterlab']} s, the result after {browser['seconds_to_result']} s; "
        f"the server at {browser['server_url']}.",
        "",
        "| Served by | First visit | Reload |",
        "|---|---|---|",
    ]
    kinds = list(dict.fromkeys([*browser["first_visit"]["by_kind"], *browser["reload"]["by_kind"]]))
    for kind in kinds:
        first, again = browser["first_visit"]["by_kind"].get(kind, 0), browser["reload"]["by_kind"].get(kind, 0)
        lines.append(f"| {kind} | {first / 1e3:.1f} KB | {again / 1e3:.1f} KB |")
    lines.append(f"| **all** | **{browser['first_visit']['bytes'] / 1e6:.2f} MB** | "
                 f"**{browser['reload']['bytes'] / 1e6:.2f} MB** |")  # fmt: skip
    return [*lines, ""]


def sizing_section(results, wave):
    """What an organizer needs to choose a VM, from this run's figures alone."""
    cores = results["machine"]["nproc"]
    largest = max(wave, key=lambda level: level["users"])
    p95 = largest["phases"]["first_result"]["p95"]
    if not p95 or largest["got_result"] == 0:
        return ["## Sizing", "", "No sizing: the largest room got no results.", ""]
    # How the p95 grew with the room on these cores: seconds of p95 per participant per core.
    per_core_seconds = p95 * cores / largest["users"]
    idle = largest["room"]["memory_mib"]["median"]
    with_kernel = largest["memory_with_kernel_mib"]["median"] or idle
    disk = (largest["room"]["home_mib"]["median"] or 0) + (largest["room"]["container_layer_mib"]["median"] or 0)
    services = (results.get("footprint") or {}).get("services")
    base = sum(tree["rss_mib"] for tree in services.values()) if services else None
    out = ["## Sizing", ""]
    add = out.append
    add(f"From the room of {largest['users']} above, on {cores} cores: each arriving participant cost "
        f"{per_participant(largest):.2f} core-seconds, and the first-result p95 was {p95:.1f} s, "
        f"{per_core_seconds:.2f} s per participant per core. A server with one kernel open holds "
        f"{fmt(with_kernel)} MiB ({fmt(idle)} MiB with none), plus what the participant's own work loads; "
        f"each participant adds {disk:.1f} MiB of disk (their home as the image's skeleton makes it, and their "
        "container's own layer), plus their files. "
        + (f"The box's own services hold {base:.0f} MiB (RSS, at idle). " if base else "")
        + "Rows assume the whole room arrives within the same seconds (the hard case; a room that trickles in "
        "needs less CPU), and the p95 to grow in proportion to the room per core, as it did here. No row asks for "
        f"fewer than {cores} cores, the size measured: below it the box's own services (hub, proxy, PostgreSQL, "
        "Docker) would compete with the starts, which this run did not measure.")
    add("")
    add("| Room arriving at once | cores for p95 <= 30 s | cores for p95 <= 60 s | memory (servers with a kernel, "
        "+ services) | disk (+ the image) |")
    add("|---|---|---|---|---|")
    for room in (30, 50, 100, 200):
        need = [max(cores, -(-room * per_core_seconds // target)) for target in (30, 60)]
        memory = room * with_kernel + (base or 0)
        add(f"| {room} | {need[0]:.0f} | {need[1]:.0f} | {memory / 1024:.1f} GiB | {room * disk:.0f} MiB |")
    add("")
    return out


def markdown(results, images, findings=""):
    lines = []
    add = lines.append
    machine = results["machine"]
    add(f"# pophub benchmark, {results['started']}")
    add("")
    add(f"Machine: {machine['cpu_model']}, {machine['nproc']} cores, {machine['memory_gib']} GiB, kernel "
        f"{machine['kernel']}, Docker engine {machine['docker_engine']} (inside the box "
        f"{machine.get('box_docker_engine', 'n/a')}), commit {machine['git_commit'][:12]}"
        f"{' with uncommitted changes' if machine.get('git_dirty') else ''}.")
    add("")
    add(f"Command: `{results['command']}`")
    add("")
    contention = results.get("contention", {})
    if contention.get("other_containers"):
        add(f"**Contended run**: other containers ran on the same {machine['nproc']} cores throughout "
            f"({', '.join(contention['other_containers'])}); load average {contention.get('loadavg_start')} at the "
            f"start, {contention.get('loadavg_end')} at the end. The figures are indicative, not a clean-machine "
            "result.")
        add("")
    for note in results.get("notes", []):
        add(f"- {note}")
    if results.get("notes"):
        add("")
    add("## Goals")
    add("")
    add("| Figure | Measured | Goal | |")
    add("|---|---|---|---|")
    for row in goals_table(results):
        add("| " + " | ".join(row) + " |")
    add("")

    prov = results.get("provisioning")
    if prov:
        add("## Provisioning")
        add("")
        add("| Run | Wall | changed |")
        add("|---|---|---|")
        for key, label in (("cold", "Cold converge of a fresh box"), ("rerun", "Re-run (ansible.cfg as is)"),
                           ("rerun_no_pipelining", "Re-run, ANSIBLE_PIPELINING=False"),
                           ("rerun_no_fact_cache", "Re-run, fact cache off (ANSIBLE_CACHE_PLUGIN=memory)")):
            if key in prov:
                add(f"| {label} | {prov[key]['seconds']:.0f} s | {prov[key]['recap'].get('changed')} |")
        add("")
        add("Image builds (event_image's build task): "
            + ", ".join(f"{t['task']} {t['seconds']:.1f} s" for t in prov.get("image_builds", [])) + ".")
        add("")
        add("Ten slowest tasks of the cold converge:")
        add("")
        add("| Task | s |")
        add("|---|---|")
        for task in prov["cold"]["tasks"][:10]:
            add(f"| {task['task']} | {task['seconds']:.1f} |")
        add("")
        add("Ten slowest tasks of the re-run:")
        add("")
        add("| Task | s |")
        add("|---|---|")
        for task in prov["rerun"]["tasks"][:10]:
            add(f"| {task['task']} | {task['seconds']:.1f} |")
        add("")
    spawn = results.get("spawn")
    if spawn:
        add("## Spawn latency")
        add("")
        add(f"Image `{spawn['image']}`. Hub: API start request until the progress stream says ready. Floor: "
            "`docker run` of the same image on the same engine until Jupyter Server answers `/api`.")
        add("")
        add("| | n | median | p95 | min | max |")
        add("|---|---|---|---|---|---|")
        for key in ("hub", "floor"):
            s = spawn[key]
            add(f"| {key} | {s['n']} | {fmt(s['median'], ' s')} | {fmt(s['p95'], ' s')} | {fmt(s['min'], ' s')} | "
                f"{fmt(s['max'], ' s')} |")
        add("")
        over = spawn["hub"]["median"] - spawn["floor"]["median"] if spawn["median_ratio"] else None
        add(f"Ratio of medians: {fmt(spawn['median_ratio'])}; the hub's spawn takes {fmt(over, ' s')} more than "
            "the floor.")
        cpu = spawn.get("cpu_per_start")
        if cpu and cpu["hub"]["median"] is not None:
            add("")
            add(f"CPU one start costs, create to ready, from the container's cgroup (the engine's stats): hub spawn "
                f"median {fmt(cpu['hub']['median'], ' core-s')} (p95 {fmt(cpu['hub']['p95'], ' core-s')}), "
                f"`docker run` floor median {fmt(cpu['floor']['median'], ' core-s')}.")
            before = cpu.get("floor_as_before") or {}
            hub_before = cpu.get("hub_as_before") or {}
            if before.get("median"):
                add(f"The image as it was before pophub removed rfc3987-syntax (that one package put back, built in "
                    f"the box in this run, interleaved with the rest; the hub's spawns of it under the event image's "
                    f"tag): floor median {fmt(before['median'], ' core-s')} per start, now "
                    f"{cpu['floor']['median'] / before['median']:.2f} of it; hub spawn median "
                    f"{fmt(hub_before.get('median'), ' core-s')}, now "
                    f"{fmt(cpu['hub']['median'] / hub_before['median'] if hub_before.get('median') else None)} of it.")
            elif cpu.get("as_before_error"):
                add(f"The floor of the image as it was before did not run: {cpu['as_before_error']}")
        breakdown = spawn.get("breakdown")
        if breakdown and breakdown["before_container_start"]["n"]:
            add("")
            add("Where a hub spawn's time goes, from the hub's log (median / p95): before the container starts (API, "
                "database role, OAuth client, docker create) "
                f"{fmt(breakdown['before_container_start']['median'], ' s')} / "
                f"{fmt(breakdown['before_container_start']['p95'], ' s')}; container start until the server's first "
                f"call to the hub {fmt(breakdown['container_to_first_hub_call']['median'], ' s')} / "
                f"{fmt(breakdown['container_to_first_hub_call']['p95'], ' s')}; from then until the hub has seen it "
                f"answer and routed it {fmt(breakdown['first_hub_call_to_ready']['median'], ' s')} / "
                f"{fmt(breakdown['first_hub_call_to_ready']['p95'], ' s')}.")
        if spawn["errors"]:
            add(f"Errors: {'; '.join(spawn['errors'][:5])}")
        add("")
    load = results.get("load")
    if load:
        add("## Session load")
        add("")
        add("Each participant: login form (with `_xsrf`), start, kernel, one cell, stop, all at once after a barrier. "
            "first_result = spawn + kernel + cell (what a participant waits from Start to their first output). "
            "Hub CPU is the hub's process tree in cores (one Python thread saturates at 1.0). "
            "The floor: N servers starting at once need at least N x (the docker run floor's median, nearly all of "
            "it one core busy with Python start-up) / cores, however good the hub is.")
        add("")
        floor = (results.get("spawn") or {}).get("floor", {}).get("median")
        cores = results["machine"]["nproc"]
        add("| Users | Wall | Failed | 429s | login p50/p95 | spawn p50/p95 | kernel p50/p95 | cell p50/p95 | "
            "first result p50/p95 | CPU floor of N starts | stop p50/p95 | hub CPU mean/max | machine busy mean |")
        add("|" + "---|" * 13)
        for level in load:
            p = level["phases"]

            def both(phase, p=p):
                return f"{fmt(p[phase]['median'])} / {fmt(p[phase]['p95'])}"

            add(f"| {level['users']} | {level['wall_seconds']:.0f} s | {level['failed_sessions']} | "
                f"{level['throttled_starts']} | {both('login')} | {both('spawn')} | {both('kernel')} | "
                f"{both('cell')} | {both('first_result')} | "
                f"{fmt(level['users'] * floor / cores if floor else None, ' s')} | {both('stop')} | "
                f"{fmt(level['cpu']['hub']['mean'])} / {fmt(level['cpu']['hub']['max'])} | "
                f"{fmt(level['cpu']['machine_busy_cores']['mean'])} of {cores} |")
        add("")
        for level in load:
            if level["errors"]:
                add(f"- {level['users']} users, errors: " + "; ".join(level["errors"][:5]))
        add("")
        profiled = [level for level in load if (level.get("hub_profile") or {}).get("available")]
        if profiled:
            add("Where the hub's threads spent the wave (py-spy from the machine, non-blocking, 50 Hz, idle "
                "samples left out; a worker thread blocked on a socket counts as not idle, so these are shares of "
                "thread time, not of CPU; compare the hub CPU column):")
            add("")
            for level in profiled:
                prof = level["hub_profile"]
                add(f"- {level['users']} users, {prof['samples']} samples. Self: "
                    + "; ".join(f"`{f['frame']}` {f['percent']}%" for f in prof["self"][:5])
                    + ". Including callees: "
                    + "; ".join(f"`{f['frame']}` {f['percent']}%" for f in prof["inclusive"][:6]) + ".")
            add("")
    wave = results.get("wave")
    if wave:
        lines.extend(wave_section(results, wave))
    browser = results.get("browser")
    if browser:
        lines.extend(browser_section(browser))
    data = results.get("data_path")
    if data:
        add("## Data path")
        add("")
        add(f"`GET /user/<name>/api/status` with a token, {data['concurrency']} keep-alive connections, "
            f"{len(data['rounds']['tls'])} alternating rounds of {data['seconds_per_round']} s each way, generated "
            "inside the box (bench/boxtool.py, 2 processes). Figures are medians over rounds; the ratio is the median "
            f"of neighbouring rounds' ratios ({', '.join(str(r) for r in data['round_ratios'])}).")
        add("")
        add("| Path | req/s | p50 | p99 | errors |")
        add("|---|---|---|---|---|")
        for key, label in (("tls", "nginx (TLS) -> proxy -> server"), ("direct", "proxy (127.0.0.1:8000) -> server")):
            add(f"| {label} | {data[key]['requests_per_second']:.0f} | {data[key]['p50_ms']:.1f} ms | "
                f"{data[key]['p99_ms']:.1f} ms | {data[key]['errors']} |")
        add("")
    status = results.get("status")
    if status:
        add("## The organizer's status screen")
        add("")
        add("`python -m pophub_hub.eventday status --json` on the box (what `bin/pophub status` runs there, "
            "without Ansible's own second or two), median and max of 3 runs; the floor is the same command "
            "in the same run with none of this part's servers running.")
        add("")
        add("| Servers running | median | max |")
        add("|---|---|---|")
        for key in ("floor", "loaded"):
            add(f"| {status[key]['servers']} | {status[key]['median_seconds']} s | {status[key]['max_seconds']} s |")
        add("")
    recovery = results.get("recovery")
    if recovery:
        add("## Recovery")
        add("")
        kill = recovery.get("hub_kill")
        if kill:
            add(f"- Hub SIGKILL (main process) to `/hub/health` 200: {fmt(kill['seconds_to_healthy'], ' s')}; "
                f"requests to a running user server meanwhile: {kill['probe_failed']} failed of "
                f"{kill['probe_requests']} {kill['probe_errors'] or ''}.")
        restart = recovery.get("box_restart")
        if restart:
            add(f"- `docker restart` of the box: the command took {fmt(restart['docker_restart_seconds'], ' s')}; "
                f"`/hub/health` answered {fmt(restart['seconds_to_healthy'], ' s')} after it was issued, the first "
                f"successful spawn came {fmt(restart['seconds_to_first_spawn'], ' s')} after "
                f"({restart.get('attempts')} attempt(s)){'; ' + restart['error'] if restart.get('error') else ''}.")
        add("")
    foot = results.get("footprint")
    if foot:
        add("## Footprint at idle")
        add("")
        add("| Process tree | processes | RSS MiB | PSS MiB |")
        add("|---|---|---|---|")
        for name, s in foot["services"].items():
            add(f"| {name} | {s['processes']} | {s['rss_mib']} | {s['pss_mib']} |")
        user = foot.get("user_server")
        if user:
            add(f"| one idle user server (container) | {user['processes']} | {user['rss_mib']} | {user['pss_mib']} |")
            add("")
            add(f"`docker stats` of that container: {user['docker_stats_mem']}.")
        add("")
    if findings:
        add(findings.strip())
        add("")
    for image in images:
        add(f"![{image}]({image})")
        add("")
    return "\n".join(lines)


def fresh_dir(path):
    """`path`, or `path-2`, `path-3`... if it is taken: a second run on the same day and machine
    never replaces the results of the first (committed runs among them)."""
    path, number = Path(path), 2
    candidate = path
    while candidate.exists():
        candidate, number = path.with_name(f"{path.name}-{number}"), number + 1
    return candidate


def write(results, outdir):
    outdir = Path(outdir)
    images = plots(results, outdir)
    findings = outdir / "findings.md"
    (outdir / "report.md").write_text(markdown(results, images, findings.read_text() if findings.exists() else ""))
    return images


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    write(json.loads((Path(sys.argv[1]) / "results.json").read_text()), sys.argv[1])
