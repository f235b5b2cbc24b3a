"""Each login method, switched on for real on the Molecule box and used over HTTPS through nginx.

The box is re-converged for each method with only the event_image and jupyterhub roles, as an
organizer would after changing jupyterhub_authenticator, and put back to the shared password at the end."""

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from conftest import BOX, SETTINGS, box_exec, converge

from pophub.hubclient import HubClient

OIDC_PORT, GITHUB_PORT = 19400, 19401
# Sign-ups live in the hub's database, so names are new on every run against the same box.
RUN = uuid.uuid4().hex[:6]
# What a bad candidate must leave as it was: the config, the hub's settings, the login secrets.
HUB_CONFIG_FILES = tuple(f"/etc/jupyterhub/{name}" for name in ("jupyterhub_config.py", "pophub-hub.json", "auth.json"))
PAM_PASSWORD = "pam-user-password"
# openssl passwd -6 -salt pophubtestsalt0 pam-user-password
PAM_HASH = "$6$pophubtestsalt0$vwMTb6CgKgWhRnJRUCopiskQDXWglnIHi2jE1oeXK2B7VpLYzMQL/mW.317Ok3ICwt4rl4en805YfHpsDcr990"


def start_in_box(unit, *argv):
    """Run a stand-in service inside the box as a transient systemd unit."""
    box_exec("systemctl", "stop", unit, check=False)
    box_exec("systemctl", "reset-failed", unit, check=False)
    box_exec("systemd-run", f"--unit={unit}", *argv)


def wait_for_port(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://localhost:{port}/", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.5)
    raise AssertionError(f"nothing answers on port {port}")


def oauth_login(user, provider_form):
    """The browser's part of an OAuth login: hub → provider's sign-in form → back to the hub.
    Returns the hub's answer to the callback."""
    to_provider = user.session.get(f"{user.hub_url}/hub/oauth_login", allow_redirects=False, timeout=30)
    assert to_provider.status_code == 302, to_provider.text
    authorize = to_provider.headers["Location"]
    page = user.session.get(authorize, timeout=30)
    assert page.status_code == 200, page.text
    back = user.session.post(authorize, data=provider_form, allow_redirects=False, timeout=30)
    assert back.status_code == 302, back.text
    return user.session.get(back.headers["Location"], allow_redirects=False, timeout=30)


def whoami(user):
    """The hub's view of the logged-in browser session."""
    response = user.session.get(
        f"{user.hub_url}/hub/api/user", headers={"X-XSRFToken": user.session.cookies.get("_xsrf", "")}, timeout=30
    )
    return response.json() if response.status_code == 200 else None


@pytest.fixture(scope="module", autouse=True)
def back_to_the_shared_password(tmp_path_factory):
    yield
    converge(tmp_path_factory, jupyterhub_authenticator="shared_password")


@pytest.fixture
def browser(hub_url, cafile):
    def new(name):
        return HubClient(hub_url, name, cafile)

    return new


class TestABrokenConfigChangesNothing:
    """A config that JupyterHub would refuse is caught on the box before it replaces anything, even
    when it got past the inventory checks (here they are skipped: the always-tagged preflight play)."""

    def test_the_running_hub_keeps_its_config_and_logins(self, tmp_path_factory, hub_user):
        before = box_exec("sha256sum", *HUB_CONFIG_FILES)
        pid = box_exec("systemctl", "show", "-p", "MainPID", "--value", "jupyterhub").strip()
        output = converge(
            tmp_path_factory,
            expect_failure=True,
            ansible_args=("--skip-tags", "always"),
            jupyterhub_shared_password="short",
        )
        # JupyterHub's own words, from the checker that validates the candidate on the box.
        assert "at least 8 characters" in output and "preflight |" not in output
        assert box_exec("sha256sum", *HUB_CONFIG_FILES) == before
        assert box_exec("systemctl", "show", "-p", "MainPID", "--value", "jupyterhub").strip() == pid
        hub_user("e2e-after-broken-config")  # the event password still logs in


@pytest.fixture(scope="class")
def native_method(tmp_path_factory):
    users_file = tmp_path_factory.mktemp("users") / "users.txt"
    users_file.write_text(f"# pre-approved participants\nnat-carol-{RUN}\n\n")
    converge(tmp_path_factory, jupyterhub_authenticator="native", jupyterhub_users_file=str(users_file))


@pytest.mark.usefixtures("native_method")
class TestNative:
    def signup(self, user, password):
        form = user.session.get(f"{user.hub_url}/hub/signup", timeout=30)
        assert form.status_code == 200
        return user.session.post(
            f"{user.hub_url}/hub/signup",
            data={
                "username": user.name,
                "signup_password": password,
                "signup_password_confirmation": password,
                "_xsrf": user.session.cookies.get("_xsrf"),
            },
            timeout=30,
        )

    def test_the_sign_in_page_names_the_event_and_says_to_sign_up_and_an_overlong_name_is_refused(self, browser):
        visitor = browser("nobody")
        page = visitor.session.get(f"{visitor.hub_url}/hub/login", timeout=30)
        assert SETTINGS["jupyterhub_event_name"] in page.text and "New here? Sign up" in page.text
        overlong = self.signup(browser("n" * 300), "long-name-password")
        assert overlong.status_code == 200 and "successful" not in overlong.text

    def test_sign_up_then_approval_then_login(self, browser):
        admin = browser(SETTINGS["jupyterhub_admin_users"][0])
        answer = self.signup(admin, "organizer-native-password").text
        # The admin's name is fixed, so on a box that ran these tests before it is taken already.
        assert "successful" in answer or "username is already in use" in answer, answer
        assert admin.post_login("organizer-native-password").status_code == 302

        bob = browser(f"nat-bob-{RUN}")
        assert "sent to the admin" in self.signup(bob, "bob-native-password").text
        refused = bob.post_login("bob-native-password")
        assert refused.status_code != 302 and "not been authorized" in refused.text

        approve = admin.session.get(f"{admin.hub_url}/hub/authorize/{bob.name}", allow_redirects=False, timeout=30)
        assert approve.status_code == 302
        assert bob.post_login("bob-native-password").status_code == 302
        assert whoami(bob)["name"] == bob.name

    def test_a_listed_user_needs_no_approval(self, browser):
        carol = browser(f"nat-carol-{RUN}")
        self.signup(carol, "carol-native-password")
        assert carol.post_login("carol-native-password").status_code == 302

    def test_only_admins_approve(self, browser):
        carol = browser(f"nat-carol-{RUN}")
        assert carol.post_login("carol-native-password").status_code == 302
        dave = browser(f"nat-dave-{RUN}")
        self.signup(dave, "dave-native-password")
        response = carol.session.get(f"{carol.hub_url}/hub/authorize/{dave.name}", allow_redirects=False, timeout=30)
        assert response.status_code == 403
        assert dave.post_login("dave-native-password").status_code != 302


@pytest.fixture(scope="class")
def pam_method(tmp_path_factory):
    converge(
        tmp_path_factory,
        jupyterhub_authenticator="pam",
        jupyterhub_pam_users=[{"name": "pamuser", "password_hash": PAM_HASH}],
    )


@pytest.mark.usefixtures("pam_method")
class TestPam:
    def test_a_listed_system_user_logs_in(self, browser):
        user = browser("pamuser")
        assert user.post_login(PAM_PASSWORD).status_code == 302
        assert whoami(user)["name"] == "pamuser"

    def test_a_wrong_password_is_refused(self, browser):
        assert browser("pamuser").post_login("not-the-password").status_code == 403

    def test_other_system_accounts_are_not_let_in(self, browser):
        # A system account with the same password, made outside jupyterhub_pam_users, stays out.
        box_exec("sh", "-c", f"id outsider || useradd --no-create-home -p '{PAM_HASH}' outsider")
        try:
            assert browser("outsider").post_login(PAM_PASSWORD).status_code == 403
        finally:
            box_exec("userdel", "outsider")


GITHUB_DIRECTORY = {
    "users": {
        "gh-ta": {"orgs": ["school"], "teams": ["school:tas"]},
        "gh-student": {"orgs": ["school"], "teams": ["school:participants"]},
        "gh-other-team": {"orgs": ["school"], "teams": ["school:alumni"]},
        "gh-outsider": {"orgs": [], "teams": []},
    }
}


@pytest.fixture(scope="class")
def github_method(tmp_path_factory):
    box_exec("mkdir", "-p", "/opt/pophub-test")
    subprocess.run(
        ["docker", "cp", str(Path(__file__).with_name("fake_github.py")), f"{BOX}:/opt/pophub-test/"], check=True
    )
    box_exec("sh", "-c", f"echo '{json.dumps(GITHUB_DIRECTORY)}' > /opt/pophub-test/github.json")
    start_in_box(
        "pophub-test-github",
        "python3", "/opt/pophub-test/fake_github.py", "--port", str(GITHUB_PORT),
        "--directory", "/opt/pophub-test/github.json",
    )  # fmt: skip
    wait_for_port(GITHUB_PORT)
    converge(
        tmp_path_factory,
        jupyterhub_authenticator="github",
        jupyterhub_pam_users=[],
        # GitHub decides group membership, so the box's own teams are off while it logs people in.
        jupyterhub_teams={},
        jupyterhub_github_url=f"http://localhost:{GITHUB_PORT}",
        jupyterhub_oauth_client_id="pophub-test",
        jupyterhub_oauth_client_secret="pophub-test-secret",
        jupyterhub_github_allowed_organizations=["school:participants"],
        jupyterhub_github_admin_teams=["school:tas"],
    )
    yield
    box_exec("systemctl", "stop", "pophub-test-github", check=False)


@pytest.mark.usefixtures("github_method")
class TestGitHub:
    def test_a_team_member_logs_in(self, browser):
        user = browser("gh-student")
        back = oauth_login(user, {"login": "gh-student"})
        assert back.status_code == 302, back.text
        me = whoami(user)
        assert me["name"] == "gh-student" and me["admin"] is False

    def test_a_ta_becomes_admin(self, browser):
        user = browser("gh-ta")
        assert oauth_login(user, {"login": "gh-ta"}).status_code == 302
        assert whoami(user)["admin"] is True

    def test_a_member_of_another_team_is_refused(self, browser):
        user = browser("gh-other-team")
        assert oauth_login(user, {"login": "gh-other-team"}).status_code == 403
        assert whoami(user) is None

    def test_an_outsider_is_refused(self, browser):
        assert oauth_login(browser("gh-outsider"), {"login": "gh-outsider"}).status_code == 403

    def test_pam_accounts_taken_off_the_list_are_removed(self):
        assert box_exec("getent", "passwd", "pamuser", check=False) == ""


@pytest.fixture(scope="class")
def oidc_method(tmp_path_factory):
    # oidc-provider-mock: a real OpenID Connect provider, run inside the box.
    box_exec(
        "sh", "-c",
        "test -x /opt/pophub-test/idp/bin/oidc-provider-mock || "
        "(python3 -m venv /opt/pophub-test/idp && PIP_CERT=/etc/ssl/certs/ca-certificates.crt "
        "/opt/pophub-test/idp/bin/pip install -q oidc-provider-mock==0.3.4)",
    )  # fmt: skip
    start_in_box(
        "pophub-test-oidc",
        "/opt/pophub-test/idp/bin/oidc-provider-mock", "--host", "0.0.0.0", "--port", str(OIDC_PORT),
    )  # fmt: skip
    wait_for_port(OIDC_PORT)
    idp = f"http://localhost:{OIDC_PORT}"
    for sub, groups in {
        "oidc-teacher": ["teachers"],
        "oidc-student": ["students"],
        "oidc-visitor": ["visitors"],
        "oidc-blocked": ["students"],
    }.items():
        claims = {"sub": sub, "preferred_username": sub, "email": f"{sub}@example.org", "groups": groups}
        assert requests.put(f"{idp}/users/{sub}", json=claims, timeout=10).status_code == 204
    # Verbose and with diffs, as an organizer debugging a login would run it: still no secret shows.
    output = converge(
        tmp_path_factory,
        ansible_args=("-v", "--diff"),
        jupyterhub_authenticator="oidc",
        jupyterhub_teams={},
        jupyterhub_oidc_issuer=idp,
        jupyterhub_oauth_client_id="pophub-test",
        jupyterhub_oauth_client_secret="pophub-test-secret",
        jupyterhub_oidc_allowed_groups=["students"],
        jupyterhub_oidc_admin_groups=["teachers"],
        jupyterhub_blocked_users=["oidc-blocked"],
    )
    for secret in ("pophub-test-secret", SETTINGS["jupyterhub_shared_password"], SETTINGS["jupyterhub_admin_password"]):
        assert secret not in output, "a secret was printed in Ansible's output"
    yield
    box_exec("systemctl", "stop", "pophub-test-oidc", check=False)


@pytest.mark.usefixtures("oidc_method")
class TestOpenIDConnect:
    def test_a_student_logs_in(self, browser):
        user = browser("oidc-student")
        assert oauth_login(user, {"sub": "oidc-student"}).status_code == 302
        me = whoami(user)
        assert me["name"] == "oidc-student" and me["admin"] is False

    def test_the_admin_group_grants_admin(self, browser):
        user = browser("oidc-teacher")
        assert oauth_login(user, {"sub": "oidc-teacher"}).status_code == 302
        assert whoami(user)["admin"] is True

    def test_a_group_not_allowed_is_refused(self, browser):
        assert oauth_login(browser("oidc-visitor"), {"sub": "oidc-visitor"}).status_code == 403

    def test_a_blocked_user_is_refused_despite_the_group(self, browser):
        assert oauth_login(browser("oidc-blocked"), {"sub": "oidc-blocked"}).status_code == 403

    def test_the_endpoints_came_from_discovery(self):
        hub_settings = json.loads(box_exec("cat", "/etc/jupyterhub/pophub-hub.json"))
        assert hub_settings["oidc_authorize_url"] == "http://localhost:19400/oauth2/authorize", hub_settings
