#!/usr/bin/python3
"""Ensure a role's files and directories in one module run.

Each of Ansible's own template, copy and file tasks costs a module run or two (the template and
copy actions also make and remove a temporary directory on the box), so a role with a dozen
files spends most of a re-run that changes nothing on them. This module takes them all as data,
rendered on the controller (lookup('ansible.builtin.template', ...)), and reports which paths
changed, so handlers can still act on the one file that did.
"""

import grp
import os
import pwd
import secrets
import shlex
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: pophub_files
short_description: Ensure several files (by content) and directories in one module run
options:
  files:
    description: The entries, in order; a directory before what it holds.
    type: list
    elements: dict
    required: true
    suboptions:
      dest: {description: Absolute path., type: path, required: true}
      state:
        description: >-
          file, directory, or secret: a file made once with a random token (64 hex digits) after
          prefix, never replaced, only its owner, group and mode kept.
        type: str
        choices: [file, directory, secret]
        default: file
      prefix: {description: What a secret starts with (e.g. NAME= for an environment file)., type: str, default: ""}
      newline: {description: Whether a secret ends with a newline., type: bool, default: true}
      default_acl:
        description: >-
          A directory's default ACL entries as getfacl writes them (user::rwx, other::r-x), which
          new files in it inherit; added with setfacl when missing, other entries left alone.
        type: list
        elements: str
      return_content:
        description: Return the secret's text in contents (give the task no_log), so no second module run reads it.
        type: bool
        default: false
      content: {description: The file's whole text (state file)., type: str}
      owner: {description: Owner, a name or a number; the module's owner if unset., type: str}
      group: {description: Group, a name or a number; the module's group if unset., type: str}
      mode: {description: Octal mode as a string; the module's mode if unset., type: str}
      validate: {description: A command checking the new file before it replaces the old, %s for its path., type: str}
  owner: {description: Default owner., type: str, default: root}
  group: {description: Default group., type: str, default: root}
  mode: {description: Default mode of files; files default to 0644, directories to 0755, secrets to 0600., type: str}
"""

RETURN = r"""
changed_paths: {description: The entries' paths that changed (content, existence or attributes)., type: list}
contents: {description: The text of each secret asked for with return_content, by path., type: dict}
"""

ENTRY_SPEC = {
    "dest": {"type": "path", "required": True},
    "state": {"type": "str", "choices": ["file", "directory", "secret"], "default": "file"},
    "prefix": {"type": "str", "default": ""},
    "newline": {"type": "bool", "default": True},
    "return_content": {"type": "bool", "default": False},
    "default_acl": {"type": "list", "elements": "str", "default": []},
    "content": {"type": "str"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "mode": {"type": "str"},
    "validate": {"type": "str"},
}


class EntryError(Exception):
    pass


def id_of(name, kind):
    """A user's or group's number from its name or number (kind: "user" or "group")."""
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
    except KeyError:
        raise EntryError(f"there is no {kind} {name!r} on the box") from None


def mode_of(text):
    if not text or any(c not in "01234567" for c in text):
        raise EntryError(f"mode {text!r} is not an octal number such as '0644'")
    return int(text, 8)


def attribute_changes(path, uid, gid, mode):
    """What differs between the path's owner, group and mode and the wanted ones."""
    st = os.lstat(path)
    changes = {}
    if st.st_uid != uid:
        changes["owner"] = (st.st_uid, uid)
    if st.st_gid != gid:
        changes["group"] = (st.st_gid, gid)
    if stat.S_IMODE(st.st_mode) != mode:
        changes["mode"] = (oct(stat.S_IMODE(st.st_mode)), oct(mode))
    return changes


def apply_attributes(path, uid, gid, mode):
    os.chown(path, uid, gid, follow_symlinks=False)
    os.chmod(path, mode)


def missing_default_acl(run_command, path, wanted):
    """The wanted default ACL entries (as getfacl writes them, user::rwx) the directory lacks."""
    if not wanted:
        return []
    rc, out, err = run_command(["getfacl", "--omit-header", "--default", "--absolute-names", path])
    if rc != 0:
        raise EntryError(f"getfacl could not read its ACL: {(err or out).strip()}")
    have = {line.strip() for line in out.splitlines()}
    return [acl for acl in wanted if acl not in have]


def set_default_acl(run_command, path, wanted):
    if not wanted:
        return
    rc, out, err = run_command(["setfacl", "--default", "--modify", ",".join(wanted), path])
    if rc != 0:
        raise EntryError(f"setfacl could not set the default ACL {','.join(wanted)}: {(err or out).strip()}")


def validate(run_command, command, path):
    if "%s" not in command:
        raise EntryError(f"validate {command!r} has no %s for the new file's path")
    rc, out, err = run_command(shlex.split(command.replace("%s", shlex.quote(path))))
    if rc != 0:
        raise EntryError(f"the new file failed its check `{command}`: {(err or out).strip()}")


def ensure(entry, defaults, check_mode, run_command):
    """Bring one entry to its wanted state; return (changed, diff or None)."""
    dest = entry["dest"]
    if not os.path.isabs(dest):
        raise EntryError("dest must be an absolute path")
    is_dir = entry["state"] == "directory"
    uid = id_of(entry["owner"] or defaults["owner"], "user")
    gid = id_of(entry["group"] or defaults["group"], "group")
    mode = mode_of(
        entry["mode"] or defaults["mode"] or {"directory": "0755", "secret": "0600"}.get(entry["state"], "0644")
    )
    exists = os.path.lexists(dest)

    if entry["state"] == "secret":
        if exists and (os.path.islink(dest) or not os.path.isfile(dest)):
            raise EntryError("it exists and is not a regular file")
        if exists:
            changes = attribute_changes(dest, uid, gid, mode)
            if changes and not check_mode:
                apply_attributes(dest, uid, gid, mode)
            return bool(changes), attribute_diff(dest, changes)
        if not check_mode:
            # O_EXCL: never over a file that appeared meanwhile.
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(entry["prefix"] + secrets.token_hex(32) + ("\n" if entry["newline"] else ""))
            apply_attributes(dest, uid, gid, mode)
        return True, {"before": {"path": dest, "state": "absent"}, "after": {"path": dest, "state": "a new secret"}}

    if is_dir:
        if exists and not os.path.isdir(dest):
            raise EntryError("it exists and is not a directory")
        if not exists:
            if not check_mode:
                os.makedirs(dest)
                apply_attributes(dest, uid, gid, mode)
                set_default_acl(run_command, dest, entry["default_acl"])
            return True, {"before": {"path": dest, "state": "absent"}, "after": {"path": dest, "state": "directory"}}
        changes = attribute_changes(dest, uid, gid, mode)
        if changes and not check_mode:
            apply_attributes(dest, uid, gid, mode)
        missing = missing_default_acl(run_command, dest, entry["default_acl"])
        if missing:
            changes["default_acl"] = ("without " + ",".join(missing), ",".join(entry["default_acl"]))
            if not check_mode:
                set_default_acl(run_command, dest, entry["default_acl"])
        return bool(changes), attribute_diff(dest, changes)

    if entry["content"] is None:
        raise EntryError("a file entry needs content")
    wanted = entry["content"].encode()
    if exists and (os.path.islink(dest) or not os.path.isfile(dest)):
        raise EntryError("it exists and is not a regular file")
    before = None
    if exists:
        with open(dest, "rb") as f:
            before = f.read()
    if before == wanted:
        changes = attribute_changes(dest, uid, gid, mode)
        if changes and not check_mode:
            apply_attributes(dest, uid, gid, mode)
        return bool(changes), attribute_diff(dest, changes)

    if not check_mode:
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            raise EntryError(f"its directory {directory} does not exist")
        fd, new = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(wanted)
            apply_attributes(new, uid, gid, mode)
            if entry["validate"]:
                validate(run_command, entry["validate"], new)
            os.replace(new, dest)
        except BaseException:
            if os.path.lexists(new):
                os.unlink(new)
            raise
    return True, {
        "before_header": dest if exists else "/dev/null",
        "after_header": dest,
        "before": before.decode(errors="replace") if before is not None else "",
        "after": entry["content"],
    }


def attribute_diff(path, changes):
    if not changes:
        return None
    return {
        "before": {"path": path, **{k: v[0] for k, v in changes.items()}},
        "after": {"path": path, **{k: v[1] for k, v in changes.items()}},
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "list", "elements": "dict", "required": True, "options": ENTRY_SPEC},
            "owner": {"type": "str", "default": "root"},
            "group": {"type": "str", "default": "root"},
            "mode": {"type": "str"},
        },
        supports_check_mode=True,
    )
    defaults = {key: module.params[key] for key in ("owner", "group", "mode")}
    changed_paths, diffs, contents = [], [], {}
    for entry in module.params["files"]:
        try:
            changed, diff = ensure(entry, defaults, module.check_mode, module.run_command)
        except (EntryError, OSError) as error:
            module.fail_json(
                msg=f"{entry['dest']}: {error}",
                changed=bool(changed_paths),
                changed_paths=changed_paths,
            )
        if changed:
            changed_paths.append(entry["dest"])
        if diff:
            diffs.append(diff)
        if entry["return_content"] and entry["state"] == "secret" and os.path.isfile(entry["dest"]):
            with open(entry["dest"]) as f:
                contents[entry["dest"]] = f.read()
    module.exit_json(changed=bool(changed_paths), changed_paths=changed_paths, diff=diffs, contents=contents)


if __name__ == "__main__":
    main()
