"""pophub_files, the module that ensures a role's files in one run: content, attributes, checks,
check mode, and what it reports as changed, on real files in a temporary directory."""

import grp
import importlib.machinery
import importlib.util
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "playbooks/library/pophub_files.py"

loader = importlib.machinery.SourceFileLoader("pophub_files", str(MODULE))
pophub_files = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
loader.exec_module(pophub_files)

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def run(files, check_mode=False, **defaults):
    """Run the module as Ansible does (JSON arguments on stdin); return its result."""
    args = {
        "ANSIBLE_MODULE_ARGS": {
            "files": files,
            "owner": ME,
            "group": MY_GROUP,
            **defaults,
            "_ansible_check_mode": check_mode,
        }
    }
    done = subprocess.run(
        [sys.executable, str(MODULE)], input=json.dumps(args), capture_output=True, text=True, check=False
    )
    return json.loads(done.stdout)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_and_directories_are_made_then_left_alone(tmp_path):
    entries = [
        {"dest": str(tmp_path / "etc"), "state": "directory", "mode": "0750"},
        {"dest": str(tmp_path / "etc/app.conf"), "content": "a = 1\n", "mode": "0640"},
        {"dest": str(tmp_path / "etc/app.d"), "state": "directory"},
    ]
    first = run(entries)
    assert first["changed"] is True
    assert first["changed_paths"] == [entry["dest"] for entry in entries]
    assert (tmp_path / "etc/app.conf").read_text() == "a = 1\n"
    assert (mode(tmp_path / "etc"), mode(tmp_path / "etc/app.conf"), mode(tmp_path / "etc/app.d")) == (
        0o750,
        0o640,
        0o755,
    )

    again = run(entries)
    assert again["changed"] is False
    assert again["changed_paths"] == []


def test_only_the_file_that_changed_is_reported_with_its_diff(tmp_path):
    one, two = tmp_path / "one.conf", tmp_path / "two.conf"
    run([{"dest": str(one), "content": "x\n"}, {"dest": str(two), "content": "y\n"}])
    result = run([{"dest": str(one), "content": "x\n"}, {"dest": str(two), "content": "z\n"}])
    assert result["changed_paths"] == [str(two)]
    assert result["diff"] == [{"before_header": str(two), "after_header": str(two), "before": "y\n", "after": "z\n"}]
    assert two.read_text() == "z\n"


def test_a_mode_that_drifted_is_put_back(tmp_path):
    path = tmp_path / "secret"
    run([{"dest": str(path), "content": "s\n", "mode": "0600"}])
    path.chmod(0o644)
    result = run([{"dest": str(path), "content": "s\n", "mode": "0600"}])
    assert result["changed_paths"] == [str(path)]
    assert mode(path) == 0o600


def test_check_mode_reports_and_changes_nothing(tmp_path):
    path = tmp_path / "app.conf"
    path.write_text("old\n")
    path.chmod(0o644)
    result = run(
        [{"dest": str(path), "content": "new\n"}, {"dest": str(tmp_path / "new.d"), "state": "directory"}],
        check_mode=True,
    )
    assert result["changed_paths"] == [str(path), str(tmp_path / "new.d")]
    assert path.read_text() == "old\n"
    assert not (tmp_path / "new.d").exists()


def test_a_file_that_fails_its_check_replaces_nothing(tmp_path):
    path = tmp_path / "settings.json"
    run([{"dest": str(path), "content": '{"ok": true}\n'}])
    result = run([{"dest": str(path), "content": "{broken\n", "validate": f"{sys.executable} -m json.tool %s"}])
    assert result["failed"] is True
    assert result["msg"].startswith(f"{path}: the new file failed its check")
    assert path.read_text() == '{"ok": true}\n'
    assert sorted(os.listdir(tmp_path)) == ["settings.json"], "the candidate was left behind"


def test_a_file_that_passes_its_check_is_written(tmp_path):
    path = tmp_path / "settings.json"
    result = run([{"dest": str(path), "content": '{"ok": true}\n', "validate": f"{sys.executable} -m json.tool %s"}])
    assert result["changed"] is True
    assert path.read_text() == '{"ok": true}\n'


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"content": "x", "owner": "no-such-user-here"}, "there is no user 'no-such-user-here' on the box"),
        ({"content": "x", "mode": "rw-r--r--"}, "mode 'rw-r--r--' is not an octal number such as '0644'"),
        ({}, "a file entry needs content"),
        ({"content": "x", "validate": "true"}, "validate 'true' has no %s for the new file's path"),
    ],
)
def test_bad_entries_are_refused_with_the_path_and_the_reason(tmp_path, entry, message):
    path = tmp_path / "f"
    result = run([{"dest": str(path), **entry}])
    assert result["failed"] is True
    assert result["msg"] == f"{path}: {message}"
    assert not path.exists()


def test_an_entry_of_the_wrong_kind_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    assert (
        run([{"dest": str(tmp_path / "d"), "content": "x"}])["msg"]
        == f"{tmp_path / 'd'}: it exists and is not a regular file"
    )
    assert (
        run([{"dest": str(tmp_path / "f"), "state": "directory"}])["msg"]
        == f"{tmp_path / 'f'}: it exists and is not a directory"
    )


def test_a_secret_is_made_once_and_never_replaced(tmp_path):
    path = tmp_path / "hub.env"
    entry = {"dest": str(path), "state": "secret", "prefix": "JUPYTERHUB_CRYPT_KEY="}
    assert run([entry], check_mode=True)["changed_paths"] == [str(path)]
    assert not path.exists()
    assert run([entry])["changed_paths"] == [str(path)]
    made = path.read_text()
    assert made.startswith("JUPYTERHUB_CRYPT_KEY=") and made.endswith("\n")
    assert len(made.removeprefix("JUPYTERHUB_CRYPT_KEY=").strip()) == 64
    assert mode(path) == 0o600
    path.chmod(0o644)
    again = run([entry])
    assert again["changed_paths"] == [str(path)], "the mode was not put back"
    assert path.read_text() == made
    assert mode(path) == 0o600
    assert str(again).count(made.strip()) == 0, "the result shows the secret"


def test_a_secret_without_a_newline(tmp_path):
    path = tmp_path / "password"
    run([{"dest": str(path), "state": "secret", "newline": False}])
    assert len(path.read_text()) == 64


def test_a_secret_is_returned_only_when_asked_for(tmp_path):
    asked, other = tmp_path / "asked", tmp_path / "other"
    result = run(
        [{"dest": str(asked), "state": "secret", "return_content": True}, {"dest": str(other), "state": "secret"}]
    )
    assert result["contents"] == {str(asked): asked.read_text()}
    assert run([{"dest": str(asked), "state": "secret", "return_content": True}])["contents"] == {
        str(asked): asked.read_text()
    }


def test_a_directory_gets_its_default_acl_once(tmp_path):
    team = tmp_path / "team"
    acl = ["user::rwx", "group::rwx", "mask::rwx", "other::r-x"]
    entry = {"dest": str(team), "state": "directory", "mode": "2775", "default_acl": acl}
    assert run([entry])["changed_paths"] == [str(team)]
    shown = subprocess.run(
        ["getfacl", "--omit-header", "--default", str(team)], capture_output=True, text=True, check=True
    )
    assert set(acl) <= set(shown.stdout.split())
    assert run([entry])["changed_paths"] == []
    subprocess.run(["setfacl", "--remove-default", str(team)], check=True)
    assert run([entry], check_mode=True)["changed_paths"] == [str(team)]
    assert run([entry])["changed_paths"] == [str(team)]
    assert run([entry])["changed_paths"] == []


def test_owner_and_group_may_be_numbers(tmp_path):
    path = tmp_path / "f"
    result = run([{"dest": str(path), "content": "x", "owner": str(os.getuid()), "group": str(os.getgid())}])
    assert result["changed_paths"] == [str(path)]
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == (os.getuid(), os.getgid())
    bad = run([{"dest": str(tmp_path / "g"), "content": "x", "group": "no-such-group-here"}])
    assert bad["msg"] == f"{tmp_path / 'g'}: there is no group 'no-such-group-here' on the box"
