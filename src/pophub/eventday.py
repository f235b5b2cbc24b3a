"""The organizer's front door to the event-day playbooks, from their own machine:

    bin/pophub status -i inventory/<event> [--json]
    bin/pophub announce -i inventory/<event> "The room changes at 2 pm" | --clear | --reset
    bin/pophub stop -i inventory/<event> USER... | --all [--yes]
    bin/pophub unban -i inventory/<event> ADDRESS
    bin/pophub logs -i inventory/<event> USER|hub [--lines N]
    bin/pophub restart-hub -i inventory/<event>
    bin/pophub add-users -i inventory/<event> FILE
    bin/pophub admins -i inventory/<event> [--add NAME...] [--remove NAME...]
    bin/pophub hand-back -i inventory/<event> [USER...]

Each runs playbooks/<command>.yml with ansible-playbook (no root or Docker needed here) and prints
what the box answered, or the sentence that says what was wrong. add-users and admins change the
inventory and then converge only the hub and its images (--tags event_image,jupyterhub). Options it does not know
(--ask-vault-pass, --vault-id ..., --check, -v) go to ansible-playbook as they are."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("status", "announce", "stop", "unban", "logs", "restart-hub", "add-users", "admins", "hand-back")
# What add-users and admins converge after changing the inventory: the hub (and the images it offers).
CONVERGE_TAGS = "event_image,jupyterhub"


def parser():
    top = argparse.ArgumentParser(prog="bin/pophub", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        command = commands.add_parser(name)
        command.add_argument("-i", "--inventory", required=True, help="the event's inventory, e.g. inventory/myevent")
        if name == "status":
            command.add_argument("--json", action="store_true", help="everything as JSON, for scripts")
        elif name == "announce":
            command.add_argument("text", nargs="?")
            command.add_argument("--clear", action="store_true", help="no banner at all")
            command.add_argument("--reset", action="store_true", help="the inventory's banner again")
        elif name == "stop":
            command.add_argument("users", nargs="*")
            command.add_argument("--all", action="store_true", help="every running server")
            command.add_argument("--yes", action="store_true", help="do not ask before stopping them all")
        elif name == "unban":
            command.add_argument("address")
        elif name == "logs":
            command.add_argument("who", help="a user name, or hub")
            command.add_argument("--lines", type=int, default=200)
        elif name == "add-users":
            command.add_argument("file", help="the names to let in, one a line (# comments skipped)")
        elif name == "admins":
            command.add_argument("--add", nargs="+", default=[], metavar="NAME", help="make these admins")
            command.add_argument("--remove", nargs="+", default=[], metavar="NAME", help="take these off the list")
        elif name == "hand-back":
            command.add_argument("users", nargs="*", help="only these users (default: everyone with a home)")
    return top


def extra_vars(args):
    """The playbook's variables for these arguments."""
    found = {}
    if args.command == "status" and args.json:
        found["eventday_json"] = True
    elif args.command == "announce":
        if args.text is not None:
            found["eventday_text"] = args.text
        found.update(eventday_clear=args.clear, eventday_reset=args.reset)
    elif args.command == "stop":
        found.update(eventday_users=args.users, eventday_all=args.all, eventday_confirm=args.yes)
    elif args.command == "unban":
        found["eventday_address"] = args.address
    elif args.command == "logs":
        found.update(eventday_who=args.who, eventday_lines=args.lines)
    elif args.command == "add-users":
        found["eventday_users_file"] = str(Path(args.file).resolve())
    elif args.command == "admins":
        found.update(eventday_add=args.add, eventday_remove=args.remove)
    elif args.command == "hand-back":
        found["eventday_users"] = args.users
    return found


def tags(args):
    """The converge that follows a change to the inventory; none at all when admins only lists."""
    if args.command == "add-users" or (args.command == "admins" and (args.add or args.remove)):
        return ["--tags", CONVERGE_TAGS]
    if args.command == "admins":
        return ["--tags", "admins"]
    return []


def failures(report):
    """The messages of the tasks that failed, from the json callback's report."""
    found = []
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            for host, result in task.get("hosts", {}).items():
                if result.get("failed") or result.get("unreachable"):
                    found.append(f"{host}: {result.get('msg', 'failed')}")
    return found


def main(argv=None):
    args, passed = parser().parse_known_args(argv)
    if not Path(args.inventory).exists():
        print(f"pophub: {args.inventory} does not exist: give -i inventory/<your event>.", file=sys.stderr)
        return 2
    interactive = args.command == "stop" and args.all and not args.yes
    with tempfile.TemporaryDirectory(prefix="pophub-") as scratch:
        output = Path(scratch) / "output"
        variables = {**extra_vars(args), "eventday_output": str(output)}
        argv = ["ansible-playbook", "-i", args.inventory, str(ROOT / "playbooks" / f"{args.command}.yml"),
                "-e", json.dumps(variables), *tags(args), *passed]  # fmt: skip
        if interactive:
            # Ansible's own output, so that its question (how many servers will stop) is seen.
            code = subprocess.run(argv, cwd=ROOT).returncode
            report = {}
        else:
            env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
            code = done.returncode
            try:
                # The json callback's report, then whatever other callbacks print after it (profile_tasks).
                report, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.find("{") :])
            except ValueError:
                report = {}
            if code and not report:
                print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
        if output.exists():
            print(output.read_text(), end="")
        if code:
            for message in failures(report):
                print(f"pophub: {message}", file=sys.stderr)
            return code
        if args.command == "restart-hub":
            print("The hub restarted and answers again; running servers were left alone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
