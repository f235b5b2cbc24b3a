"""Render the jupyterhub role's real settings template and jupyterhub_config.py with the role's
defaults, load the config with JupyterHub's own config machinery (through pophub_hub, the way the hub
and the role's `validate:` do), instantiate the classes it names, and refuse unknown or deprecated
option names, for every login method."""

import inspect
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from dockerspawner import DockerSpawner
from jupyterhub.app import JupyterHub
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from jupyterhub.proxy import ConfigurableHTTPProxy

from pophub_hub import check as checker
from pophub_hub.spawner import PophubDockerSpawner

HERE = Path(__file__).resolve().parent
# The ansible-playbook of the Python running the tests.
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
CLASSES = checker.configurable_classes(
    JupyterHub, ConfigurableHTTPProxy, SharedPasswordAuthenticator, PophubDockerSpawner
)
SAMPLE = {
    "jupyterhub_shared_password": "event-password",
    "jupyterhub_admin_password": "a" * 32,
    "jupyterhub_admin_users": ["organizer"],
    "jupyterhub_images": [
        {"display_name": "Python <3> & friends", "ref": "pophub/event:0123456789ab"},
        {"display_name": "Second", "ref": "pophub/second:ba9876543210"},
    ],
    "jupyterhub_extra_volumes": [
        {"source": "/srv/pophub/data", "target": "/srv/data", "mode": "ro"},
        {"source": "/var/log/pophub/servers/{username}", "target": "/var/log/pophub"},
    ],
    "jupyterhub_hub_ip": "172.28.0.1",
    "jupyterhub_public_url": "https://hub.example.org/",
    "jupyterhub_user_database": {
        "host": "172.28.0.1",
        "port": 5432,
        "name": "event",
        "provisioner": "pophub_provisioner",
        "provisioner_password_file": "/etc/pophub/secrets/postgresql-pophub_provisioner.password",
    },
    "jupyterhub_cpu_limit": 1.5,
}
# What systemd hands the hub from db.env.
ENVIRONMENT = {"JUPYTERHUB_DB_PASSWORD": "hub-secret", "POPHUB_DB_PROVISIONER_PASSWORD": "provisioner-secret"}


def render_template(template, dest, overrides):
    """Render one of the role's templates with its defaults and vars, overridden by `overrides`."""
    overrides_file = dest.parent / f"{dest.name}.overrides.json"
    overrides_file.write_text(json.dumps(overrides))
    subprocess.run(
        [ANSIBLE_PLAYBOOK, str(HERE / "render_template.yml"), "-e", "role=jupyterhub", "-e", f"template={template}",
         "-e", f"dest={dest}", "-e", f"@{overrides_file}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def write_auth(path, overrides):
    """auth.json as configure.yml writes it from the inventory's login secrets."""
    path.write_text(
        json.dumps(
            {
                "shared_password": overrides.get("jupyterhub_shared_password", ""),
                "admin_password": overrides.get("jupyterhub_admin_password", ""),
                "oauth_client_secret": overrides.get("jupyterhub_oauth_client_secret", ""),
            }
        )
    )


@pytest.fixture(scope="session")
def hub_config(tmp_path_factory):
    """jupyterhub_config.py as the role renders it (into a scratch config directory)."""
    config_dir = tmp_path_factory.mktemp("etc")
    dest = config_dir / "jupyterhub_config.py"
    render_template("etc/jupyterhub/jupyterhub_config.py.j2", dest, {"jupyterhub_config_dir": str(config_dir)})
    return dest


def render(tmp_path, overrides):
    """A candidate: the settings the role renders for `overrides`, and the login secrets."""
    settings, auth = tmp_path / "pophub-hub.json", tmp_path / "auth.json"
    render_template("etc/jupyterhub/pophub-hub.json.j2", settings, overrides)
    write_auth(auth, overrides)
    return SimpleNamespace(settings=settings, auth=auth)


def load(hub_config, candidate, monkeypatch):
    """The config the hub would run with, every warning an error."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POPHUB_SETTINGS_FILE", str(candidate.settings))
    monkeypatch.setenv("POPHUB_AUTH_FILE", str(candidate.auth))
    app = JupyterHub()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.load_config_file(str(hub_config))
    return app.config


def check(hub_config, candidate, monkeypatch):
    """What the role's `validate:` does with a candidate: (app, authenticator, spawner)."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return checker.check(hub_config, settings=candidate.settings, auth=candidate.auth)


def check_names(config):
    """Every option set must exist on its class, be configurable, and not be deprecated."""
    assert checker.option_problems(config, CLASSES) == []


@pytest.fixture
def sample_config(hub_config, tmp_path, monkeypatch):
    return load(hub_config, render(tmp_path, SAMPLE), monkeypatch)


def test_option_names_are_current(sample_config):
    check_names(sample_config)


def test_the_checker_refuses_unknown_and_deprecated_options():
    from traitlets.config import Config

    config = Config()
    config.DockerSpawner.container_prefix = "old"
    config.DockerSpawner.no_such_option = 1
    config.NoSuchClass.x = 1
    problems = checker.option_problems(config, CLASSES)
    assert problems == [
        "DockerSpawner.container_prefix: deprecated",
        "DockerSpawner.no_such_option: not an option of DockerSpawner",
        "NoSuchClass: no such configurable class here",
    ]


def test_the_checker_passes_the_rendered_config(hub_config, tmp_path, monkeypatch):
    _, authenticator, spawner = check(hub_config, render(tmp_path, SAMPLE), monkeypatch)
    assert type(authenticator).__name__ == "SharedPasswordAuthenticator"
    assert isinstance(spawner, DockerSpawner) and type(spawner).__name__ == "PophubDockerSpawner"
    assert spawner.executor._max_workers == 8


def test_the_checker_refuses_a_config_the_authenticator_rejects(hub_config, tmp_path, monkeypatch):
    candidate = render(tmp_path, SAMPLE)
    write_auth(candidate.auth, {**SAMPLE, "jupyterhub_shared_password": "short"})
    with pytest.raises(Exception, match="at least 8 characters"):
        check(hub_config, candidate, monkeypatch)


def test_the_checker_refuses_settings_this_package_does_not_know(hub_config, tmp_path, monkeypatch):
    candidate = render(tmp_path, SAMPLE)
    settings = json.loads(candidate.settings.read_text())
    del settings["hub_port"]
    candidate.settings.write_text(json.dumps({**settings, "hub_prot": 8081}))
    with pytest.raises(ValueError, match=r"missing settings \['hub_port'\], unknown settings \['hub_prot'\]"):
        check(hub_config, candidate, monkeypatch)


def test_the_checker_command_as_validate_runs_it(hub_config, tmp_path):
    """The command line of the settings task's `validate:`: exit 0 for a good candidate, else the
    reason and a non-zero exit, so the candidate replaces nothing."""
    candidate = render(tmp_path, SAMPLE)

    def validate():
        return subprocess.run(
            [sys.executable, "-m", "pophub_hub.check", "--settings", str(candidate.settings),
             "--auth", str(candidate.auth), str(hub_config)],
            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **ENVIRONMENT},
        )  # fmt: skip

    good = validate()
    assert good.returncode == 0, good.stderr
    assert good.stdout == f"{hub_config}: ok (SharedPasswordAuthenticator, PophubDockerSpawner)\n"
    candidate.settings.write_text("{not json")
    bad = validate()
    assert bad.returncode == 1 and "JSONDecodeError" in bad.stderr, bad.stderr


def test_the_hub_reads_the_files_the_role_installs(tmp_path, monkeypatch):
    """Without the candidates' overrides, the config reads the settings and auth.json beside it."""
    overrides = {**SAMPLE, "jupyterhub_config_dir": str(tmp_path)}
    render_template("etc/jupyterhub/jupyterhub_config.py.j2", tmp_path / "jupyterhub_config.py", overrides)
    render_template("etc/jupyterhub/pophub-hub.json.j2", tmp_path / "pophub-hub.json", overrides)
    write_auth(tmp_path / "auth.json", overrides)
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("POPHUB_SETTINGS_FILE", raising=False)
    monkeypatch.delenv("POPHUB_AUTH_FILE", raising=False)
    _, authenticator, _ = checker.check(tmp_path / "jupyterhub_config.py")
    assert authenticator.user_password == "event-password"


def test_shared_password_authenticator(sample_config):
    assert sample_config.JupyterHub.authenticator_class == "shared-password"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auth = SharedPasswordAuthenticator(config=sample_config)
    auth.check_allow_config()
    assert auth.user_password == "event-password"
    assert auth.admin_password == "a" * 32
    assert auth.admin_users == {"organizer"}
    assert auth.allow_all is True


def test_docker_spawner_settings(sample_config):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spawner = DockerSpawner(config=sample_config, user=SimpleNamespace(name="alice"))
    assert spawner.image == "pophub/event:0123456789ab"
    assert spawner.network_name == "pophub-users"
    assert spawner.use_internal_ip is True
    assert spawner.remove is True
    assert spawner.pull_policy == "never"
    assert spawner.volume_binds == {
        "pophub-home-alice": {"bind": "/home/jovyan", "mode": "rw"},
        "/srv/pophub/data": {"bind": "/srv/data", "mode": "ro"},
        "/var/log/pophub/servers/alice": {"bind": "/var/log/pophub", "mode": "rw"},
    }
    assert spawner.notebook_dir == "/home/jovyan"
    assert spawner.mem_limit == 2 * 1024**3 and spawner.cpu_limit == 1.5
    host_config = {key: value for key, value in spawner.extra_host_config.items() if key != "sysctls"}
    assert host_config == {
        "pids_limit": 1024,
        "cpu_shares": 256,
        "security_opt": ["no-new-privileges"],
        "log_config": {"type": "journald", "config": {"tag": "pophub-server"}},
    }  # and sysctls where this machine has IPv6 (test_pophub_hub.py)
    assert spawner.cmd == ["jupyterhub-singleuser"] and spawner.default_url == "/lab"
    assert (spawner.start_timeout, spawner.http_timeout) == (300, 120)
    assert sample_config.JupyterHub.concurrent_spawn_limit == 200
    assert sample_config.PophubDockerSpawner.concurrent_starts == 0
    assert spawner.environment == {
        "JUPYTERHUB_ACTIVITY_INTERVAL": "300",
        "PGHOST": "172.28.0.1",
        "PGPORT": "5432",
        "PGDATABASE": "event",
    }
    assert sample_config.JupyterHub.last_activity_interval == 300
    # No shared database login: each user's role and password are made just before their start.
    assert inspect.iscoroutinefunction(spawner.pre_spawn_hook)


def test_the_spawn_page_offers_the_images_by_name(sample_config):
    spawner = DockerSpawner(config=sample_config, user=SimpleNamespace(name="alice"))
    assert spawner.allowed_images == {
        "Python <3> & friends": "pophub/event:0123456789ab",
        "Second": "pophub/second:ba9876543210",
    }
    form = spawner.options_form(spawner)
    assert '<option value="Python &lt;3&gt; &amp; friends" selected>Python &lt;3&gt; &amp; friends</option>' in form
    assert '<option value="Second">Second</option>' in form
    assert spawner.options_from_form({"image": ["Second"]}) == {"image": "Second"}


def test_one_image_means_no_choice(hub_config, tmp_path, monkeypatch):
    candidate = render(tmp_path, {**SAMPLE, "jupyterhub_images": SAMPLE["jupyterhub_images"][:1]})
    spawner = DockerSpawner(config=load(hub_config, candidate, monkeypatch), user=SimpleNamespace(name="alice"))
    assert spawner.image == "pophub/event:0123456789ab"
    assert spawner.options_form == ""


def test_no_limits_and_no_database_by_default(hub_config, tmp_path, monkeypatch):
    defaults = ("jupyterhub_cpu_limit", "jupyterhub_user_database")
    overrides = {key: value for key, value in SAMPLE.items() if key not in defaults}
    config = load(hub_config, render(tmp_path, overrides), monkeypatch)
    assert "cpu_limit" not in config.DockerSpawner and "pre_spawn_hook" not in config.Spawner
    spawner = DockerSpawner(config=config, user=SimpleNamespace(name="alice"))
    assert spawner.environment == {"JUPYTERHUB_ACTIVITY_INTERVAL": "300"}


def test_hub_database_and_proxy(sample_config):
    hub = sample_config.JupyterHub
    assert hub.db_url == "postgresql+psycopg://jupyterhub:hub-secret@127.0.0.1:5432/jupyterhub"
    assert hub.db_kwargs == {"pool_pre_ping": True}
    assert hub.hub_bind_url == "http://172.28.0.1:8081"
    assert hub.public_url == "https://hub.example.org/"
    assert hub.bind_url == "http://127.0.0.1:8000"
    assert hub.cookie_secret_file == "/var/lib/jupyterhub/jupyterhub_cookie_secret"
    assert hub.cleanup_servers is False
    assert sample_config.ConfigurableHTTPProxy.should_start is False
    assert sample_config.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    from jupyterhub.handlers.base import BaseHandler

    assert BaseHandler.prepare._pophub is True


def test_per_user_subdomains_reach_the_hub_and_its_proxy(hub_config, tmp_path, monkeypatch):
    config = load(hub_config, render(tmp_path, {**SAMPLE, "jupyterhub_subdomain_host": "https://hub.example.org"}),
                  monkeypatch)  # fmt: skip
    assert config.JupyterHub.subdomain_host == "https://hub.example.org"
    check_names(config)
    # The proxy runs as its own unit, so it is told to route by name there (JupyterHub adds the
    # flag only to a proxy it starts itself).
    unit = tmp_path / "jupyterhub-proxy.service"
    for subdomains, expected in (("https://hub.example.org", True), ("", False)):
        render_template("etc/systemd/system/jupyterhub-proxy.service.j2", unit,
                        {"jupyterhub_subdomain_host": subdomains})  # fmt: skip
        command = " ".join(unit.read_text().split("ExecStart=")[1].split("\\\n"))
        assert ("--host-routing" in command.split()) is expected, command
        assert "/hub/error" in command.split("--error-target")[1]


def test_idle_culler_is_a_service_with_least_privilege(sample_config):
    roles = {role["name"]: role for role in sample_config.JupyterHub.load_roles}
    services = {service["name"]: service for service in sample_config.JupyterHub.services}
    role = roles["idle-culler"]
    assert role["services"] == ["idle-culler"]
    assert "admin:users" not in role["scopes"] and "admin" not in json.dumps(services["idle-culler"])
    assert services["idle-culler"]["command"] == [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=3600"]


def test_the_culler_checks_as_often_as_asked_or_not_at_all(hub_config, tmp_path, monkeypatch):
    config = load(hub_config, render(tmp_path, {**SAMPLE, "jupyterhub_idle_cull_every": 60}), monkeypatch)
    services = {service["name"]: service for service in config.JupyterHub.services}
    assert services["idle-culler"]["command"][-1] == "--cull-every=60"
    (tmp_path / "off").mkdir()
    config = load(hub_config, render(tmp_path / "off", {**SAMPLE, "jupyterhub_idle_timeout": 0}), monkeypatch)
    assert [service["name"] for service in config.JupyterHub.services] == ["pophub-verify", "hand-back"]


def test_every_user_may_reach_the_hand_back_service_and_it_gets_no_scope(sample_config):
    services = {service["name"]: service for service in sample_config.JupyterHub.services}
    assert services["hand-back"]["url"] == "http://127.0.0.1:8082"
    assert services["hand-back"]["command"] == [sys.executable, "-m", "pophub_hub.handback"]
    assert sample_config.JupyterHub.extra_user_scopes == {"access:services!service=hand-back"}
    assert not any("hand-back" in role.get("services", []) for role in sample_config.JupyterHub.load_roles)


def test_the_verify_service_reaches_its_test_user_only(sample_config, monkeypatch):
    roles = {role["name"]: role for role in sample_config.JupyterHub.load_roles}
    assert roles["pophub-verify"]["services"] == ["pophub-verify"]
    assert roles["pophub-verify"]["scopes"] == [
        "admin:users!user=pophub-verify",
        "servers!user=pophub-verify",
        "access:servers!user=pophub-verify",
    ]
    from jupyterhub import scopes

    # Every scope is one JupyterHub knows, each narrowed to the one user.
    for scope in roles["pophub-verify"]["scopes"]:
        name, _, target = scope.partition("!")
        assert name in scopes.scope_definitions and target == "user=pophub-verify"


def test_allowed_users_turn_allow_all_off(hub_config, tmp_path, monkeypatch):
    config = load(hub_config, render(tmp_path, {**SAMPLE, "jupyterhub_allowed_users": ["alice"]}), monkeypatch)
    auth = SharedPasswordAuthenticator(config=config)
    assert auth.allow_all is False
    assert auth.allowed_users == {"alice"}


def test_no_secret_is_written_into_the_settings_or_the_config(hub_config, tmp_path):
    candidate = render(tmp_path, {**SAMPLE, "jupyterhub_oauth_client_secret": "oauth-secret"})
    for text in (candidate.settings.read_text(), hub_config.read_text()):
        assert "event-password" not in text and "a" * 32 not in text and "oauth-secret" not in text


def test_a_change_of_the_secrets_alone_changes_the_settings(tmp_path):
    """So the template task's `validate:` checks the new secrets before auth.json is replaced."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = render(tmp_path / "old", SAMPLE).settings.read_text()
    new = render(tmp_path / "new", {**SAMPLE, "jupyterhub_shared_password": "new-event-password"}).settings.read_text()
    assert old != new
    assert json.loads(old)["secrets_digest"] != json.loads(new)["secrets_digest"]


# --- Every login method ---------------------------------------------------------------------
OIDC_ENDPOINTS = {
    "authorize": "https://idp.example.org/authorize",
    "token": "https://idp.example.org/token",
    "userdata": "https://idp.example.org/userinfo",
}
METHODS = {
    "native": {"jupyterhub_authenticator": "native", "jupyterhub_allowed_users": ["alice"]},
    "pam": {"jupyterhub_authenticator": "pam"},
    "github": {
        "jupyterhub_authenticator": "github",
        "jupyterhub_oauth_client_id": "gh-client",
        "jupyterhub_oauth_client_secret": "gh-secret",
        "jupyterhub_github_allowed_organizations": ["summer-school", "summer-school:participants"],
        "jupyterhub_github_admin_teams": ["summer-school:tas"],
    },
    "oidc": {
        "jupyterhub_authenticator": "oidc",
        "jupyterhub_oauth_client_id": "oidc-client",
        "jupyterhub_oauth_client_secret": "oidc-secret",
        "jupyterhub_oidc_allowed_groups": ["students"],
        "jupyterhub_oidc_admin_groups": ["teachers"],
        "__jupyterhub_oidc_endpoints": OIDC_ENDPOINTS,
    },
    "dummy": {"jupyterhub_authenticator": "dummy", "jupyterhub_allow_insecure_dummy_auth": True},
}


def render_method(hub_config, tmp_path, monkeypatch, method, **extra):
    return check(hub_config, render(tmp_path, {**SAMPLE, **METHODS[method], **extra}), monkeypatch)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_loads_without_warnings(hub_config, tmp_path, monkeypatch, method):
    _, authenticator, _ = render_method(hub_config, tmp_path, monkeypatch, method)
    assert authenticator.admin_users == {"organizer"}


def test_native_signup_with_approval(hub_config, tmp_path, monkeypatch):
    _, auth, _ = render_method(hub_config, tmp_path, monkeypatch, "native")
    assert type(auth).__name__ == "NativeAuthenticator"
    assert auth.open_signup is False and auth.enable_signup is True
    assert auth.minimum_password_length == 8 and auth.check_common_password is True
    assert auth.allow_all is True, "approval is the gate; without allow_all approved users could not log in"
    import nativeauthenticator.handlers

    assert hasattr(nativeauthenticator.handlers.LoginHandler, "statsd")


def test_pam_checks_passwords_without_sessions(hub_config, tmp_path, monkeypatch):
    _, auth, _ = render_method(hub_config, tmp_path, monkeypatch, "pam")
    assert type(auth).__name__ == "PAMAuthenticator"
    assert auth.open_sessions is False
    assert auth.allowed_groups == {"pophub-pam"}


def test_github_limits_to_org_and_team_and_makes_tas_admins(hub_config, tmp_path, monkeypatch):
    _, auth, _ = render_method(hub_config, tmp_path, monkeypatch, "github")
    assert type(auth).__name__ == "GitHubOAuthenticator"
    assert auth.client_id == "gh-client" and auth.client_secret == "gh-secret"
    assert auth.oauth_callback_url == "https://hub.example.org/hub/oauth_callback"
    assert auth.github_url == "https://github.com"
    assert auth.allowed_organizations == {"summer-school", "summer-school:participants"}
    assert auth.scope == ["read:org", "user:email"]
    assert auth.populate_teams_in_auth_state is True
    assert auth.manage_groups is True and auth.admin_groups == {"summer-school:tas"}
    teams = {"teams": [{"slug": "tas", "organization": {"login": "summer-school"}}]}
    assert auth.auth_state_groups_key(teams) == ["summer-school:tas"]
    assert auth.allow_all is False and auth.enable_auth_state is True


def test_oidc_groups_from_the_claim(hub_config, tmp_path, monkeypatch):
    _, auth, _ = render_method(hub_config, tmp_path, monkeypatch, "oidc")
    assert type(auth).__name__ == "GenericOAuthenticator"
    assert (auth.authorize_url, auth.token_url, auth.userdata_url) == tuple(OIDC_ENDPOINTS.values())
    assert auth.client_id == "oidc-client" and auth.client_secret == "oidc-secret"
    assert auth.oauth_callback_url == "https://hub.example.org/hub/oauth_callback"
    assert auth.login_service == "single sign-on"
    assert auth.username_claim == "preferred_username"
    assert auth.scope == ["openid", "profile", "email"]
    assert auth.manage_groups is True and auth.auth_state_groups_key == "oauth_user.groups"
    assert auth.allowed_groups == {"students"} and auth.admin_groups == {"teachers"}
    assert auth.allow_all is False and auth.enable_auth_state is True


def test_oidc_endpoints_given_without_discovery(hub_config, tmp_path, monkeypatch):
    """The role's own default for the endpoints (no issuer, so tasks/oidc.yml discovers nothing)."""
    given = {
        "jupyterhub_oidc_authorize_url": "https://sso.example.org/auth",
        "jupyterhub_oidc_token_url": "https://sso.example.org/token",
        "jupyterhub_oidc_userdata_url": "https://sso.example.org/me",
    }
    method = {key: value for key, value in METHODS["oidc"].items() if key != "__jupyterhub_oidc_endpoints"}
    candidate = render(tmp_path, {**SAMPLE, **method, **given})
    _, auth, _ = check(hub_config, candidate, monkeypatch)
    assert (auth.authorize_url, auth.token_url, auth.userdata_url) == tuple(given.values())


def test_dummy_is_refused_without_its_flag(hub_config, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="jupyterhub_allow_insecure_dummy_auth"):
        render_method(hub_config, tmp_path, monkeypatch, "dummy", jupyterhub_allow_insecure_dummy_auth=False)


def test_blocked_users_reach_the_authenticator(hub_config, tmp_path, monkeypatch):
    _, auth, _ = render_method(hub_config, tmp_path, monkeypatch, "github", jupyterhub_blocked_users=["mallory"])
    assert auth.blocked_users == {"mallory"}


def test_the_checker_catches_deprecations_that_are_only_logged(hub_config, tmp_path, monkeypatch):
    candidate = render(tmp_path, {**SAMPLE, **METHODS["oidc"]})
    config = tmp_path / "jupyterhub_config.py"
    outdated = 'c = get_config()\nc.GenericOAuthenticator.claim_groups_key = "groups"\n'
    config.write_text(hub_config.read_text() + outdated)
    with pytest.raises(ValueError, match="claim_groups_key"):
        check(config, candidate, monkeypatch)


def test_teams_share_an_account_that_nobody_logs_in_as(hub_config, tmp_path, monkeypatch):
    teams = {"team-a": ["ann", "ben"], "open-team": []}
    candidate = render(tmp_path, {**SAMPLE, "jupyterhub_teams": teams, "jupyterhub_blocked_users": ["eve"]})
    config = load(hub_config, candidate, monkeypatch)
    check_names(config)
    assert config.JupyterHub.load_groups == {
        "team-a": {"users": ["ann", "ben"]},
        "open-team": {"users": []},
        "pophub-team-accounts": {"users": ["collab-team-a", "collab-open-team"]},
    }
    roles = {role["name"]: role for role in config.JupyterHub.load_roles}
    assert roles["team-team-a"] == {
        "name": "team-team-a",
        "scopes": ["servers!user=collab-team-a", "access:servers!user=collab-team-a", "read:users!user=collab-team-a"],
        "groups": ["team-a"],
    }
    assert [role["name"] for role in config.JupyterHub.load_roles][-2:] == ["team-team-a", "team-open-team"]
    auth = SharedPasswordAuthenticator(config=config)
    # Not blocked (JupyterHub would take blocked accounts out of their group): refused by name instead.
    assert auth.blocked_users == {"eve"}
    from tornado import web

    handler = SimpleNamespace(settings={"login_url": "/hub/login"})
    with pytest.raises(web.HTTPError, match="belong to team servers"):
        config.Authenticator.post_auth_hook(auth, handler, {"name": "collab-team-a"})
