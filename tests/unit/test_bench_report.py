"""bench/report.py: where a run's results go, and what the report says about a server start."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from report import fresh_dir, markdown


def test_a_new_directory_is_used_as_named(tmp_path):
    assert fresh_dir(tmp_path / "2026-12-07-2cpu") == tmp_path / "2026-12-07-2cpu"


def test_a_taken_directory_gets_the_next_free_number(tmp_path):
    # A second run on the same day and machine never replaces the first (committed runs among them).
    (tmp_path / "2026-12-07-2cpu").mkdir()
    (tmp_path / "2026-12-07-2cpu-2").mkdir()
    assert fresh_dir(tmp_path / "2026-12-07-2cpu") == tmp_path / "2026-12-07-2cpu-3"


def figures(median, p95=None):
    return {"n": 20, "median": median, "p95": p95 or median, "min": median, "max": p95 or median}


RESULTS = {
    "started": "2026-12-07 21:00 UTC",
    "command": "bench/run --only spawn",
    "machine": {
        "cpu_model": "x",
        "nproc": 2,
        "memory_gib": 8,
        "kernel": "6",
        "docker_engine": "20",
        "git_commit": "0" * 40,
    },
    "spawn": {
        "image": "pophub/bench:1",
        "hub": figures(1.9, 2.4),
        "floor": figures(1.5, 1.7),
        "median_ratio": 1.27,
        "cpu_per_start": {"hub": figures(0.95, 1.2), "floor": figures(0.8), "floor_as_before": figures(1.8)},
        "errors": [],
    },
}


def test_the_report_gives_the_cpu_of_one_start_and_the_spawn_time_over_the_floor():
    text = markdown(RESULTS, [])
    assert "the hub's spawn takes 0.40 s more than the floor" in text
    assert "hub spawn median 0.95 core-s (p95 1.20 core-s), `docker run` floor median 0.80 core-s" in text
    assert "| CPU per server start (floor), now / image as before | 0.44 (0.80 / 1.80 core-s) | <= 0.5 | met |" in text


def test_a_start_that_costs_more_than_half_of_what_it_did_misses_its_goal():
    spawn = {**RESULTS["spawn"], "cpu_per_start": {**RESULTS["spawn"]["cpu_per_start"], "floor": figures(1.0)}}
    text = markdown({**RESULTS, "spawn": spawn}, [])
    row = "| CPU per server start (floor), now / image as before | 0.56 (1.00 / 1.80 core-s) | <= 0.5 | **missed** |"
    assert row in text
