"""The pophub_hub package's functions, one by one (the hub's code; roles/jupyterhub/files/pophub_hub)."""

import asyncio
import json
import socket
import sys
import time
from types import SimpleNamespace
from typing import ClassVar

import psycopg
import pytest
from jupyterhub import orm
from sqlalchemy import create_engine, text
from traitlets.config import Config

from pophub_hub import auth, config, db, spawner

# Settings as the role renders them with its defaults, and one image.
SETTINGS = {
    "secrets_digest": "0" * 64,
    "code_digest": "1" * 64,
    "cookie_secret_file": "/var/lib/jupyterhub/jupyterhub_cookie_secret",
    "announcement_file": "/nonexistent/announcement.json",
    "hub_ip": "127.0.0.1",
    "hub_port": 8081,
    "public_url": "",
    "subdomain_host": "",
    "proxy_port": 8000,
    "proxy_api_port": 8001,
    "hand_back_port": 8082,
    "db": {"host": "127.0.0.1", "port": 5432, "name": "jupyterhub", "user": "jupyterhub"},
    "authenticator": "shared_password",
    "admin_users": [],
    "allowed_users": [],
    "blocked_users": [],
    "native_open_signup": False,
    "native_minimum_password_length": 8,
    "pam_group": "pophub-pam",
    "oauth_client_id": "",
    "github_url": "https://github.com",
    "github_allowed_organizations": [],
    "github_admin_teams": [],
    "oidc_authorize_url": "",
    "oidc_token_url": "",
    "oidc_userdata_url": "",
    "oidc_scopes": ["openid", "profile", "email"],
    "oidc_username_claim": "preferred_username",
    "oidc_groups_claim": "groups",
    "oidc_allowed_groups": [],
    "oidc_admin_groups": [],
    "oidc_allow_all_users": False,
    "oidc_login_service": "single sign-on",
    "allow_insecure_dummy_auth": False,
    "event_name": "",
    "login_hint": "",
    "announcement": "",
    "contact": "",
    "images": [{"display_name": "Python", "ref": "pophub/python:0123456789ab"}],
    "network_name": "pophub-users",
    "home_volume": "pophub-home-{username}",
    "home_path": "/home/jovyan",
    "extra_volumes": [],
    "default_url": "/lab",
    "user_database": {"host": "", "port": 5432, "name": "", "provisioner": ""},
    "user_environment": {},
    "mem_limit": "2G",
    "cpu_limit": 0.0,
    "pids_limit": 1024,
    "start_timeout": 300,
    "http_timeout": 120,
    "concurrent_spawn_limit": 200,
    "active_server_limit": 0,
    "concurrent_starts": 0,
    "docker_threads": 8,
    "teams": {},
    "team_account_prefix": "collab-",
    "verify_user": "pophub-verify",
    "idle_timeout": 3600,
    "idle_cull_every": 0,
    "activity_interval": 300,
}
SECRETS = {
    "shared_password": "event-password",
    "admin_password": "a" * 32,
    "oauth_client_secret": "client-secret",
    "db_password": "hub-secret",
    "db_provisioner_password": "provisioner-secret",
    "verify_token": "verify-token",
    "organizer_token": "organizer-token",
}


def configured(**settings):
    c = Config()
    config.configure(c, {**SETTINGS, **settings}, SECRETS)
    return c


# --- Reading the settings and the secrets -----------------------------------------------------
def test_the_sample_settings_are_the_packages(tmp_path):
    path = tmp_path / "pophub-hub.json"
    path.write_text(json.dumps(SETTINGS))
    assert config.read_settings(path) == SETTINGS


def test_settings_with_a_key_missing_or_unknown_are_refused(tmp_path):
    path = tmp_path / "pophub-hub.json"
    settings = {key: value for key, value in SETTINGS.items() if key != "teams"}
    path.write_text(json.dumps({**settings, "temas": {}}))
    with pytest.raises(ValueError, match=r"missing settings \['teams'\], unknown settings \['temas'\]"):
        config.read_settings(path)


def test_secrets_come_from_auth_json_and_the_environment(tmp_path):
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"shared_password": "p", "admin_password": "", "oauth_client_secret": ""}))
    environ = {"JUPYTERHUB_DB_PASSWORD": "db", "POPHUB_VERIFY_TOKEN": "t", "POPHUB_ORGANIZER_TOKEN": "o"}
    secrets = config.read_secrets(path, environ)
    assert secrets == {
        "shared_password": "p",
        "admin_password": "",
        "oauth_client_secret": "",
        "db_password": "db",
        "organizer_token": "o",
        "db_provisioner_password": None,
        "verify_token": "t",
    }
    with pytest.raises(KeyError, match="JUPYTERHUB_DB_PASSWORD"):
        config.read_secrets(path, {})


# --- configure(), method by method --------------------------------------------------------------
def test_shared_password():
    c = configured(admin_users=["organizer"])
    assert c.JupyterHub.authenticator_class == "shared-password"
    assert c.SharedPasswordAuthenticator.user_password == "event-password"
    assert c.SharedPasswordAuthenticator.admin_password == "a" * 32
    assert c.Authenticator.admin_users == {"organizer"} and c.Authenticator.allow_all is True
    assert "allowed_users" not in c.Authenticator and "blocked_users" not in c.Authenticator


def test_shared_password_without_admins_or_with_listed_users():
    c = configured(allowed_users=["alice"], blocked_users=["mallory"])
    assert "admin_password" not in c.SharedPasswordAuthenticator
    assert c.Authenticator.allow_all is False
    assert c.Authenticator.allowed_users == {"alice"} and c.Authenticator.blocked_users == {"mallory"}


def test_native():
    c = configured(authenticator="native", native_open_signup=True, native_minimum_password_length=12)
    native = c.NativeAuthenticator
    assert c.JupyterHub.authenticator_class == "native"
    assert (native.enable_signup, native.open_signup, native.check_common_password) == (True, True, True)
    assert native.minimum_password_length == 12 and c.Authenticator.allow_all is True
    assert (native.allowed_failed_logins, native.seconds_before_next_try) == (10, 600)
    from nativeauthenticator.handlers import LoginHandler

    # The no-op timer NativeAuthenticator 1.3.0's login handler needs under JupyterHub 6.
    LoginHandler.statsd.timer("login.authenticate.successful").start().stop(send=True)


def test_pam():
    c = configured(authenticator="pam", pam_group="hub-logins")
    assert c.JupyterHub.authenticator_class == "pam"
    assert c.PAMAuthenticator.open_sessions is False and c.PAMAuthenticator.allowed_groups == {"hub-logins"}


def test_github():
    c = configured(
        authenticator="github",
        public_url="https://hub.example.org/",
        oauth_client_id="gh-client",
        github_allowed_organizations=["school"],
        github_admin_teams=["school:tutors"],
    )
    github = c.GitHubOAuthenticator
    assert c.JupyterHub.authenticator_class == "github"
    assert (github.client_id, github.client_secret) == ("gh-client", "client-secret")
    assert github.oauth_callback_url == "https://hub.example.org/hub/oauth_callback"
    assert github.github_url == "https://github.com" and github.scope == ["read:org", "user:email"]
    assert github.allowed_organizations == {"school"} and github.admin_groups == {"school:tutors"}
    assert github.populate_teams_in_auth_state is True and github.manage_groups is True
    teams = {
        "teams": [
            {"slug": "tutors", "organization": {"login": "school"}},
            {"slug": "x", "organization": {"login": "y"}},
        ]
    }
    assert github.auth_state_groups_key(teams) == ["school:tutors", "y:x"]
    assert c.Authenticator.enable_auth_state is True


def test_github_without_admin_teams_or_public_url():
    c = configured(authenticator="github")
    for name in ("oauth_callback_url", "manage_groups", "admin_groups", "auth_state_groups_key"):
        assert name not in c.GitHubOAuthenticator
    assert auth.github_team_names({}) == []


def test_oidc():
    c = configured(
        authenticator="oidc",
        oauth_client_id="oidc-client",
        oidc_authorize_url="https://idp/auth",
        oidc_token_url="https://idp/token",
        oidc_userdata_url="https://idp/userinfo",
        oidc_groups_claim="roles",
        oidc_admin_groups=["teachers"],
        oidc_allow_all_users=True,
    )
    oidc = c.GenericOAuthenticator
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert (oidc.authorize_url, oidc.token_url, oidc.userdata_url) == (
        "https://idp/auth",
        "https://idp/token",
        "https://idp/userinfo",
    )
    assert (oidc.client_id, oidc.client_secret) == ("oidc-client", "client-secret")
    assert oidc.login_service == "single sign-on"
    assert oidc.scope == ["openid", "profile", "email"] and oidc.username_claim == "preferred_username"
    assert oidc.manage_groups is True and oidc.auth_state_groups_key == "oauth_user.roles"
    assert oidc.admin_groups == {"teachers"} and "allowed_groups" not in oidc
    assert c.Authenticator.allow_all is True and c.Authenticator.enable_auth_state is True


def test_oidc_without_groups_leaves_groups_alone():
    c = configured(authenticator="oidc")
    assert "manage_groups" not in c.GenericOAuthenticator and c.Authenticator.allow_all is False


def test_dummy_only_with_its_flag():
    with pytest.raises(ValueError, match="jupyterhub_allow_insecure_dummy_auth"):
        configured(authenticator="dummy")
    c = configured(authenticator="dummy", allow_insecure_dummy_auth=True)
    assert c.JupyterHub.authenticator_class == "dummy" and c.Authenticator.allow_all is True


def test_an_unknown_method_is_named():
    with pytest.raises(ValueError, match="authenticator is 'ldap': set jupyterhub_authenticator to one of"):
        configured(authenticator="ldap")


# --- configure(): the hub, servers, services, teams ---------------------------------------------
def test_the_hub_and_its_proxy():
    c = configured(public_url="https://hub.example.org/")
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:8081"
    assert c.JupyterHub.public_url == "https://hub.example.org/"
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    assert c.ConfigurableHTTPProxy.should_start is False and c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.db_url == "postgresql+psycopg://jupyterhub:hub-secret@127.0.0.1:5432/jupyterhub"
    assert "public_url" not in configured().JupyterHub


def test_per_user_subdomains_move_servers_and_services_to_names_of_their_own():
    assert "subdomain_host" not in configured().JupyterHub
    assert configured().JupyterHub.template_vars["pophub_hand_back_url"] == "/services/hand-back/"
    c = configured(public_url="https://hub.example.org:8443/", subdomain_host="https://hub.example.org:8443")
    assert c.JupyterHub.subdomain_host == "https://hub.example.org:8443"
    assert c.JupyterHub.cookie_host_prefix_enabled is True
    assert "cookie_host_prefix_enabled" not in configured().JupyterHub
    # The hub page's link goes where JupyterHub serves the service with subdomains.
    from jupyterhub.utils import subdomain_hook_idna

    assert subdomain_hook_idna("hand-back", "hub.example.org", "service") == "hand-back--service.hub.example.org"
    link = c.JupyterHub.template_vars["pophub_hand_back_url"]
    assert link == "https://hand-back--service.hub.example.org:8443/services/hand-back/"


def test_servers():
    c = configured(
        images=[{"display_name": "A", "ref": "a:1"}, {"display_name": "B", "ref": "b:2"}],
        extra_volumes=[{"source": "/srv/data", "target": "/data", "mode": "ro"}, {"source": "x", "target": "/x"}],
        cpu_limit=2.0,
        user_environment={"COURSE": "geo"},
    )
    assert c.JupyterHub.spawner_class is spawner.PophubDockerSpawner
    assert c.PophubDockerSpawner.docker_threads == 8
    assert c.PophubDockerSpawner.concurrent_starts == 0 and c.JupyterHub.concurrent_spawn_limit == 200
    assert (
        c.JupyterHub.active_server_limit == 0
        and configured(active_server_limit=40).JupyterHub.active_server_limit == 40
    )
    assert c.DockerSpawner.allowed_images == {"A": "a:1", "B": "b:2"} and c.DockerSpawner.image == "a:1"
    assert c.DockerSpawner.options_form is spawner.image_form
    assert c.DockerSpawner.volumes == {
        "pophub-home-{username}": "/home/jovyan",
        "/srv/data": {"bind": "/data", "mode": "ro"},
        "x": {"bind": "/x", "mode": "rw"},
    }
    assert c.DockerSpawner.cpu_limit == 2.0
    assert c.DockerSpawner.environment == {"COURSE": "geo", "JUPYTERHUB_ACTIVITY_INTERVAL": "300"}
    assert "pre_spawn_hook" not in c.Spawner


def test_servers_have_no_ipv6_where_the_kernel_has_it(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "IPV6", tmp_path)
    assert configured().DockerSpawner.extra_host_config["sysctls"] == {
        "net.ipv6.conf.all.disable_ipv6": "1",
        "net.ipv6.conf.default.disable_ipv6": "1",
    }
    # Without IPv6 in the kernel there is nothing to turn off, and Docker would refuse the sysctl.
    monkeypatch.setattr(config, "IPV6", tmp_path / "absent")
    assert "sysctls" not in configured().DockerSpawner.extra_host_config


def test_the_event_database_gives_each_server_a_login():
    c = configured(user_database={"host": "172.28.0.1", "port": 5433, "name": "event", "provisioner": "prov"})
    assert c.DockerSpawner.environment == {
        "JUPYTERHUB_ACTIVITY_INTERVAL": "300", "PGHOST": "172.28.0.1", "PGPORT": "5433", "PGDATABASE": "event",
    }  # fmt: skip
    assert asyncio.iscoroutinefunction(c.Spawner.pre_spawn_hook)


def test_services_and_their_roles():
    c = configured(idle_cull_every=60, verify_user="checker")
    assert c.JupyterHub.services == [
        {"name": "pophub-verify", "api_token": "verify-token"},
        {"name": "pophub-organizer", "api_token": "organizer-token"},
        {
            "name": "hand-back", "url": "http://127.0.0.1:8082", "oauth_no_confirm": True,
            "command": [sys.executable, "-m", "pophub_hub.handback"],
        },
        {
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=3600", "--cull-every=60"],
        },
    ]
    assert c.JupyterHub.load_roles[0]["scopes"] == [
        "admin:users!user=checker", "servers!user=checker", "access:servers!user=checker",
    ]  # fmt: skip
    # The event-day commands see every user and server and may stop servers: nothing more.
    assert c.JupyterHub.load_roles[1] == {
        "name": "pophub-organizer",
        "scopes": ["list:users", "read:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["pophub-organizer"],
    }
    assert [role["name"] for role in configured(idle_timeout=0).JupyterHub.load_roles] == [
        "pophub-verify", "pophub-organizer",
    ]  # fmt: skip


def test_teams():
    c = configured(teams={"a": ["ann"]}, blocked_users=["eve"], team_account_prefix="team-")
    assert c.JupyterHub.load_groups == {"a": {"users": ["ann"]}, "pophub-team-accounts": {"users": ["team-a"]}}
    assert c.Authenticator.blocked_users == {"eve"}, "refused by name_refusal, kept in their group"
    assert c.JupyterHub.load_roles[-1] == {
        "name": "team-a", "scopes": ["servers!user=team-a", "access:servers!user=team-a", "read:users!user=team-a"],
        "groups": ["a"],
    }  # fmt: skip
    assert "load_groups" not in configured().JupyterHub


# --- The spawner ----------------------------------------------------------------------------------
def test_the_image_form_escapes_names_and_selects_the_default():
    images = {'Python <3> & "friends"': "pophub/python:1", "R": "pophub/r:2"}
    form = spawner.image_form(SimpleNamespace(image="pophub/r:2", allowed_images=images))
    assert "<3>" not in form and '"friends"' not in form
    escaped = "Python &lt;3&gt; &amp; &quot;friends&quot;"
    assert f'<option value="{escaped}">{escaped}</option>' in form
    assert '<option value="R" selected>R</option>' in form
    assert form.count(" selected") == 1
    assert form.startswith('<label for="image">Environment</label><select class="form-control" id="image" name="image"')


def free_port():
    """A port on 127.0.0.1 that nothing listens on (just released by the kernel)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def listen_later(port, delay):
    await asyncio.sleep(delay)
    return await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", port)


def test_the_readiness_wait_returns_once_the_server_accepts():
    async def scenario():
        port = free_port()
        opening = asyncio.create_task(listen_later(port, 0.3))
        started = time.monotonic()
        accepted = await spawner.wait_until_accepting("127.0.0.1", port, timeout=10)
        waited = time.monotonic() - started
        server = await opening
        server.close()
        return accepted, waited

    accepted, waited = asyncio.run(scenario())
    assert accepted is True
    assert 0.3 <= waited < 2, f"waited {waited:.2f} s for a server that listened after 0.3 s"


def test_the_readiness_wait_gives_up_at_its_timeout():
    started = time.monotonic()
    assert asyncio.run(spawner.wait_until_accepting("127.0.0.1", free_port(), timeout=0.5)) is False
    assert time.monotonic() - started < 2


def test_start_returns_once_the_started_server_accepts(monkeypatch):
    port = free_port()

    async def docker_start(self):
        return "127.0.0.1", port

    monkeypatch.setattr(spawner.DockerSpawner, "start", docker_start)

    async def scenario():
        opening = asyncio.create_task(listen_later(port, 0.3))
        server = spawner.PophubDockerSpawner(user=SimpleNamespace(name="alice"))
        started = time.monotonic()
        address = await server.start()
        waited = time.monotonic() - started
        (await opening).close()
        return address, waited

    address, waited = asyncio.run(scenario())
    assert address == ("127.0.0.1", port) and 0.3 <= waited < 2


def test_a_room_starts_in_line_at_most_slots_at_a_time_first_come_first_served():
    async def scenario():
        line = spawner.StartLine(2)
        running, most, order = 0, 0, []

        async def person(name):
            nonlocal running, most
            async with line.turn(name):
                running += 1
                most = max(most, running)
                order.append(name)
                await asyncio.sleep(0.02)
                running -= 1

        names = [f"p{i}" for i in range(7)]
        tasks = [asyncio.create_task(person(n)) for n in names]
        await asyncio.sleep(0)  # everyone has arrived: two start, five wait
        ahead = [line.ahead_of(n) for n in names]
        await asyncio.gather(*tasks)
        return most, order, names, ahead, line

    most, order, names, ahead, line = asyncio.run(scenario())
    assert most == 2
    assert order == names
    assert ahead == [None, None, 0, 1, 2, 3, 4]
    assert (line.running, line.waiting) == (0, 0)


def test_a_start_that_gives_up_in_line_leaves_it_and_loses_no_slot():
    async def scenario():
        line = spawner.StartLine(1)
        first_in = asyncio.Event()
        release = asyncio.Event()

        async def first():
            async with line.turn("first"):
                first_in.set()
                await release.wait()

        async def waiter(name):
            async with line.turn(name):
                return name

        holder = asyncio.create_task(first())
        await first_in.wait()
        quitter = asyncio.create_task(waiter("quitter"))
        patient = asyncio.create_task(waiter("patient"))
        await asyncio.sleep(0)
        assert (line.ahead_of("quitter"), line.ahead_of("patient")) == (0, 1)
        quitter.cancel()  # the hub's start timeout
        await asyncio.sleep(0)
        assert line.ahead_of("quitter") is None and line.ahead_of("patient") == 0
        release.set()
        await holder
        return await patient, line

    name, line = asyncio.run(scenario())
    assert name == "patient" and (line.running, line.waiting) == (0, 0)


def test_the_progress_page_says_how_many_are_ahead_then_that_it_is_starting(monkeypatch):
    monkeypatch.setattr(spawner.PophubDockerSpawner, "_line", spawner.StartLine(1))
    server = spawner.PophubDockerSpawner(user=SimpleNamespace(name="carol"))

    async def scenario():
        line = server.start_line(0)
        release = asyncio.Event()

        async def holder(name):
            async with line.turn(name):
                await release.wait()

        tasks = [asyncio.create_task(holder(n)) for n in ("ann", "ben")]
        await asyncio.sleep(0)
        mine = asyncio.create_task(holder(server))
        await asyncio.sleep(0)
        events = []

        async def read():
            async for event in server.progress():
                events.append(event)

        reading = asyncio.create_task(read())
        await asyncio.sleep(0.1)
        release.set()
        await asyncio.gather(*tasks, mine, reading)
        return events

    events = asyncio.run(scenario())
    messages = [event["message"] for event in events]
    assert messages[0].startswith("Waiting for a free place to start: 1 person ahead of you.")
    assert messages[-1] == "Your turn: starting your server."


def test_the_provisioning_retries_while_the_database_does_not_answer(monkeypatch):
    calls = []

    async def attempt():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise psycopg.OperationalError("connection timeout expired")
        return "pophub_u_alice"

    log = SimpleNamespace(warning=lambda *args: None)
    assert asyncio.run(spawner.retry_while_unavailable(attempt, log, patience=5, pause=0.01)) == "pophub_u_alice"
    assert len(calls) == 3


def test_the_provisioning_gives_up_after_its_patience():
    async def attempt():
        raise psycopg.OperationalError("connection refused")

    log = SimpleNamespace(warning=lambda *args: None)
    with pytest.raises(psycopg.OperationalError):
        asyncio.run(spawner.retry_while_unavailable(attempt, log, patience=0.05, pause=0.01))


def test_every_server_shares_one_pool_of_docker_threads(monkeypatch):
    monkeypatch.setattr(spawner.PophubDockerSpawner, "_executor", None)
    c = Config()
    c.PophubDockerSpawner.docker_threads = 3
    first = spawner.PophubDockerSpawner(config=c, user=SimpleNamespace(name="a"))
    second = spawner.PophubDockerSpawner(config=c, user=SimpleNamespace(name="b"))
    assert first.executor is second.executor and first.executor._max_workers == 3
    assert spawner.DockerSpawner._executor is not first.executor


class FakeCursor:
    def __init__(self, row):
        self.row = row

    async def fetchone(self):
        return self.row


class FakeConnection:
    """Stands in for psycopg's AsyncConnection: records what the hook asks of the database."""

    made: ClassVar[list] = []

    def __init__(self, **kwargs):
        self.kwargs, self.queries = kwargs, []
        FakeConnection.made.append(self)

    @classmethod
    async def connect(cls, **kwargs):
        return cls(**kwargs)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def execute(self, query, params):
        self.queries.append((query, params))
        return FakeCursor(("pophub_u_alice",))


def test_the_provisioning_hook_hands_the_server_its_own_login(monkeypatch):
    monkeypatch.setattr(spawner.psycopg, "AsyncConnection", FakeConnection)
    FakeConnection.made.clear()
    database = {"host": "172.28.0.1", "port": 5433, "name": "event", "provisioner": "prov"}
    hook = spawner.database_role_hook(database, "s3cret")
    server = SimpleNamespace(
        user=SimpleNamespace(name="alice"), environment={"PGHOST": "172.28.0.1"}, log=SimpleNamespace(warning=print)
    )
    asyncio.run(hook(server))
    (connection,) = FakeConnection.made
    assert connection.kwargs == {
        "host": "127.0.0.1",
        "port": 5433,
        "dbname": "event",
        "user": "prov",
        "password": "s3cret",
        "connect_timeout": 10,
    }
    ((query, (name, password)),) = connection.queries
    assert query == "SELECT public.pophub_provision_user(%s, %s)" and name == "alice"
    assert server.environment == {"PGHOST": "172.28.0.1", "PGUSER": "pophub_u_alice", "PGPASSWORD": password}
    assert len(password) >= 32
    asyncio.run(hook(server))
    assert FakeConnection.made[1].queries[0][1][1] != password, "every start gets a fresh password"


# --- The database -------------------------------------------------------------------------------
@pytest.fixture
def session():
    return orm.new_session_factory("sqlite:///:memory:")()


def run_prepare(session):
    calls = []

    async def prepare(handler):
        calls.append(handler)
        return "prepared"

    handler = SimpleNamespace(db=session)
    assert asyncio.run(db.release_db_connection(prepare)(handler)) == "prepared"
    assert calls == [handler], "the handler's own prepare() runs after"


def test_a_clean_session_hands_its_connection_back(session):
    session.execute(text("SELECT 1"))
    assert session.in_transaction()
    run_prepare(session)
    assert not session.in_transaction()


def test_a_session_with_pending_changes_is_left_alone(session):
    session.execute(text("SELECT 1"))
    session.add(orm.User(name="alice"))
    run_prepare(session)
    assert session.in_transaction() and len(session.new) == 1
    session.rollback()
    assert session.query(orm.User).count() == 0, "nothing was committed"


def test_a_failed_commit_is_rolled_back():
    rolled_back = []

    class Broken:
        new = dirty = deleted = ()

        def commit(self):
            from sqlalchemy.exc import OperationalError

            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

        def rollback(self):
            rolled_back.append(True)

    run_prepare(Broken())
    assert rolled_back == [True]


def test_the_handlers_are_patched_once():
    from jupyterhub.handlers.base import BaseHandler

    db.patch_handlers()
    patched = BaseHandler.prepare
    db.patch_handlers()
    assert BaseHandler.prepare is patched and patched._pophub is True


def test_the_revision_check_says_current_or_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    orm.new_session_factory(url)  # a database as this JupyterHub makes it, stamped with its revision
    engine = create_engine(url)
    assert db.revision_state(engine) == "current"
    with engine.begin() as connection:
        # The base revision (JupyterHub 0.5): older than every schema since.
        connection.execute(text("UPDATE alembic_version SET version_num = '19c0846f6344'"))
    assert db.revision_state(engine) == "upgrade"


def test_a_database_without_a_revision_is_left_to_the_hub(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert db.revision_state(engine) == "current"
    from sqlalchemy import inspect

    assert inspect(engine).get_table_names() == [], "read-only: nothing stamped"


# --- Names at login -----------------------------------------------------------------------------
def login(name, **settings):
    """A login through JupyterHub's own SharedPasswordAuthenticator, configured by configure()."""
    from jupyterhub.authenticators.shared import SharedPasswordAuthenticator

    authenticator = SharedPasswordAuthenticator(config=configured(**settings))
    handler = SimpleNamespace(settings={"login_url": "/hub/login"})
    data = {"username": name, "password": "event-password"}
    return asyncio.run(authenticator.get_authenticated_user(handler, data))


def test_a_participant_logs_in_under_any_ordinary_name():
    assert login("Ana.Lopez")["name"] == "ana.lopez"
    assert login("x" * auth.NAME_MAX)["name"] == "x" * auth.NAME_MAX


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("x" * 300, "Your name has 300 characters, and names on this hub have at most 64."),
        ("x" * (auth.NAME_MAX + 1), "at most 64"),
        ("pophub-verify", "The name pophub-verify is kept for the hub itself."),
        ("pophub-anything", "kept for the hub itself"),
        ("collab-team-that-does-not-exist", "Names that start with collab- belong to team servers"),
    ],
)
def test_a_reserved_or_overlong_name_gets_a_page_that_says_why(name, says):
    from tornado import web

    with pytest.raises(web.HTTPError) as refused:
        login(name)
    assert refused.value.status_code == 403 and says in refused.value.log_message
    page = refused.value.jupyterhub_html_message
    assert says in page and '<a href="/hub/login">Back to the login page</a>' in page


def test_the_team_prefix_is_the_organizers():
    from tornado import web

    assert login("collab-x", team_account_prefix="team-")["name"] == "collab-x"
    with pytest.raises(web.HTTPError):
        login("team-red", team_account_prefix="team-")


def test_sign_up_refuses_overlong_names_too():
    from jupyterhub.auth import Authenticator

    # NativeAuthenticator checks names at sign-up with Authenticator.validate_username and this pattern.
    native = Authenticator(username_pattern=configured(authenticator="native").NativeAuthenticator.username_pattern)
    assert native.validate_username("x" * auth.NAME_MAX)
    assert not native.validate_username("x" * (auth.NAME_MAX + 1))


# --- What the pages say -------------------------------------------------------------------------
def render(template, secrets=None, **settings):
    """A page rendered the way JupyterHub renders it: its loader, our templates first, and the
    template variables configure() sets; the stock pages' helpers are stand-ins."""
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
    from jupyterhub._data import DATA_FILES_PATH

    c = Config()
    config.configure(c, {**SETTINGS, **settings}, secrets or SECRETS)
    stock = f"{DATA_FILES_PATH}/templates"
    ours_first = FileSystemLoader([*c.JupyterHub.template_paths, stock])
    loader = ChoiceLoader([PrefixLoader({"templates": FileSystemLoader([stock])}, "/"), ours_first])
    page = Environment(loader=loader, autoescape=True).get_template(template)
    helpers = {"static_url": lambda *a, **k: "/static", "base_url": "/", "prefix": "/", "xsrf": "x"}
    # JupyterHub calls a callable template variable with the page's user (none on the login page).
    variables = {key: value(None) if callable(value) else value for key, value in c.JupyterHub.template_vars.items()}
    return page.render(**helpers, authenticator={}, authenticator_login_url="/hub/login", **variables)


def test_the_login_page_names_the_event_says_how_to_get_in_and_whom_to_ask():
    page = render(
        "login.html",
        event_name="Geo Summer School <2026>",
        announcement="The room changes at 2 pm & <b>not</b> before",
        contact="Ask a TA",
    )
    assert "<title>Geo Summer School &lt;2026&gt;</title>" in page
    assert '<h1 id="pophub-event-name" class="text-center">Geo Summer School &lt;2026&gt;</h1>' in page
    assert "type the event password" in page
    # The organizer's text is text: their markup is shown, not run.
    assert "The room changes at 2 pm &amp; &lt;b&gt;not&lt;/b&gt; before" in page
    assert '<footer id="pophub-contact" class="container text-center text-muted mt-4"><p>Ask a TA</p>' in page
    assert 'name="password"' in page, "the stock form is still there"


def test_nothing_is_added_where_nothing_is_set():
    page = render("login.html", login_hint="")
    assert "pophub-event-name" not in page and "pophub-contact" not in page and "announcement" not in page
    assert "<title>JupyterHub</title>" in page


@pytest.mark.parametrize(
    ("settings", "hint"),
    [
        ({"login_hint": "The password is on the board."}, "The password is on the board."),
        ({"allowed_users": ["alice"]}, "Log in with the name the organizers gave you and the event password."),
        ({"authenticator": "native"}, "you can log in once an organizer approves you"),
        ({"authenticator": "native", "native_open_signup": True}, "Sign up with a name and a password, then log in"),
        ({"authenticator": "pam"}, "the account the organizers made for you"),
        ({"authenticator": "github", "github_allowed_organizations": ["geo-school"]}, "a member of geo-school"),
        ({"authenticator": "oidc", "oidc_login_service": "University"}, "Sign in with your University account"),
    ],
)
def test_each_login_method_has_its_own_hint(settings, hint):
    assert hint in auth.login_hint({**SETTINGS, **settings})


def test_native_sign_in_shows_the_name_and_hint_in_its_announcement():
    c = configured(authenticator="native", event_name="Geo & Co", announcement="Room B")
    login_banner = c.JupyterHub.template_vars["announcement_login"]
    assert login_banner.startswith("Geo &amp; Co<br>New here?") and login_banner.endswith("<br>Room B")


def test_announce_replaces_the_banner_at_once_and_reset_brings_back_the_inventorys(tmp_path):
    live = tmp_path / "announcement.json"
    settings = {"announcement_file": str(live), "announcement": "Room B"}
    assert "Room B" in render("login.html", **settings)
    live.write_text(json.dumps({"text": "Lunch <now>"}))
    page = render("login.html", **settings)
    assert "Lunch &lt;now&gt;" in page and "Room B" not in page
    live.write_text(json.dumps({"text": ""}))  # announce --clear
    assert 'id="pophub-announcement"' not in render("login.html", **settings)
    live.unlink()  # announce --reset
    assert "Room B" in render("login.html", **settings)


def test_announce_keeps_the_event_name_and_hint_in_natives_login_banner(tmp_path):
    from pophub_hub import eventday

    live = tmp_path / "announcement.json"
    banner = eventday.Announcement(live, "Room B")(None)
    page = "Geo &amp; Co<br>New here?<br>Room B"
    assert banner(page) == page
    live.write_text(json.dumps({"text": "Lunch"}))
    assert banner(page) == "Geo &amp; Co<br>New here?<br>Lunch"
    live.write_text(json.dumps({"text": ""}))
    assert banner(page) == "Geo &amp; Co<br>New here?"
    assert eventday.Announcement(live, "").banner("Geo") == "Geo"


def test_the_status_screen_reads_at_a_glance():
    from pophub_hub import eventday

    now = int(time.time())
    found = {
        "units": {"hub": {"unit": "jupyterhub.service", "state": "active (running)", "failing": False,
                          "since": now - 7200, "last_run": None},
                  "git sync": {"unit": "pophub-git-sync.service", "state": "failed (failed)", "failing": True,
                               "since": now - 60, "last_run": now - 60},
                  "backup": None},
        "users": {"known": 3, "active_now": ["ana", "bo"], "active_minutes": 10},
        "servers": [{"user": "ana", "server": "", "ready": True, "pending": None, "image": "python",
                     "started": now - 600, "idle_seconds": 30, "memory": "312MiB", "memory_limit": "1GiB",
                     "memory_percent": "30.5%", "cpu_percent": "1.2%"},
                    {"user": "bo", "server": "", "ready": False, "pending": "spawn", "image": None,
                     "started": None, "idle_seconds": None}],
        "failed_starts_last_hour": [], "failed_starts_count": 0,
        "box": {"cpus": 2, "load": ["0.5", "0.4", "0.3"], "memory_total": 8e9, "memory_available": 5e9,
                "disk_total": 100e9, "disk_free": 60e9},
        "homes": {"ana": 2_500_000, "bo": 1000},
        "certificate": {"days_left": 80}, "backup": None, "bans": {"pophub-hub-login": ["203.0.113.9"]},
    }  # fmt: skip
    screen = eventday.render(found)
    lines = screen.splitlines()
    assert any(line.split()[:3] == ["git", "sync", "FAILING"] for line in lines), screen
    assert any(line.split()[:2] == ["hub", "ok"] and "since 2 h ago" in line for line in lines), screen
    assert "2 active in the last 10 min, 3 known; servers: 1 running, 1 pending" in screen
    assert any(line.split()[:3] == ["ana", "ready", "python"] and "312MiB / 1GiB" in line for line in lines), screen
    assert "homes: ana 2.5 MB, bo 1.0 KB" in screen and "certificate: 80 days left" in screen
    assert "last backup: none yet" in screen and "banned by pophub-hub-login: 203.0.113.9" in screen


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"text": None}, "Give the banner's text"),
        ({"text": "   "}, "Give the banner's text"),
        ({"text": "x" * 501}, "The announcement is 501 characters long: keep it to 500 or fewer"),
    ],
)
def test_announce_refuses_an_empty_or_huge_banner_with_a_sentence(tmp_path, arguments, says):
    from pophub_hub import eventday

    with pytest.raises(eventday.Refusal, match=says):
        eventday.announce({"announcement_file": str(tmp_path / "a.json"), "announcement": ""}, **arguments)
    assert not (tmp_path / "a.json").exists()


def test_failed_starts_are_told_from_the_hubs_other_lines():
    from pophub_hub import eventday

    failed = [
        "[W 2026-12-02 10:00:01.1 JupyterHub user:1058] ana's server failed to start in 300 seconds, giving up.",
        "[E 2026-12-02 10:00:02.2 JupyterHub user:1069] Error starting bo's server: HTTP 400: image not offered",
        "[E 2026-12-02 10:00:03.3 JupyterHub user:1072] Unhandled error starting cy's server: ImageNotFound",
    ]
    others = [
        "[I 2026-12-02 10:00:04.4 JupyterHub service:138] Spawning python3 -m jupyterhub_idle_culler --timeout=3600",
        "[I 2026-12-02 10:00:05.5 JupyterHub log:192] 200 GET /hub/api/users/ana/server/progress",
    ]
    assert [line for line in failed + others if eventday.FAILED_START.search(line)] == failed


def test_the_last_backup_is_the_newest_finished_one(tmp_path):
    from pophub_hub import eventday

    assert eventday.last_backup(tmp_path) is None
    for name in ("20261201T030000Z-nightly", "20261202T030000Z-nightly", ".partial-20261203T030000Z-manual"):
        (tmp_path / name).mkdir()
    (tmp_path / ".lock").write_text("")
    (tmp_path / "20261202T030000Z-nightly" / "db-event.dump").write_bytes(b"x" * 1000)
    found = eventday.last_backup(tmp_path)
    assert found["path"] == str(tmp_path / "20261202T030000Z-nightly") and found["bytes"] == 1000
