#!/usr/bin/env python3
"""How long a run that changes nothing takes on a converged Molecule box, and why.

    bench/rerun.py [--scenario default] [--runs 3]

Runs `molecule idempotence` (the playbook once more; Molecule fails it on any change) --runs
times with ansible.posix.profile_tasks timing every task, and prints per run: the wall time
(Molecule's own start included), the recap's changed count, the tasks, the tasks that ran a module
on the box (those over MODULE_FLOOR seconds: assert, set_fact and skipped tasks stay on the
controller and take a few hundredths), and the median of those; then the same over all runs and
the slowest tasks. The box must be converged first (molecule create && molecule converge); run it from the
project's .venv (source .venv/bin/activate), where Molecule is.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from box import parse_converge_log

ROOT = Path(__file__).resolve().parents[1]
MODULE_FLOOR = 0.1
GOAL_SECONDS = 45


def summarize(seconds, parsed):
    modules = [task["seconds"] for task in parsed["tasks"] if task["seconds"] >= MODULE_FLOOR]
    return {
        "seconds": round(seconds, 1),
        "changed": parsed["recap"].get("changed"),
        "tasks": len(parsed["tasks"]),
        "module_tasks": len(modules),
        "module_median": round(statistics.median(modules), 2) if modules else None,
        "module_seconds": round(sum(modules), 1),
        "slowest": parsed["tasks"][:5],
    }


def one_run(scenario, log_path):
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
        "PROFILE_TASKS_SORT_ORDER": "descending",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
    }
    started = time.monotonic()
    with open(log_path, "w") as log:
        done = subprocess.run(["molecule", "idempotence", "-s", scenario], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT, timeout=1800, check=False)  # fmt: skip
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench/rerun.py: molecule idempotence failed (exit {done.returncode}); see {log_path}")
    return summarize(seconds, parse_converge_log(Path(log_path).read_text()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logs = ROOT / ".cache/bench-rerun"
    logs.mkdir(parents=True, exist_ok=True)
    runs = []
    for number in range(1, args.runs + 1):
        run = one_run(args.scenario, logs / f"run{number}.log")
        runs.append(run)
        print(f"run {number}: {run['seconds']} s wall, changed={run['changed']}, {run['tasks']} tasks, "
              f"{run['module_tasks']} ran a module (median {run['module_median']} s, {run['module_seconds']} s in all)",
              flush=True)  # fmt: skip
    walls = [run["seconds"] for run in runs]
    medians = [run["module_median"] for run in runs]
    print(f"over {len(runs)} runs: wall median {statistics.median(walls)} s (min {min(walls)}, max {max(walls)}), "
          f"goal <= {GOAL_SECONDS} s; {runs[0]['module_tasks']} module tasks a run, "
          f"per-module median {statistics.median(medians)} s")  # fmt: skip
    print("slowest tasks of the last run:")
    for task in runs[-1]["slowest"]:
        print(f"  {task['seconds']:5.2f} s  {task['task']}")


if __name__ == "__main__":
    main()
