"""Who may log in: the options of each login method (settings["authenticator"]).

configure() only sets options: it imports nothing beyond the standard library, so the Zero to
JupyterHub export (pophub.z2jh.login_values) runs it on the organizer's machine as it is."""

import html

# The longest name a participant may log in or sign up with. JupyterHub keeps names in a
# varchar(255) column (a longer one would end in an error page), and a name also becomes a container,
# a volume and a database role; 64 characters is more than any real name or e-mail address needs.
NAME_MAX = 64
# Names that start with this belong to the hub's own accounts (the post-deploy check's test user).
RESERVED_PREFIX = "pophub-"


def configure(c, settings, secrets):
    """The options every method shares, then the chosen method's."""
    c.Authenticator.admin_users = set(settings["admin_users"])
    c.Authenticator.post_auth_hook = refuse_reserved_names(settings)
    if settings["allowed_users"]:
        c.Authenticator.allowed_users = set(settings["allowed_users"])
    if settings["blocked_users"]:
        c.Authenticator.blocked_users = set(settings["blocked_users"])
    method = settings["authenticator"]
    if method not in METHODS:
        raise ValueError(f"authenticator is {method!r}: set jupyterhub_authenticator to one of {sorted(METHODS)}")
    METHODS[method](c, settings, secrets)


def name_refusal(name, settings):
    """Why `name` may not log in, as a sentence for the participant, or None when it may.

    Runs on every login, after the password (or the identity provider) said yes and before the hub
    records the user, so a refused name never becomes an account."""
    if len(name) > NAME_MAX:
        return (
            f"Your name has {len(name)} characters, and names on this hub have at most {NAME_MAX}. "
            "Log in again with a shorter name."
        )
    if name == settings["verify_user"] or name.startswith(RESERVED_PREFIX):
        return f"The name {name} is kept for the hub itself. Log in again with a name of your own."
    prefix = settings["team_account_prefix"]
    # Also for teams the organizer has not added yet: nobody may claim a team's account before it exists.
    if prefix and name.startswith(prefix):
        return (
            f"Names that start with {prefix} belong to team servers, which nobody logs in as. "
            "Log in with your own name: your team's server is on your home page."
        )
    return None


def login_hint(settings):
    """The line on the login page that says how to get in: the organizer's, or the method's own."""
    if settings["login_hint"]:
        return settings["login_hint"]
    method = settings["authenticator"]
    if method == "shared_password":
        if settings["allowed_users"]:
            return "Log in with the name the organizers gave you and the event password."
        return (
            f"Pick a name (letters, digits, . _ - or @, up to {NAME_MAX} characters), type the event password, "
            "and use the same name each time: it is your account for the event."
        )
    if method == "native":
        if settings["native_open_signup"]:
            return "New here? Sign up with a name and a password, then log in."
        return "New here? Sign up with a name and a password; you can log in once an organizer approves you."
    if method == "pam":
        return "Log in with the account the organizers made for you."
    if method == "github":
        organizations = ", ".join(sorted(settings["github_allowed_organizations"]))
        return f"Sign in with your GitHub account; it needs to be a member of {organizations}."
    if method == "oidc":
        return f"Sign in with your {settings['oidc_login_service']} account."
    return "A test box: any name and any password will do."


def refuse_reserved_names(settings):
    """A post_auth_hook that stops a login under a name from name_refusal with a page saying why."""

    def hook(authenticator, handler, authentication):
        from tornado import web

        reason = name_refusal(authentication["name"], settings)
        if reason is None:
            return authentication
        authenticator.log.warning("Refusing login as %r: %s", authentication["name"][:NAME_MAX], reason)
        error = web.HTTPError(403, reason)
        # The login form shows the reason as its error; where the login was an OAuth callback,
        # JupyterHub's error page shows this in place of the bare status.
        error.jupyterhub_html_message = (
            f"<p>{html.escape(reason)}</p><p><a href=\"{html.escape(handler.settings['login_url'])}\">"
            "Back to the login page</a></p>"
        )
        raise error

    return hook


def _shared_password(c, settings, secrets):
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = secrets["shared_password"]
    if settings["admin_users"]:
        c.SharedPasswordAuthenticator.admin_password = secrets["admin_password"]
    # Anyone who knows the event password may log in under a name of their choosing, unless the
    # organizer listed the allowed names.
    c.Authenticator.allow_all = not settings["allowed_users"]


def _native(c, settings, secrets):
    c.JupyterHub.authenticator_class = "native"
    c.NativeAuthenticator.enable_signup = True
    c.NativeAuthenticator.open_signup = settings["native_open_signup"]
    c.NativeAuthenticator.minimum_password_length = settings["native_minimum_password_length"]
    c.NativeAuthenticator.check_common_password = True
    # Ten wrong passwords for one name lock that name for ten minutes, wherever they come from (the
    # login jail bans addresses, but a server reaches the hub without nginx).
    c.NativeAuthenticator.allowed_failed_logins = 10
    c.NativeAuthenticator.seconds_before_next_try = 600
    # Sign-up makes an account before any login, so the length limit is also a pattern there (the sign-up
    # page then says the name was not accepted; NativeAuthenticator keeps names in a varchar(128)).
    c.NativeAuthenticator.username_pattern = rf"^[^\n]{{1,{NAME_MAX}}}\Z"
    # Approval is the gate: whoever an admin approved (or who was listed) may log in.
    c.Authenticator.allow_all = True


class _NoStatsd:
    """A statsd client that measures nothing."""

    def timer(self, *args, **kwargs):
        return self

    def start(self):
        return self

    def stop(self, *args, **kwargs):
        pass


def patch_native_login_handler():
    """NativeAuthenticator 1.3.0's login handler times itself with `self.statsd`, which JupyterHub 6
    no longer provides, so every login would fail with a 500. Give it a timer that does nothing."""
    from nativeauthenticator.handlers import LoginHandler

    if not hasattr(LoginHandler, "statsd"):
        LoginHandler.statsd = _NoStatsd()


def _pam(c, settings, secrets):
    c.JupyterHub.authenticator_class = "pam"
    # The hub does not run as root: it checks passwords (as a member of the shadow group) but opens
    # no login sessions, and users' servers are containers, not processes of their accounts.
    c.PAMAuthenticator.open_sessions = False
    # The accounts made for the hub are the ones allowed in.
    c.PAMAuthenticator.allowed_groups = {settings["pam_group"]}


def github_team_names(auth_state):
    """The user's GitHub teams as org:team-slug, the names jupyterhub_github_admin_teams uses."""
    return [f"{team['organization']['login']}:{team['slug']}" for team in auth_state.get("teams", [])]


def _github(c, settings, secrets):
    c.JupyterHub.authenticator_class = "github"
    c.GitHubOAuthenticator.client_id = settings["oauth_client_id"]
    c.GitHubOAuthenticator.client_secret = secrets["oauth_client_secret"]
    if settings["public_url"]:
        c.GitHubOAuthenticator.oauth_callback_url = settings["public_url"] + "hub/oauth_callback"
    c.GitHubOAuthenticator.github_url = settings["github_url"]
    # read:org lets the hub see private organization and team membership.
    c.GitHubOAuthenticator.scope = ["read:org", "user:email"]
    c.GitHubOAuthenticator.allowed_organizations = set(settings["github_allowed_organizations"])
    if settings["github_admin_teams"]:
        # Members of the admin teams become admins at each login (and stop being admins when they leave).
        c.GitHubOAuthenticator.populate_teams_in_auth_state = True
        c.GitHubOAuthenticator.manage_groups = True
        c.GitHubOAuthenticator.auth_state_groups_key = github_team_names
        c.GitHubOAuthenticator.admin_groups = set(settings["github_admin_teams"])
    c.Authenticator.enable_auth_state = True


def _oidc(c, settings, secrets):
    c.JupyterHub.authenticator_class = "generic-oauth"
    c.GenericOAuthenticator.login_service = settings["oidc_login_service"]
    c.GenericOAuthenticator.client_id = settings["oauth_client_id"]
    c.GenericOAuthenticator.client_secret = secrets["oauth_client_secret"]
    if settings["public_url"]:
        c.GenericOAuthenticator.oauth_callback_url = settings["public_url"] + "hub/oauth_callback"
    c.GenericOAuthenticator.authorize_url = settings["oidc_authorize_url"]
    c.GenericOAuthenticator.token_url = settings["oidc_token_url"]
    c.GenericOAuthenticator.userdata_url = settings["oidc_userdata_url"]
    c.GenericOAuthenticator.scope = settings["oidc_scopes"]
    c.GenericOAuthenticator.username_claim = settings["oidc_username_claim"]
    if settings["oidc_allowed_groups"] or settings["oidc_admin_groups"]:
        c.GenericOAuthenticator.manage_groups = True
        c.GenericOAuthenticator.auth_state_groups_key = "oauth_user." + settings["oidc_groups_claim"]
    if settings["oidc_allowed_groups"]:
        c.GenericOAuthenticator.allowed_groups = set(settings["oidc_allowed_groups"])
    if settings["oidc_admin_groups"]:
        c.GenericOAuthenticator.admin_groups = set(settings["oidc_admin_groups"])
    c.Authenticator.allow_all = settings["oidc_allow_all_users"]
    c.Authenticator.enable_auth_state = True


def _dummy(c, settings, secrets):
    if not settings["allow_insecure_dummy_auth"]:
        raise ValueError(
            "the dummy login method accepts any password; set jupyterhub_allow_insecure_dummy_auth to use it"
        )
    # TEST ONLY: any name, any password.
    c.JupyterHub.authenticator_class = "dummy"
    c.Authenticator.allow_all = True


METHODS = {
    "shared_password": _shared_password,
    "native": _native,
    "pam": _pam,
    "github": _github,
    "oidc": _oidc,
    "dummy": _dummy,
}
