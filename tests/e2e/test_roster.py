"""add-users and admins (bin/pophub <command> -i inventory/<event>), run from this machine against
the box as an organizer runs them: they edit a copy of the test event's inventory, keeping
everything else in it, and converge the hub with it. The box ends as the scenario left it: the last
step runs the scenario's own converge again (anyone with the event password gets in)."""

import uuid

import pytest
from conftest import SETTINGS, converge, event_inventory
from test_eventday import hub_pid, pophub

from pophub.hubclient import HubError

RUN = uuid.uuid4().hex[:6]
LISTED, NEWCOMER, STRANGER = f"e2e-listed-{RUN}", f"e2e-new-{RUN}", f"e2e-stranger-{RUN}"


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """A copy of the event's inventory that lists one name, as an organizer's with a list would.
    The box is converged with it by add-users (the first test to change it), and afterwards as the
    scenario's own converge leaves it."""
    directory = event_inventory(tmp_path_factory.mktemp("listed-inventory"), editable=True)
    settings_file = directory / "group_vars/pophub.yml"
    settings_file.write_text(settings_file.read_text() + f"jupyterhub_allowed_users: [{LISTED}]\n")
    yield directory
    # As the scenario's own converge left it (molecule converge, the same tags).
    converge(tmp_path_factory)


def names_file(tmp_path, *lines):
    path = tmp_path / "names.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def snapshot(directory):
    return {path.relative_to(directory): path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def test_bad_input_gets_a_sentence_and_changes_nothing(tmp_path_factory, tmp_path):
    unlisted = event_inventory(tmp_path_factory.mktemp("unlisted-inventory"), editable=True)
    before = snapshot(unlisted)
    code, _, errors = pophub(unlisted, "add-users", str(names_file(tmp_path, "ana", "bo, cy", "# fine", "d e")))
    assert code == 2 and "line 2 is 'bo, cy'; line 4 is 'd e'. Put one name a line" in errors, errors
    # The scenario's inventory has no list: anyone with the event password gets in already.
    code, _, errors = pophub(unlisted, "add-users", str(names_file(tmp_path, "ana")))
    assert code == 2 and "Anyone with the event password may log in already" in errors, errors
    code, _, errors = pophub(unlisted, "admins", "--remove", "nobody-by-this-name")
    assert code == 2 and "nobody-by-this-name is not in jupyterhub_admin_users (organizer)" in errors, errors
    code, _, errors = pophub(unlisted, "add-users", str(tmp_path / "missing.txt"))
    assert code == 2 and "missing.txt does not exist" in errors, errors
    assert snapshot(unlisted) == before


def test_add_users_lets_a_new_name_in_and_leaves_the_rest_of_the_inventory_alone(inventory, hub_user, tmp_path):
    # The box has no list yet (anyone with the event password gets in): a participant's server runs.
    # add-users' one converge brings the inventory's list and the new name; after it, a stranger is
    # refused, so the newcomer gets in by the list alone.
    listed = hub_user(LISTED)
    listed.start_server()
    kernel_pid = listed.run_code("import os; print(os.getppid())")
    settings_before = (inventory / "group_vars/pophub.yml").read_text()
    pid = hub_pid()
    try:
        code, output, errors = pophub(
            inventory, "add-users", str(names_file(tmp_path, "# new today", NEWCOMER, LISTED))
        )
        assert code == 0, errors
        assert f"added to {inventory / 'users.txt'}): {NEWCOMER}." in output and f"Already allowed: {LISTED}." in output
        # The one line that names the new users file, and nothing else, changed in the inventory.
        settings_after = (inventory / "group_vars/pophub.yml").read_text().splitlines()
        assert 'jupyterhub_users_file: "{{ inventory_dir }}/users.txt"' in settings_after
        assert [line for line in settings_after if not line.startswith("jupyterhub_users_file:")] == [
            line for line in settings_before.splitlines() if not line.startswith("jupyterhub_users_file:")
        ]
        assert NEWCOMER in (inventory / "users.txt").read_text().split()
        assert hub_pid() != pid
        hub_user(NEWCOMER)
        with pytest.raises(HubError):
            hub_user(STRANGER)
        # The server that ran through it is the same one, its kernel never restarted.
        assert listed.run_code("import os; print(os.getppid())") == kernel_pid
    finally:
        listed.stop_server()


def test_admins_lists_and_adds_admins_in_the_inventory(inventory):
    code, output, errors = pophub(inventory, "admins")
    assert code == 0, errors
    before = output.strip().removeprefix("Admins on the hub now: ").rstrip(".").split(", ")
    assert set(SETTINGS["jupyterhub_admin_users"]) <= set(before) and NEWCOMER not in before, output
    code, output, errors = pophub(inventory, "admins", "--add", NEWCOMER)
    assert code == 0, errors
    assert NEWCOMER in output.strip().removeprefix("Admins on the hub now: ").rstrip(".").split(", "), output
    assert f"jupyterhub_admin_users: [organizer, {NEWCOMER}]" in (inventory / "group_vars/pophub.yml").read_text()
