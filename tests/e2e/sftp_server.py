"""An organizer's backup host for the tests: OpenSSH in a container of its own, listening on this
machine at the box's gateway (the box reaches it as it would a server off the box), taking one
key for one account. Used by test_offsite_backup.py and by the rebuild test (bin/pophub test):

    python3 tests/e2e/sftp_server.py start BOX NAME DIR   # writes DIR/settings.json, the inventory settings
    python3 tests/e2e/sftp_server.py stop NAME
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

ACCOUNT = "offsite"  # not "backup": Debian has that system account already
PORT = 19422


def in_box(box, *argv):
    return subprocess.run(["docker", "exec", box, *argv], capture_output=True, text=True, timeout=120).stdout


def gateway(box):
    """The box's default gateway: this machine, as the box reaches it."""
    return re.search(r"default via (\S+)", in_box(box, "ip", "-4", "route"))[1]


def start(box, name, directory, timeout=300):
    """Start the server as container `name`, with a new key in `directory`; returns the inventory
    settings that point the box at it (and the key's path, for restic on this machine)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "box"
    key.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pophub box", "-f", str(key)], check=True)
    address = gateway(box)
    script = (
        "set -e; apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; "
        f"useradd --create-home {ACCOUNT}; install -d -o {ACCOUNT} -m 0700 /home/{ACCOUNT}/.ssh; "
        f"install -o {ACCOUNT} -m 0600 /keys/box.pub /home/{ACCOUNT}/.ssh/authorized_keys; mkdir -p /run/sshd; "
        f"exec /usr/sbin/sshd -D -e -p {PORT} -o ListenAddress={address} -o PasswordAuthentication=no"
    )
    stop(name)
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", "-v", f"{directory}:/keys:ro",
                    "pophub-test/debian:bookworm", "bash", "-c", script], check=True, capture_output=True)  # fmt: skip
    deadline = time.monotonic() + timeout
    while (scanned := in_box(box, "ssh-keyscan", "-p", str(PORT), address)).strip() == "":
        running = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name], capture_output=True,
                                 text=True)  # fmt: skip
        if running.stdout.strip() != "true" or time.monotonic() > deadline:
            logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
            raise RuntimeError(f"the SFTP server {name} did not come up: {logs.stdout}{logs.stderr}")
        time.sleep(2)
    settings = {
        "backup_offsite_repository": f"sftp://{ACCOUNT}@{address}:{PORT}//home/{ACCOUNT}/restic",
        "backup_offsite_ssh_key": key.read_text(),
        "backup_offsite_known_hosts": scanned,
        "key_file": str(key),
        "address": address,
    }
    (directory / "settings.json").write_text(json.dumps(settings))
    return settings


def stop(name):
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["start"] and len(sys.argv) == 5:
        start(*sys.argv[2:])
        print(Path(sys.argv[4]) / "settings.json")
    elif sys.argv[1:2] == ["stop"] and len(sys.argv) == 3:
        stop(sys.argv[2])
    else:
        sys.exit(__doc__)
