"""The box under test: a systemd container with its own Docker engine, made the way
`bin/pophub demo` makes the demo box, and provisioned by playbooks/site.yml."""

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
BOXTOOL = Path(__file__).resolve().parent / "boxtool.py"
BOXTOOL_IN_BOX = "/root/pophub-boxtool.py"
BASE_IMAGE = "pophub-test/debian:bookworm"


class Box:
    def __init__(self, name, port):
        self.name = name
        self.port = port
        self.url = f"https://localhost:{port}"

    def use_public_name(self):
        """Reach the box by the name its hub was given (pophub_domain), at the mapped port: needed
        when servers are at names under it (per-user subdomains, alice.pophub.localhost)."""
        settings = json.loads(self.exec("cat", "/etc/jupyterhub/pophub-hub.json"))
        name = urlsplit(settings["public_url"]).hostname
        if name:
            self.url = f"https://{name}:{self.port}"

    # --- the container ---------------------------------------------------------------------
    def create(self, volume):
        """A fresh box: any old container and engine volume of the same name are removed first."""
        self.remove(volume)
        # The options of demo_box_up in bin/pophub (see BUILD-MACHINE.md for why each is needed).
        run(["docker", "run", "-d", "--name", self.name, "--hostname", self.name, "--stop-signal", "RTMIN+3",
             "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
             "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
             "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
             "--tmpfs", "/run", "--tmpfs", "/run/lock",
             "-v", f"{volume}:/var/lib/docker",
             "-p", f"127.0.0.1:{self.port}:443", BASE_IMAGE])  # fmt: skip
        # Let systemd finish booting before Ansible's first systemctl; bin/pophub demo does not
        # wait, so a boot still "starting" after a minute is not an error here either.
        with contextlib.suppress(RuntimeError):
            self.wait(lambda: self.exec("systemctl", "is-system-running", check=False).strip()
                      in ("running", "degraded"), 60, "systemd to start")  # fmt: skip

    def remove(self, volume):
        subprocess.run(["docker", "rm", "-f", "-v", self.name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)

    def exists(self):
        return subprocess.run(["docker", "container", "inspect", self.name], capture_output=True).returncode == 0

    def exec(self, *argv, check=True, stdin=None, timeout=600):
        result = subprocess.run(
            ["docker", "exec", "-i", self.name, *argv],
            input=stdin, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed in {self.name}: {result.stderr.strip()[-800:]}")
        return result.stdout

    def wait(self, ready, timeout, what, interval=0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except (RuntimeError, OSError, subprocess.SubprocessError):
                pass
            time.sleep(interval)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what} in {self.name}")

    # --- what the measurements need from inside --------------------------------------------
    def install_boxtool(self):
        run(["docker", "cp", str(BOXTOOL), f"{self.name}:{BOXTOOL_IN_BOX}"])

    def boxtool(self, *argv, timeout=600):
        return json.loads(self.exec("python3", BOXTOOL_IN_BOX, *argv, timeout=timeout))

    def boxtool_detached(self, *argv):
        run(["docker", "exec", "-d", self.name, "python3", BOXTOOL_IN_BOX, *argv])

    def certificate(self, directory):
        """The box's self-signed certificate, so every request verifies TLS for real."""
        path = Path(directory) / f"{self.name}.crt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.exec("cat", "/etc/pophub/tls/selfsigned.crt"))
        return str(path)

    def image(self):
        """The event image DockerSpawner starts (the first of the hub's images)."""
        return json.loads(self.exec("cat", "/etc/jupyterhub/pophub-hub.json"))["images"][0]["ref"]

    def user_containers(self):
        return self.exec("docker", "ps", "-q", "--filter", "label=org.pophub.image").split()

    def docker_version(self):
        return self.exec("docker", "version", "-f", "{{.Server.Version}}", check=False).strip()


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


PROFILE_LINE = re.compile(r"^(?P<task>\S.*?) -{3,} (?P<seconds>\d+\.\d+)s\s*$")
RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)"
                        r"\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)")  # fmt: skip


def converge(inventory, log_path, facts_dir, extra_env=None, extra_vars=None):
    """Run playbooks/site.yml; return wall seconds, the recap and every task's time from
    ansible.posix.profile_tasks (all tasks, not only ansible.cfg's ten, so image builds show)."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        # bench/run runs in .venv's python without activating it; Ansible's tools live beside it.
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        # The bench box keeps its facts apart from the demo's and Molecule's boxes.
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts_dir),
        "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        **(extra_env or {}),
    }
    argv = ["ansible-playbook", "-i", str(inventory), "playbooks/site.yml"]
    for key, value in (extra_vars or {}).items():
        argv += ["-e", f"{key}={value}"]
    started = time.monotonic()
    with open(log_path, "w") as log:
        status = subprocess.run(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=3600).returncode
    seconds = time.monotonic() - started
    return {"seconds": round(seconds, 1), "returncode": status, **parse_converge_log(Path(log_path).read_text())}


def parse_converge_log(text):
    tasks, recap = [], {}
    # profile_tasks prints its table after the recap; everything after the recap's header is safe.
    after_recap = text.split("PLAY RECAP", 1)[-1]
    for line in after_recap.splitlines():
        match = RECAP_LINE.match(line)
        if match:
            recap = {k: (int(v) if v.isdigit() else v) for k, v in match.groupdict().items()}
            continue
        match = PROFILE_LINE.match(line)
        if match:
            tasks.append({"task": match["task"].strip(), "seconds": float(match["seconds"])})
    tasks.sort(key=lambda task: -task["seconds"])
    return {"recap": recap, "tasks": tasks}
