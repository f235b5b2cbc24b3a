"""The example GitHub Actions workflow (examples/ci/github-actions.yml) does what its header and the
README promise. GitHub is out of reach here, so the workflow is read as data: the jobs' `if`
conditions are evaluated for each kind of push and pull request, and the deploy jobs' steps are
checked in order against the inventories they name."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_FILE = ROOT / "examples/ci/github-actions.yml"
WORKFLOW = yaml.safe_load(WORKFLOW_FILE.read_text())
JOBS = WORKFLOW["jobs"]
# box -> (its deploy job, the branch that deploys it)
DEPLOYS = {"staging": ("deploy-staging", "staging"), "production": ("deploy-production", "main")}
EVENTS = [
    ("push", "refs/heads/staging"),
    ("push", "refs/heads/main"),
    ("push", "refs/heads/feature/new-image"),
    ("push", "refs/tags/v1"),
    ("pull_request", "refs/pull/7/merge"),
]


def evaluate(expression, github):
    """A GitHub Actions `if` expression made of github.<name> == '<text>', &&, || and parentheses.
    Anything else fails the test rather than being guessed at."""
    expression = expression.strip()
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2]
    tokens = re.findall(r"\s*(github\.\w+|'[^']*'|==|!=|&&|\|\||\(|\)|\S+)", expression)
    python = []
    for token in tokens:
        if token.startswith("github."):
            python.append(repr(github[token.split(".", 1)[1]]))
        elif token.startswith("'") or token in ("==", "!=", "(", ")"):
            python.append(token)
        elif token in ("&&", "||"):
            python.append({"&&": "and", "||": "or"}[token])
        else:
            pytest.fail(f"the test cannot evaluate {token!r} in the condition {expression!r}")
    return eval(" ".join(python), {"__builtins__": {}})  # noqa: S307 - built from the checked tokens only


def runs(job, event, ref):
    """Whether the job runs for this event: its own condition and those of the jobs it needs."""
    spec = JOBS[job]
    needs = spec.get("needs", [])
    needs = [needs] if isinstance(needs, str) else needs
    own = evaluate(spec["if"], {"event_name": event, "ref": ref}) if "if" in spec else True
    return own and all(runs(need, event, ref) for need in needs)


def commands(job):
    """The shell text of each step of the job, in order."""
    return [step.get("run", "") for step in JOBS[job]["steps"]]


def test_it_runs_on_every_push_and_pull_request():
    # PyYAML reads a bare `on:` as True; the file quotes it so every reader sees "on".
    triggers = WORKFLOW["on"]
    assert set(triggers) == {"push", "pull_request"}
    assert not triggers["push"], "push is filtered, but lint and tests must run on every push"
    assert not triggers["pull_request"], "pull_request is filtered, but every pull request must be tested"


@pytest.mark.parametrize(("event", "ref"), EVENTS)
def test_lint_and_molecule_run_for_every_change(event, ref):
    assert runs("lint", event, ref) and runs("test", event, ref)


def test_the_test_jobs_run_the_projects_commands():
    assert any(re.search(r"(^|\s)bin/pophub lint\b", run) for run in commands("lint"))
    assert any(re.search(r"(^|\s)bin/pophub test\b", run) for run in commands("test"))
    assert JOBS["test"]["timeout-minutes"] <= 90, "the tests' budget is 90 minutes"


@pytest.mark.parametrize("box", sorted(DEPLOYS))
def test_a_deploy_waits_for_lint_and_tests(box):
    job, _ = DEPLOYS[box]
    needs = JOBS[job]["needs"]
    assert {"lint", "test"} <= set([needs] if isinstance(needs, str) else needs)


@pytest.mark.parametrize(("event", "ref"), EVENTS)
def test_each_box_is_deployed_from_its_branch_only(event, ref):
    for job, branch in DEPLOYS.values():
        wanted = event == "push" and ref == f"refs/heads/{branch}"
        assert runs(job, event, ref) == wanted, f"{job} {'does not run' if wanted else 'runs'} for {event} {ref}"


@pytest.mark.parametrize("box", sorted(DEPLOYS))
def test_each_deploy_is_one_at_a_time_in_its_environment(box):
    job, _ = DEPLOYS[box]
    spec = JOBS[job]
    environment = spec["environment"]
    assert (environment["name"] if isinstance(environment, dict) else environment) == box
    group = spec["concurrency"]["group"]
    assert box in group and not spec["concurrency"].get("cancel-in-progress", False), (
        "a deploy cut off half-way leaves the box half-changed: deploys must queue, not cancel"
    )
    others = {JOBS[other]["concurrency"]["group"] for other, _ in DEPLOYS.values() if other != job}
    assert group not in others


@pytest.mark.parametrize("box", sorted(DEPLOYS))
def test_each_deploy_runs_site_then_verify_on_its_own_box(box):
    job, _ = DEPLOYS[box]
    inventory = f"inventory/summer-school/{box}.yml"
    assert (ROOT / inventory).is_file()
    steps = commands(job)
    site = [i for i, run in enumerate(steps) if f"ansible-playbook -i {inventory} playbooks/site.yml" in run]
    verify = [i for i, run in enumerate(steps) if f"ansible-playbook -i {inventory} playbooks/verify.yml" in run]
    assert len(site) == 1 and len(verify) == 1 and site[0] < verify[0], f"{job}: site.yml, then verify.yml"
    for other in set(DEPLOYS) - {box}:
        assert not any(f"{other}.yml" in run or other.upper() + "_" in run for run in steps), f"{job} touches {other}"
        env = [str(step.get("env", "")) for step in JOBS[job]["steps"]]
        assert not any(f"secrets.{other.upper()}_" in text for text in env), f"{job} reads {other}'s secrets"
    assert any(f"secrets.{box.upper()}_VAULT_PASSWORD" in str(step.get("env", "")) for step in JOBS[job]["steps"])


@pytest.mark.parametrize("box", sorted(DEPLOYS))
def test_secrets_are_written_privately_and_removed(box):
    job, _ = DEPLOYS[box]
    steps = JOBS[job]["steps"]
    writes = [i for i, step in enumerate(steps) if "secrets." in str(step.get("env", ""))]
    assert len(writes) == 1
    assert steps[writes[0]]["run"].lstrip().startswith("umask 077"), "secrets written before umask 077"
    removal = steps[-1]
    assert removal.get("if") == "always()" and "rm -rf" in removal["run"], "the last step must remove them, always"
    # The directory written to is the one removed.
    written = set(re.findall(r'"(\$RUNNER_TEMP/[^/"]+)', steps[writes[0]]["run"]))
    assert written and all(directory in removal["run"] for directory in written)


@pytest.mark.parametrize("job", sorted(JOBS))
def test_every_step_is_valid_bash(job):
    for step in JOBS[job]["steps"]:
        if "run" in step:
            check = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True, text=True)
            assert check.returncode == 0, f"{job}: {step.get('name', step['run'])}: {check.stderr}"


def test_environment_urls_are_the_boxes_addresses():
    for box, (job, _) in DEPLOYS.items():
        settings = yaml.safe_load((ROOT / f"inventory/summer-school/group_vars/{box}/vars.yml").read_text())
        assert JOBS[job]["environment"]["url"] == f"https://{settings['pophub_domain']}/"
