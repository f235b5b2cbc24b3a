"""Render the real jupyterhub_config.py template, load it with JupyterHub's own config machinery,
instantiate the classes it names, and refuse unknown or deprecated option names."""

import importlib.util
import json
import os
import subprocess
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from dockerspawner import DockerSpawner
from jupyterhub.app import JupyterHub
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from jupyterhub.proxy import ConfigurableHTTPProxy

HERE = Path(__file__).resolve().parent
CHECKER_PATH = HERE.parents[1] / "roles/jupyterhub/files/pophub-check-config"
_spec = importlib.util.spec_from_loader("pophub_check_config", loader=None)
checker = importlib.util.module_from_spec(_spec)
exec(compile(CHECKER_PATH.read_text(), str(CHECKER_PATH), "exec"), checker.__dict__)
CLASSES = checker.configurable_classes(JupyterHub, ConfigurableHTTPProxy, SharedPasswordAuthenticator, DockerSpawner)
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


def render(tmp_path, overrides):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    overrides = {**overrides, "jupyterhub_config_dir": str(config_dir)}
    (tmp_path / "overrides.json").write_text(json.dumps(overrides))
    dest = config_dir / "jupyterhub_config.py"
    subprocess.run(
        [
            "ansible-playbook", str(HERE / "render_template.yml"),
            "-e", "role=jupyterhub",
            "-e", "template=etc/jupyterhub/jupyterhub_config.py.j2",
            "-e", f"dest={dest}",
            "-e", f"@{tmp_path / 'overrides.json'}",
        ],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (config_dir / "auth.json").write_text(
        json.dumps(
            {
                "shared_password": overrides.get("jupyterhub_shared_password", ""),
                "admin_password": overrides.get("jupyterhub_admin_password", ""),
            }
        )
    )
    # What systemd hands the hub from db.env.
    environment = {"JUPYTERHUB_DB_PASSWORD": "hub-secret", "POPHUB_DB_PROVISIONER_PASSWORD": "provisioner-secret"}
    return dest, environment


def load(dest, environment, monkeypatch):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    app = JupyterHub()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.load_config_file(str(dest))
    return app.config


def check_names(config):
    """Every option set must exist on its class, be configurable, and not be deprecated."""
    assert checker.option_problems(config, CLASSES) == []


@pytest.fixture
def sample_config(tmp_path, monkeypatch):
    dest, environment = render(tmp_path, SAMPLE)
    return load(dest, environment, monkeypatch)


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


def test_the_checker_passes_the_rendered_config(tmp_path, monkeypatch):
    dest, environment = render(tmp_path, SAMPLE)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    _, authenticator, spawner = checker.check(str(dest))
    assert type(authenticator).__name__ == "SharedPasswordAuthenticator"
    assert isinstance(spawner, DockerSpawner) and type(spawner).__name__ == "PophubDockerSpawner"
    assert spawner.executor._max_workers == 8


def test_the_checker_refuses_a_config_the_authenticator_rejects(tmp_path, monkeypatch):
    dest, environment = render(tmp_path, SAMPLE)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    (dest.parent / "auth.json").write_text(json.dumps({"shared_password": "short", "admin_password": "a" * 32}))
    with pytest.raises(Exception, match="at least 8 characters"):
        checker.check(str(dest))


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
    assert spawner.cpu_limit == 1.5
    assert spawner.environment["PGHOST"] == "172.28.0.1"
    assert spawner.environment["PGDATABASE"] == "event"
    # No shared database login: each user's role and password are made just before their start.
    assert "PGUSER" not in spawner.environment and "PGPASSWORD" not in spawner.environment
    import inspect

    assert inspect.iscoroutinefunction(spawner.pre_spawn_hook)
    assert spawner.extra_host_config["security_opt"] == ["no-new-privileges"]


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


def test_one_image_means_no_choice(tmp_path, monkeypatch):
    dest, environment = render(tmp_path, {**SAMPLE, "jupyterhub_images": SAMPLE["jupyterhub_images"][:1]})
    spawner = DockerSpawner(config=load(dest, environment, monkeypatch), user=SimpleNamespace(name="alice"))
    assert spawner.image == "pophub/event:0123456789ab"
    assert spawner.options_form == ""


def test_hub_database_and_proxy(sample_config):
    hub = sample_config.JupyterHub
    assert hub.db_url == "postgresql+psycopg://jupyterhub:hub-secret@127.0.0.1:5432/jupyterhub"
    assert hub.hub_bind_url == "http://172.28.0.1:8081"
    assert hub.public_url == "https://hub.example.org/"
    assert hub.cleanup_servers is False
    assert sample_config.ConfigurableHTTPProxy.should_start is False


def test_idle_culler_is_a_service_with_least_privilege(sample_config):
    roles = {role["name"]: role for role in sample_config.JupyterHub.load_roles}
    services = {service["name"]: service for service in sample_config.JupyterHub.services}
    role = roles["idle-culler"]
    assert role["services"] == ["idle-culler"]
    assert "admin:users" not in role["scopes"] and "admin" not in json.dumps(services["idle-culler"])
    assert "--timeout=3600" in services["idle-culler"]["command"]


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


def test_allowed_users_turn_allow_all_off(tmp_path, monkeypatch):
    dest, environment = render(tmp_path, {**SAMPLE, "jupyterhub_allowed_users": ["alice"]})
    config = load(dest, environment, monkeypatch)
    auth = SharedPasswordAuthenticator(config=config)
    assert auth.allow_all is False
    assert auth.allowed_users == {"alice"}


def test_no_secret_is_written_into_the_config(tmp_path):
    dest, _ = render(tmp_path, SAMPLE)
    text = dest.read_text()
    assert "event-password" not in text and "a" * 32 not in text
    assert os.stat(dest).st_mode & 0o077 == 0


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


def render_method(tmp_path, monkeypatch, method, **extra):
    overrides = {**SAMPLE, **METHODS[method], **extra}
    dest, environment = render(tmp_path, overrides)
    auth = json.loads((dest.parent / "auth.json").read_text())
    auth["oauth_client_secret"] = overrides.get("jupyterhub_oauth_client_secret", "")
    (dest.parent / "auth.json").write_text(json.dumps(auth))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return checker.check(str(dest))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_loads_without_warnings(tmp_path, monkeypatch, method):
    app, authenticator, _ = render_method(tmp_path, monkeypatch, method)
    assert authenticator.admin_users == {"organizer"}


def test_native_signup_with_approval(tmp_path, monkeypatch):
    _, auth, _ = render_method(tmp_path, monkeypatch, "native")
    assert type(auth).__name__ == "NativeAuthenticator"
    assert auth.open_signup is False and auth.enable_signup is True
    assert auth.minimum_password_length == 8 and auth.check_common_password is True
    assert auth.allow_all is True, "approval is the gate; without allow_all approved users could not log in"
    import nativeauthenticator.handlers

    assert hasattr(nativeauthenticator.handlers.LoginHandler, "statsd")


def test_pam_checks_passwords_without_sessions(tmp_path, monkeypatch):
    _, auth, _ = render_method(tmp_path, monkeypatch, "pam")
    assert type(auth).__name__ == "PAMAuthenticator"
    assert auth.open_sessions is False
    assert auth.allowed_groups == {"pophub-pam"}


def test_github_limits_to_org_and_team_and_makes_tas_admins(tmp_path, monkeypatch):
    _, auth, _ = render_method(tmp_path, monkeypatch, "github")
    assert type(auth).__name__ == "GitHubOAuthenticator"
    assert auth.client_id == "gh-client" and auth.client_secret == "gh-secret"
    assert auth.oauth_callback_url == "https://hub.example.org/hub/oauth_callback"
    assert auth.allowed_organizations == {"summer-school", "summer-school:participants"}
    assert "read:org" in auth.scope
    assert auth.manage_groups is True and auth.admin_groups == {"summer-school:tas"}
    teams = {"teams": [{"slug": "tas", "organization": {"login": "summer-school"}}]}
    assert auth.auth_state_groups_key(teams) == ["summer-school:tas"]
    assert auth.allow_all is False and auth.enable_auth_state is True


def test_oidc_groups_from_the_claim(tmp_path, monkeypatch):
    _, auth, _ = render_method(tmp_path, monkeypatch, "oidc")
    assert type(auth).__name__ == "GenericOAuthenticator"
    assert (auth.authorize_url, auth.token_url, auth.userdata_url) == tuple(OIDC_ENDPOINTS.values())
    assert auth.username_claim == "preferred_username"
    assert auth.scope == ["openid", "profile", "email"]
    assert auth.auth_state_groups_key == "oauth_user.groups"
    assert auth.allowed_groups == {"students"} and auth.admin_groups == {"teachers"}
    assert auth.allow_all is False


def test_dummy_is_refused_without_its_flag(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="jupyterhub_allow_insecure_dummy_auth"):
        render_method(tmp_path, monkeypatch, "dummy", jupyterhub_allow_insecure_dummy_auth=False)


def test_blocked_users_reach_the_authenticator(tmp_path, monkeypatch):
    _, auth, _ = render_method(tmp_path, monkeypatch, "github", jupyterhub_blocked_users=["mallory"])
    assert auth.blocked_users == {"mallory"}


def test_the_checker_catches_deprecations_that_are_only_logged(tmp_path, monkeypatch):
    dest, environment = render(tmp_path, {**SAMPLE, **METHODS["oidc"]})
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    auth = json.loads((dest.parent / "auth.json").read_text())
    (dest.parent / "auth.json").write_text(json.dumps({**auth, "oauth_client_secret": "s"}))
    with dest.open("a") as config:
        config.write('c.GenericOAuthenticator.claim_groups_key = "groups"\n')
    with pytest.raises(ValueError, match="claim_groups_key"):
        checker.check(str(dest))


def test_teams_share_an_account_that_nobody_logs_in_as(tmp_path, monkeypatch):
    teams = {"team-a": ["ann", "ben"], "open-team": []}
    dest, environment = render(tmp_path, {**SAMPLE, "jupyterhub_teams": teams, "jupyterhub_blocked_users": ["eve"]})
    config = load(dest, environment, monkeypatch)
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
    auth = SharedPasswordAuthenticator(config=config)
    assert auth.blocked_users == {"eve", "collab-team-a", "collab-open-team"}
