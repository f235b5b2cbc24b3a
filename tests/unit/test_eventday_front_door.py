"""bin/pophub's event-day front door (pophub.eventday): the playbook variables it passes for each
command, and the sentences it prints. The commands themselves run against the box in
tests/e2e/test_eventday.py."""

import pytest

from pophub import eventday


@pytest.mark.parametrize(
    ("argv", "variables"),
    [
        (["status", "--json"], {"eventday_json": True}),
        (["announce", "Lunch at 12:30"], {"eventday_text": "Lunch at 12:30", "eventday_clear": False,
                                          "eventday_reset": False}),
        (["announce", "--clear"], {"eventday_clear": True, "eventday_reset": False}),
        (["stop", "ana", "bo"], {"eventday_users": ["ana", "bo"], "eventday_all": False, "eventday_confirm": False}),
        (["stop", "--all", "--yes"], {"eventday_users": [], "eventday_all": True, "eventday_confirm": True}),
        (["unban", "203.0.113.7"], {"eventday_address": "203.0.113.7"}),
        (["logs", "hub", "--lines", "50"], {"eventday_who": "hub", "eventday_lines": 50}),
        (["restart-hub"], {}),
    ],
)  # fmt: skip
def test_each_command_hands_its_playbook_what_it_was_given(argv, variables):
    args, passed = eventday.parser().parse_known_args([argv[0], "-i", "inventory/x", *argv[1:]])
    assert eventday.extra_vars(args) == variables and passed == []


def test_options_it_does_not_know_go_to_ansible_playbook():
    _, passed = eventday.parser().parse_known_args(["status", "-i", "inventory/x", "--ask-vault-pass", "--check"])
    assert passed == ["--ask-vault-pass", "--check"]


def test_a_missing_inventory_gets_a_sentence(tmp_path, capsys):
    assert eventday.main(["status", "-i", str(tmp_path / "nowhere")]) == 2
    assert "does not exist: give -i inventory/<your event>." in capsys.readouterr().err


def test_the_failed_tasks_messages_are_what_it_prints():
    report = {"plays": [{"tasks": [
        {"hosts": {"box": {"changed": False}}},
        {"hosts": {"box": {"failed": True, "msg": "203.0.113.7 is not banned (banned now: nobody)."}}},
    ]}]}  # fmt: skip
    assert eventday.failures(report) == ["box: 203.0.113.7 is not banned (banned now: nobody)."]
