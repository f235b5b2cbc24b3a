"""What a participant does in the first minutes: install a package of their own, watch their memory."""

import json

import pytest

# A kernel builds a wheel by hand (no index, no network), so the test needs nothing from outside.
MAKE_WHEEL = '''
import base64, hashlib, pathlib, zipfile
def make_wheel(name, version, code):
    path = pathlib.Path("/tmp") / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": code,
        f"{info}/METADATA": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\\nGenerator: pophub-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = []
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            data = text.encode()
            wheel.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(data)}")
        wheel.writestr(f"{info}/RECORD", "\\n".join(record + [f"{info}/RECORD,,"]) + "\\n")
    return str(path)
'''
PIP = '''
import subprocess, sys, json
done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", %s], capture_output=True, text=True)
print(json.dumps({"status": done.returncode, "output": done.stdout + done.stderr}))
'''


@pytest.fixture(scope="module")
def participant(hub_user):
    user = hub_user("e2e-pip-installer")
    user.start_server()
    yield user
    user.run_code("import shutil, os; shutil.rmtree(os.path.expanduser('~/.local'), ignore_errors=True)")
    user.stop_server()


def pip_install(user, *args):
    return json.loads(user.run_code(MAKE_WHEEL + PIP % ", ".join(args)))


def test_a_participants_package_lands_in_their_home_and_outlives_a_restart(participant):
    code = "VERSION = '1.0'"
    installed = pip_install(participant, f"make_wheel('pophub_probe', '1.0', {code!r})")
    assert installed["status"] == 0, installed["output"]
    where = participant.run_code("import pophub_probe; print(pophub_probe.__file__)").strip()
    assert where.startswith("/home/jovyan/.local/lib/python3"), where

    participant.stop_server()
    participant.start_server()
    assert participant.run_code("import pophub_probe; print(pophub_probe.VERSION)").strip() == "1.0"


def test_another_version_of_the_stacks_own_package_is_refused_and_cannot_break_the_server(participant):
    broken = "raise ImportError('a participant broke tornado')"
    refused = pip_install(participant, f"make_wheel('tornado', '1.0', {broken!r})")
    assert refused["status"] != 0 and "lack sys.path precedence to tornado" in refused["output"], refused
    # Forced into ~/.local past pip's refusal, it is still behind the stack's own: the server starts.
    forced = pip_install(
        participant, "'--isolated'", f"make_wheel('tornado', '1.0', {broken!r})", "'--target'",
        "__import__('site').getusersitepackages()",
    )  # fmt: skip
    assert forced["status"] == 0, forced["output"]
    try:
        participant.stop_server()
        participant.start_server()
        assert participant.run_code("import tornado; print(tornado.version)").strip() != "1.0"
    finally:
        participant.run_code(
            "import glob, shutil, site\n"
            "for path in glob.glob(site.getusersitepackages() + '/tornado*'): shutil.rmtree(path)"
        )


def test_the_memory_meter_reports_the_servers_own_limit(participant, settings):
    metrics = participant.server("GET", "/metrics/v1")
    assert metrics.status_code == 200, metrics.text[:300]
    reading = metrics.json()
    assert reading["limits"]["memory"]["rss"] == 1024**3, "jupyterhub_mem_limit: 1G in the test inventory"
    assert 0 < reading["rss"] < 1024**3, reading
