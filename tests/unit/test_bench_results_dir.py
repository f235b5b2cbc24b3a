"""bench/run's default results directory: a second run on the same day and machine never replaces
the first one's results (committed runs among them)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from report import fresh_dir


def test_a_new_directory_is_used_as_named(tmp_path):
    assert fresh_dir(tmp_path / "2026-12-07-2cpu") == tmp_path / "2026-12-07-2cpu"


def test_a_taken_directory_gets_the_next_free_number(tmp_path):
    (tmp_path / "2026-12-07-2cpu").mkdir()
    (tmp_path / "2026-12-07-2cpu-2").mkdir()
    assert fresh_dir(tmp_path / "2026-12-07-2cpu") == tmp_path / "2026-12-07-2cpu-3"
