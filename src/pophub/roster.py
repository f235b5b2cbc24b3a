"""Who is on the event's list, kept in its inventory: the edits behind add-users and admins.

    python -m pophub.roster add-users --inventory-dir DIR --users-file PATH --allowed JSON --method M FILE
    python -m pophub.roster admins --inventory-dir DIR --admins JSON (--add NAME... | --remove NAME...)

Each works out the change, prints it as JSON and, with --write, makes it: names are appended to the
event's users file (made next to the inventory, and named in it, when there is none yet), and
jupyterhub_admin_users is rewritten on its own line of the group_vars file that sets it. Nothing
else in the inventory moves: comments, order and the other settings stay as they were, and an edit
that would change any other setting is refused. Bad input exits with 2 and a sentence, before
anything is written. playbooks/add-users.yml and playbooks/admins.yml run this on the organizer's
machine, check the result with the rest of the settings, then converge the hub."""

import argparse
import json
import os
import re
import sys
from pathlib import Path

import yaml

from pophub import settings

USERS_FILE_SETTING = "jupyterhub_users_file"
ADMINS_SETTING = "jupyterhub_admin_users"
# Where a new users file goes, and how the inventory names it (relative to the inventory, so it moves with it).
NEW_USERS_FILE = "users.txt"
NEW_USERS_FILE_VALUE = "{{ inventory_dir }}/" + NEW_USERS_FILE
# The login methods whose allowed names a list can add to, and why the others cannot.
NOT_BY_NAME = {
    "pam": "with pam, people log in with the system accounts in jupyterhub_pam_users: add each there, with its "
    "password hash, and run playbooks/site.yml",
}
# A plain YAML scalar that needs no quotes; other names are written as JSON strings, which YAML reads the same.
PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
VAULT_HEADER = "$ANSIBLE_VAULT"


class Refusal(Exception):
    """Input this command cannot take, as a sentence that says what to do."""


def names_in(path):
    """The names of a users file (one a line, # comments and blank lines skipped), each checked."""
    path = Path(path)
    if not path.is_file():
        raise Refusal(f"{path} does not exist: give a text file with one name a line.")
    try:
        lines = settings.read_users_file(path)
    except UnicodeDecodeError:
        raise Refusal(f"{path} is not a text file: give a text file with one name a line.") from None
    test, looks_like = settings.FORMATS["username"]
    bad = [f"line {number} is '{name}'" for number, name in lines if not test(name)]
    if bad:
        raise Refusal(f"{path}: {'; '.join(bad)}. Put one name a line, {looks_like}.")
    if not lines:
        raise Refusal(f"{path} has no names: put one name a line.")
    return list(dict.fromkeys(name for _, name in lines))


def group_vars_files(inventory_dir):
    """The inventory's group_vars files, as Ansible reads them (a file or a directory per group)."""
    top = Path(inventory_dir) / "group_vars"
    found = []
    for folder, _, names in os.walk(top, followlinks=True):
        found += [Path(folder) / name for name in names if Path(name).suffix in ("", ".yml", ".yaml")]
    return sorted(found)


def setting_line(text, name):
    """The index of the line that sets `name` at the top level, or None."""
    for index, line in enumerate(text.splitlines()):
        if re.match(rf"{re.escape(name)}\s*:", line):
            return index
    return None


def file_for(inventory_dir, name):
    """The group_vars file that sets `name`; when none does, the one that sets the login method."""
    files = group_vars_files(inventory_dir)
    vaulted = [path for path in files if path.read_text(errors="replace").startswith(VAULT_HEADER)]
    plain = [path for path in files if path not in vaulted]
    setting = [path for path in plain if setting_line(path.read_text(), name) is not None]
    if len(setting) > 1:
        listed = ", ".join(str(path) for path in setting)
        raise Refusal(f"{name} is set in more than one file ({listed}): keep it in one of them, then run this again.")
    if setting:
        return setting[0]
    for path in plain:
        if setting_line(path.read_text(), "jupyterhub_authenticator") is not None:
            return path
    where = f" (and {', '.join(str(p) for p in vaulted)} is vault-encrypted)" if vaulted else ""
    raise Refusal(
        f"{inventory_dir} has no group_vars file that sets jupyterhub_authenticator{where}: this command edits "
        "the file that sets the login method, as inventory/example/group_vars/pophub.yml does."
    )


def _scalar(value):
    return value if PLAIN.match(value) else json.dumps(value)


def with_setting(text, name, rendered):
    """`text` with `name: rendered` in place of the setting's line (and its block list, if it has one),
    or appended at the end; the line's own comment is kept."""
    lines = text.splitlines()
    index = setting_line(text, name)
    if index is None:
        tail = "" if not text or text.endswith("\n") else "\n"
        return text + tail + f"{name}: {rendered}\n"
    line = lines[index]
    comment = re.search(r"\s+#.*$", line[len(name) + 1 :]) if "#" in line else None
    end = index + 1
    if not line.split(":", 1)[1].split("#", 1)[0].strip():
        # A block value (- item lines, or a nested mapping): every indented or blank line under it goes.
        while end < len(lines) and (lines[end].startswith((" ", "\t", "-")) or not lines[end].strip()):
            end += 1
        while end > index + 1 and not lines[end - 1].strip():
            end -= 1
    lines[index:end] = [f"{name}: {rendered}{comment.group(0) if comment else ''}"]
    return "\n".join(lines) + ("\n" if text.endswith("\n") or not text else "")


def edited(path, name, value, rendered):
    """The file's new text, once it is sure the edit sets `name` to `value` and leaves all else alone."""
    text = Path(path).read_text()
    new = with_setting(text, name, rendered)
    try:
        before = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise Refusal(f"{path} is not valid YAML ({error.problem}): fix it, then run this again.") from None
    try:
        after = yaml.safe_load(new) or {}
    except yaml.YAMLError:
        after = None
    before.pop(name, None)
    value_after = after.pop(name, None) if isinstance(after, dict) else object()
    if value_after != value or before != after:
        raise Refusal(
            f"{path} sets {name} in a way this command cannot rewrite on its own (it would change more than that "
            f"setting): change {name} there by hand."
        )
    return new


def add_users(inventory_dir, users_file, allowed, method, new_file, write=False):
    """Append the names in `new_file` that are not allowed yet to the event's users file."""
    names = names_in(new_file)
    if method in NOT_BY_NAME:
        raise Refusal(f"add-users cannot help here: {NOT_BY_NAME[method]}.")
    if method == "shared_password" and not allowed:
        raise Refusal(
            "Anyone with the event password may log in already (jupyterhub_allowed_users and "
            "jupyterhub_users_file are empty): a list would shut everyone else out. To allow only listed "
            "names, set jupyterhub_users_file to a file of them and run playbooks/site.yml."
        )
    already = [name for name in names if name in allowed]
    added = [name for name in names if name not in allowed]
    inventory_dir = Path(inventory_dir)
    report = {"added": added, "already": already, "users_file": users_file, "setting_file": None}
    if not users_file:
        target = inventory_dir / NEW_USERS_FILE
        if target.exists():
            raise Refusal(
                f"{target} exists, but {USERS_FILE_SETTING} does not name it: set {USERS_FILE_SETTING}: "
                f'"{NEW_USERS_FILE_VALUE}" (or move the file away), then run this again.'
            )
        setting_file = file_for(inventory_dir, USERS_FILE_SETTING)
        new_text = edited(setting_file, USERS_FILE_SETTING, NEW_USERS_FILE_VALUE, json.dumps(NEW_USERS_FILE_VALUE))
        report.update(users_file=str(target.resolve()), setting_file=str(setting_file))
        if write and added:
            target.write_text(
                "# The names allowed in, one a line (bin/pophub add-users appends to it).\n"
                + "".join(f"{name}\n" for name in added)
            )
            setting_file.write_text(new_text)
        return report
    target = Path(users_file)
    if not target.is_file():
        raise Refusal(f"{USERS_FILE_SETTING} names {target}, which does not exist: create it or fix the setting.")
    if write and added:
        text = target.read_text()
        tail = "" if not text or text.endswith("\n") else "\n"
        target.write_text(text + tail + "".join(f"{name}\n" for name in added))
    return report


def admins(inventory_dir, current, add=(), remove=(), write=False):
    """jupyterhub_admin_users with `add` appended and `remove` taken out, written where it is set."""
    test, looks_like = settings.FORMATS["username"]
    bad = [name for name in [*add, *remove] if not test(name)]
    if bad:
        raise Refusal(f"{', '.join(repr(name) for name in bad)}: an admin's name is {looks_like}.")
    unknown = [name for name in remove if name not in current]
    if unknown:
        raise Refusal(
            f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not in {ADMINS_SETTING} "
            f"({', '.join(current) or 'empty'}): there is nothing to remove."
        )
    new = [name for name in current if name not in remove] + [name for name in add if name not in current]
    path = file_for(inventory_dir, ADMINS_SETTING)
    text = edited(path, ADMINS_SETTING, new, "[" + ", ".join(_scalar(name) for name in new) + "]")
    if write and new != list(current):
        path.write_text(text)
    return {
        "admins": new,
        "added": [name for name in add if name not in current],
        "removed": list(remove),
        "already": [name for name in add if name in current],
        "setting_file": str(path),
    }


def parser():
    top = argparse.ArgumentParser(prog="python -m pophub.roster", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    adding = commands.add_parser("add-users")
    adding.add_argument("file", help="the names to add, one a line")
    adding.add_argument("--users-file", default="", help="the inventory's jupyterhub_users_file, as it resolves")
    adding.add_argument("--allowed", default="[]", help="JSON: the names allowed now, the users file's included")
    adding.add_argument("--method", required=True, help="jupyterhub_authenticator")
    admin = commands.add_parser("admins")
    admin.add_argument("--admins", default="[]", help="JSON: jupyterhub_admin_users as it resolves")
    admin.add_argument("--add", nargs="*", default=[])
    admin.add_argument("--remove", nargs="*", default=[])
    for command in (adding, admin):
        command.add_argument("--inventory-dir", required=True)
        command.add_argument("--write", action="store_true", help="make the change (without: only say it)")
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        if args.command == "add-users":
            report = add_users(
                args.inventory_dir, args.users_file, json.loads(args.allowed), args.method, args.file, args.write
            )
        else:
            report = admins(args.inventory_dir, json.loads(args.admins), args.add, args.remove, args.write)
    except Refusal as refusal:
        print(refusal, file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
