"""Per-user subdomains (pophub_user_subdomains), on box B (molecule/debian13), which the test event
runs with them at pophub.localhost: each participant's server, each team server and each of the
hub's services is at a name of its own, so that a page one of them serves runs in an origin of its
own and cannot act, with the visitor's cookies, on the hub or on another server. Names under
.localhost reach this machine's loopback (RFC 6761), as in any browser."""

import uuid
from urllib.parse import urlsplit

import pytest
from conftest import PORT, SETTINGS

from pophub.hubclient import HubClient

pytestmark = pytest.mark.skipif(
    not SETTINGS.get("pophub_user_subdomains"),
    reason="the box under test has no per-user subdomains: these tests run on box B (POPHUB_TEST_BOX="
    "pophub-molecule-debian13 POPHUB_TEST_SCENARIO=debian13), as bin/pophub test runs them",
)
DOMAIN = SETTINGS["pophub_domain"]
RUN = uuid.uuid4().hex[:6]
TEAM = "collab-team-a"


def origin(url):
    parts = urlsplit(url)
    return parts.hostname, parts.port


@pytest.fixture(scope="module")
def alice(hub_user):
    user = hub_user(f"e2e-sub-alice-{RUN}")
    user.start_server()
    yield user
    user.stop_server()


def test_each_server_answers_at_a_name_of_its_own_and_only_to_its_owner(alice, hub_user, hub_url):
    assert alice.server_model()["url"] == f"https://{alice.name}.{DOMAIN}:{PORT}/user/{alice.name}/"
    assert alice.server("GET", "/status").status_code == 200
    mallory = hub_user(f"e2e-sub-mallory-{RUN}")
    stranger = mallory.token_session.get(f"{alice.server_url()}api/status", timeout=30)
    assert stranger.status_code == 403, stranger.text[:300]
    # Under the hub's own name the server is not served: the hub sends the browser on to its name.
    at_hub = alice.token_session.get(f"{hub_url}/user/{alice.name}/api/status", allow_redirects=False, timeout=30)
    assert at_hub.status_code in (301, 302, 303, 307), (at_hub.status_code, at_hub.text[:300])
    assert "started" not in at_hub.text


def test_a_browser_reaches_its_server_through_the_hubs_login_and_no_cookie_spans_two_names(hub_url, cafile):
    """The browser's way in (the hub's login form, the server's OAuth round trip through the hub),
    with the cookies a browser would keep: each is the host's own, so no other name ever gets it."""
    browser = HubClient(hub_url, f"e2e-sub-bea-{RUN}", cafile)
    assert browser.post_login(SETTINGS["jupyterhub_shared_password"]).status_code == 302
    browser.make_token("pophub e2e", 600)
    browser.start_server()
    try:
        server_name = f"{browser.name}.{DOMAIN}"
        lab = browser.session.get(f"{hub_url}/hub/user/{browser.name}/lab", timeout=120)
        assert lab.status_code == 200, (lab.url, lab.text[:500])
        assert origin(lab.url) == (server_name, PORT), lab.url
        assert "JupyterLab" in lab.text
        hops = [origin(step.headers["Location"])[0] for step in lab.history]
        assert DOMAIN in hops, f"the server's login did not go through the hub at {DOMAIN}: {hops}"
        cookies = list(browser.session.cookies)
        kept = {(cookie.name, cookie.domain) for cookie in cookies if not cookie.domain_specified}
        # What logs the browser in, and its XSRF tokens, stay with the name that set them; the login
        # cookies are named __Host-, which a browser accepts only from that name, never one set by a page
        # at another name under the hub's (cookie tossing).
        assert {("__Host-jupyterhub-hub-login", DOMAIN), ("_xsrf", DOMAIN)} <= kept, kept
        assert {(f"__Host-jupyterhub-user-{browser.name}", server_name), ("_xsrf", server_name)} <= kept, kept
        # The one cookie for every name under the hub's: JupyterHub's session id, shared on purpose (a
        # logout at the hub ends the session on every server). It logs nobody in, and scripts cannot read it.
        shared = [cookie for cookie in cookies if cookie.domain_specified]
        assert [(cookie.name, cookie.domain) for cookie in shared] == [("jupyterhub-session-id", f".{DOMAIN}")], shared
        assert shared[0].secure and shared[0].has_nonstandard_attr("HttpOnly"), shared[0].__dict__
    finally:
        browser.stop_server()


def test_a_team_server_is_at_the_team_accounts_own_name(hub_user):
    member = hub_user(SETTINGS["jupyterhub_teams"]["team-a"][0])
    started = member.api("POST", f"/users/{TEAM}/server")
    assert started.status_code in (201, 202), started.text
    try:
        member.wait(lambda _: (member.api("GET", f"/users/{TEAM}").json()["servers"].get("") or {}).get("ready"),
                    300, "ready")  # fmt: skip
        url = member.api("GET", f"/users/{TEAM}").json()["servers"][""]["url"]
        assert origin(url) == (f"{TEAM}.{DOMAIN}", PORT), url
        assert member.token_session.get(f"{url}api/status", timeout=30).status_code == 200
    finally:
        member.api("DELETE", f"/users/{TEAM}/server")
        member.wait(lambda _: not member.api("GET", f"/users/{TEAM}").json()["servers"].get(""), 120, "stopped")


def test_the_hand_back_service_is_at_its_own_name_and_hands_back_the_home(hub_user, hub_url):
    owner = hub_user(f"e2e-sub-hb-{RUN}")
    page = owner.session.get(f"{hub_url}/hub/home", timeout=60)
    link = f"https://hand-back--service.{DOMAIN}:{PORT}/services/hand-back/"
    assert f'href="{link}"' in page.text, page.text[-1500:]
    # Before the first start there is no home: the service's page leads back to the hub's own name.
    empty = owner.session.get(link, timeout=120)
    assert empty.status_code == 404 and origin(empty.url) == (f"hand-back--service.{DOMAIN}", PORT), empty.url
    assert f"href='https://{DOMAIN}:{PORT}/hub/home'" in empty.text, empty.text
    owner.start_server()
    owner.stop_server()
    archive = owner.session.get(link, timeout=300)
    assert archive.status_code == 200, (archive.url, archive.text[:300])
    assert archive.headers["Content-Type"].startswith("application/gzip"), archive.headers
