"""bench/rerun.py's reading of a re-run: which tasks count as module runs, and their median."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from box import parse_converge_log
from rerun import summarize

LOG = """\
TASK [x] ***
PLAY RECAP *********************************************************************
pophub-molecule-debian12   : ok=112  changed=0    unreachable=0    failed=0    skipped=55   rescued=0    ignored=0

Monday 07 December 2026  17:16:40 +0000 (0:00:00.036)       0:00:45.099 *******
===============================================================================
jupyterhub : upgrade | Compare the database's schema with the one this JupyterHub needs --- 1.06s
common : Install the base packages -------------------------------------- 0.94s
docker : Configure the Docker daemon and the engine's environment ------- 0.31s
preflight | The event settings are complete and consistent ------------- 0.09s
jupyterhub : Know which image user servers start from ------------------- 0.02s
"""


def test_module_runs_are_the_tasks_over_a_tenth_of_a_second():
    summary = summarize(47.9, parse_converge_log(LOG))
    assert summary["changed"] == 0
    assert (summary["tasks"], summary["module_tasks"]) == (5, 3)
    assert summary["module_median"] == 0.94
    assert summary["module_seconds"] == 2.3
    assert summary["slowest"][0]["task"].startswith("jupyterhub : upgrade | Compare")
