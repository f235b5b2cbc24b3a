"""The test tree itself: pytest (rootdir-relative imports, no __init__.py) refuses to collect two test
modules with one name in a run, and the run then stops before any test, as CI did twice."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_name_of_its_own():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
