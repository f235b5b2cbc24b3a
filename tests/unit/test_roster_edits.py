"""pophub.roster: the inventory edits behind add-users and admins change the one setting they name,
keep every comment and other setting, and refuse what they cannot do with a sentence."""

import json
import re

import pytest
import yaml

from pophub import roster

SETTINGS = """---
# The login method (a comment that stays).
jupyterhub_authenticator: shared_password
jupyterhub_admin_users: [organizer]  # who runs the event
# Names, one a line.
jupyterhub_users_file: ""
jupyterhub_mem_limit: 2G
"""


@pytest.fixture
def inventory(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars/pophub.yml").write_text(SETTINGS)
    return tmp_path


def names(tmp_path, *lines):
    path = tmp_path / "names.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_admins_are_rewritten_on_their_own_line_and_the_rest_stays(inventory):
    report = roster.admins(inventory, ["organizer"], add=["ta-ana", "@odd"[1:], "x@y.org"], write=True)
    text = (inventory / "group_vars/pophub.yml").read_text()
    assert text == SETTINGS.replace(
        "[organizer]  # who runs the event", '[organizer, ta-ana, odd, "x@y.org"]  # who runs the event'
    )
    expected = ["organizer", "ta-ana", "odd", "x@y.org"]
    assert yaml.safe_load(text)["jupyterhub_admin_users"] == report["admins"] == expected
    roster.admins(inventory, report["admins"], remove=["ta-ana"], write=True)
    assert yaml.safe_load((inventory / "group_vars/pophub.yml").read_text())["jupyterhub_admin_users"] == [
        "organizer", "odd", "x@y.org",
    ]  # fmt: skip


def test_a_block_list_becomes_one_line_and_the_next_setting_stays(inventory):
    path = inventory / "group_vars/pophub.yml"
    path.write_text(SETTINGS.replace("jupyterhub_admin_users: [organizer]  # who runs the event",
                                     "jupyterhub_admin_users:\n  - organizer\n  - ta-bo\n"))  # fmt: skip
    roster.admins(inventory, ["organizer", "ta-bo"], add=["ta-cy"], write=True)
    loaded = yaml.safe_load(path.read_text())
    assert loaded["jupyterhub_admin_users"] == ["organizer", "ta-bo", "ta-cy"]
    assert loaded["jupyterhub_users_file"] == "" and "# Names, one a line." in path.read_text()


def test_a_setting_the_inventory_lacks_is_appended_to_the_login_methods_file(inventory):
    path = inventory / "group_vars/pophub.yml"
    path.write_text(SETTINGS.replace('jupyterhub_users_file: ""\n', ""))
    report = roster.add_users(inventory, "", ["organizer"], "shared_password", names(inventory, "ana"), write=True)
    assert path.read_text() == SETTINGS.replace('jupyterhub_users_file: ""\n', "") + (
        'jupyterhub_users_file: "{{ inventory_dir }}/users.txt"\n'
    )
    assert report["added"] == ["ana"] and (inventory / "users.txt").read_text().splitlines()[1:] == ["ana"]


def test_new_names_are_appended_to_the_users_file_once(inventory, tmp_path):
    users = tmp_path / "people.txt"
    users.write_text("# the class\nana")  # no newline at the end
    report = roster.add_users(inventory, str(users), ["ana"], "native", names(tmp_path, "ana", "bo", "bo"), write=True)
    assert report["added"] == ["bo"] and report["already"] == ["ana"] and report["setting_file"] is None
    assert users.read_text() == "# the class\nana\nbo\n"
    assert (inventory / "group_vars/pophub.yml").read_text() == SETTINGS


def test_without_write_nothing_changes(inventory):
    roster.add_users(inventory, "", ["organizer"], "github", names(inventory, "ana"))
    roster.admins(inventory, ["organizer"], add=["ta"])
    assert (inventory / "group_vars/pophub.yml").read_text() == SETTINGS
    assert not (inventory / "users.txt").exists()


@pytest.mark.parametrize(
    ("method", "allowed", "lines", "sentence"),
    [
        ("native", [], ["ana", "bo cy", "#", "d,e"], "line 2 is 'bo cy'; line 4 is 'd,e'. Put one name a line"),
        ("native", [], ["pophub-verify"], "line 1 is 'pophub-verify'"),
        ("native", [], ["# nobody"], "has no names"),
        ("pam", [], ["ana"], "add each there, with its password hash"),
        ("shared_password", [], ["ana"], "Anyone with the event password may log in already"),
    ],
)
def test_bad_input_is_refused_with_a_sentence(inventory, method, allowed, lines, sentence):
    with pytest.raises(roster.Refusal, match=re.escape(sentence)):
        roster.add_users(inventory, "", allowed, method, names(inventory, *lines), write=True)
    assert (inventory / "group_vars/pophub.yml").read_text() == SETTINGS


def test_admins_refuse_unknown_names_bad_names_and_settings_in_two_files(inventory):
    with pytest.raises(roster.Refusal, match="nobody is not in jupyterhub_admin_users"):
        roster.admins(inventory, ["organizer"], remove=["nobody"])
    with pytest.raises(roster.Refusal, match="an admin's name is a username"):
        roster.admins(inventory, ["organizer"], add=["has space"])
    (inventory / "group_vars/pophub").mkdir()
    (inventory / "group_vars/pophub/more.yml").write_text("jupyterhub_admin_users: [ta]\n")
    with pytest.raises(roster.Refusal, match="set in more than one file"):
        roster.admins(inventory, ["organizer"], add=["ta2"], write=True)


def test_an_edit_that_would_change_another_setting_is_refused(inventory):
    path = inventory / "group_vars/pophub.yml"
    # A flow list continued on the next line: replacing the first line alone would break the file.
    path.write_text(SETTINGS.replace("[organizer]  # who runs the event", "[organizer,\n  ta]"))
    before = path.read_text()
    with pytest.raises(roster.Refusal, match="cannot rewrite on its own"):
        roster.admins(inventory, ["organizer", "ta"], add=["cy"], write=True)
    assert path.read_text() == before


def test_a_vault_encrypted_file_is_left_alone_and_named(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars/secrets.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    with pytest.raises(roster.Refusal, match=r"secrets\.yml is vault-encrypted"):
        roster.admins(tmp_path, [], add=["ta"])


def test_the_command_prints_json_and_exits_2_with_the_sentence(inventory, capsys):
    assert roster.main(["admins", "--inventory-dir", str(inventory), "--admins", '["organizer"]', "--add", "ta"]) == 0
    assert json.loads(capsys.readouterr().out)["admins"] == ["organizer", "ta"]
    assert roster.main(["admins", "--inventory-dir", str(inventory), "--remove", "ghost"]) == 2
    assert "ghost is not in jupyterhub_admin_users" in capsys.readouterr().err
