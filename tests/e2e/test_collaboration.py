"""Teams and real-time collaboration: the members of team-a share the server of collab-team-a,
where jupyter-collaboration runs; a non-member is refused; members' own servers stay their own;
nobody logs in as the shared account."""

import pytest
from conftest import SETTINGS, user_containers

from pophub.hubclient import HubClient

ACCOUNT = "collab-team-a"


@pytest.fixture(scope="module")
def team(hub_user):
    ann, ben, cat = hub_user("e2e-team-ann"), hub_user("e2e-team-ben"), hub_user("e2e-team-cat")
    yield ann, ben, cat
    for user in (ann, ben):
        for name in (ACCOUNT, user.name):
            if user.api("GET", f"/users/{name}").json().get("servers", {}).get(""):
                user.api("DELETE", f"/users/{name}/server")


def account_server(user):
    return user.api("GET", f"/users/{ACCOUNT}").json()["servers"].get("")


def test_members_share_the_team_server_and_others_are_refused(team):
    ann, ben, cat = team
    # A non-member can neither start it nor see it.
    assert cat.api("POST", f"/users/{ACCOUNT}/server").status_code in (403, 404)
    started = ann.api("POST", f"/users/{ACCOUNT}/server")
    assert started.status_code in (201, 202), started.text
    ann.wait(lambda _: (account_server(ann) or {}).get("ready"), 300, "ready")
    (container,) = [c for c in user_containers(ACCOUNT) if c["State"]["Running"]]
    assert any(m["Name"] == "pophub-home-collab-2dteam-2da" for m in container["Mounts"] if m["Type"] == "volume")

    # Both members reach it through nginx with their own tokens; the non-member gets 403.
    for member in (ann, ben):
        assert member.server_of(ACCOUNT, "GET", "/status").status_code == 200
    assert cat.server_of(ACCOUNT, "GET", "/status").status_code == 403

    # ben writes a notebook there, ann reads it: one home, shared.
    ben.server_of(ACCOUNT, "PUT", "/contents/plan.txt", json={"type": "file", "format": "text", "content": "team plan"})
    assert ann.server_of(ACCOUNT, "GET", "/contents/plan.txt").json()["content"] == "team plan"


def test_collaboration_is_active_on_the_team_server_and_keeps_out_of_its_home(team):
    ann, ben, _ = team
    if not account_server(ann):
        pytest.fail("the team server should still run from the previous test")
    session = ann.server_of(ACCOUNT, "PUT", "/collaboration/session/plan.txt", json={"format": "text", "type": "file"})
    assert session.status_code in (200, 201), session.text
    assert session.json()["sessionId"] and session.json()["fileId"]
    # The same document id for both members: they edit one shared document.
    again = ben.server_of(ACCOUNT, "PUT", "/collaboration/session/plan.txt", json={"format": "text", "type": "file"})
    assert again.json()["fileId"] == session.json()["fileId"]
    # Its stores are outside the home.
    listing = ann.server_of(ACCOUNT, "GET", "/contents/", params={"content": 1}).json()["content"]
    hidden = ann.server_of(ACCOUNT, "GET", "/contents/.jupyter_ystore.db")
    assert hidden.status_code == 404 and not any("ystore" in item["name"] for item in listing)
    stopped = ben.api("DELETE", f"/users/{ACCOUNT}/server")
    assert stopped.status_code in (202, 204)
    ben.wait(lambda _: not account_server(ben), 120, "stopped")


def test_a_members_own_server_stays_closed_to_the_other_member(team):
    ann, ben, _ = team
    ann.start_server()
    try:
        assert ann.server("GET", "/status").status_code == 200
        assert ben.server_of(ann.name, "GET", "/status").status_code == 403
        assert ben.api("DELETE", f"/users/{ann.name}/server").status_code in (403, 404)
    finally:
        ann.stop_server()


def test_nobody_logs_in_as_the_team_account(hub_url, cafile):
    refused = HubClient(hub_url, ACCOUNT, cafile).post_login(SETTINGS["jupyterhub_shared_password"])
    assert refused.status_code == 403
