"""What a participant reads on the hub's pages, and the names they may not take."""

import html

import pytest
from conftest import SETTINGS, box_exec

from pophub.hubclient import HubClient


def test_the_login_page_names_the_event_says_how_to_get_in_and_whom_to_ask(hub_url, cafile):
    page = HubClient(hub_url, "nobody", cafile).session.get(f"{hub_url}/hub/login", timeout=30)
    assert page.status_code == 200
    name = html.escape(SETTINGS["jupyterhub_event_name"])
    assert f"<title>{name}</title>" in page.text
    assert f'<h1 id="pophub-event-name" class="text-center">{name}</h1>' in page.text
    assert "type the event password" in page.text, "shared_password's own hint"
    # Plain text: the organizer's <b> is shown as written, not run as markup.
    assert html.escape(SETTINGS["jupyterhub_announcement"]) in page.text and "<b>not</b>" not in page.text
    assert f"<p>{html.escape(SETTINGS['jupyterhub_contact'])}</p>" in page.text


def test_every_hub_page_carries_the_announcement_and_the_contact(hub_user):
    user = hub_user("e2e-pages-reader")
    page = user.session.get(f"{user.hub_url}/hub/home", timeout=30)
    assert page.status_code == 200 and "e2e-pages-reader" in page.text
    assert html.escape(SETTINGS["jupyterhub_announcement"]) in page.text
    assert html.escape(SETTINGS["jupyterhub_contact"]) in page.text


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("x" * 300, "Your name has 300 characters, and names on this hub have at most 64."),
        ("pophub-verify", "The name pophub-verify is kept for the hub itself."),
        ("collab-team-not-made-yet", "Names that start with collab- belong to team servers"),
        ("collab-team-a", "Names that start with collab- belong to team servers"),
    ],
)
def test_a_reserved_or_overlong_name_gets_a_page_that_says_why_and_no_account(hub_url, cafile, name, says):
    participant = HubClient(hub_url, name, cafile)
    answer = participant.post_login(SETTINGS["jupyterhub_shared_password"])
    assert answer.status_code == 403, f"{answer.status_code}: {answer.text[:300]}"
    # JupyterHub shows the login form again, with the reason where a wrong password's message goes.
    assert f'<p class="login_error">{says}' in answer.text, answer.text[-3000:]
    home = participant.session.get(f"{hub_url}/hub/home", allow_redirects=False, timeout=30)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"], "the refused login let them in"
    query = "SELECT count(*) FROM users WHERE name LIKE 'collab-team-not%' OR length(name) > 64"
    accounts = box_exec("runuser", "-u", "postgres", "--", "psql", "--dbname=jupyterhub", "-tAc", query)
    assert accounts.strip() == "0", "a refused name became an account"
