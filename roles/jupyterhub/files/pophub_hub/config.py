"""Every option of the hub, set from its settings file and its secrets.

jupyterhub_config.py is three calls: read_settings(), read_secrets() and configure(). The settings
file (pophub-hub.json, rendered by the jupyterhub role) holds no secret; its keys are the role's
variables without their `jupyterhub_` prefix, plus the digests that make a change of the secrets or
of this package alone rewrite it, so that it is checked again (python -m pophub_hub.check)."""

import html
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from pophub_hub import auth, db, eventday, spawner

SETTINGS = frozenset(
    {
        "secrets_digest", "code_digest", "cookie_secret_file", "announcement_file",
        "hub_ip", "hub_port", "public_url", "subdomain_host", "proxy_port", "proxy_api_port", "hand_back_port", "db",
        "authenticator", "admin_users", "allowed_users", "blocked_users",
        "native_open_signup", "native_minimum_password_length", "pam_group",
        "oauth_client_id", "github_url", "github_allowed_organizations", "github_admin_teams",
        "oidc_authorize_url", "oidc_token_url", "oidc_userdata_url", "oidc_scopes", "oidc_username_claim",
        "oidc_groups_claim", "oidc_allowed_groups", "oidc_admin_groups", "oidc_allow_all_users",
        "oidc_login_service", "allow_insecure_dummy_auth",
        "event_name", "login_hint", "announcement", "contact",
        "images", "network_name", "home_volume", "home_path", "extra_volumes", "default_url",
        "user_database", "user_environment", "mem_limit", "cpu_limit", "pids_limit",
        "start_timeout", "http_timeout", "concurrent_spawn_limit", "active_server_limit", "concurrent_starts",
        "docker_threads",
        "teams", "team_account_prefix", "verify_user", "idle_timeout", "idle_cull_every", "activity_interval",
    }
)  # fmt: skip


def read_settings(path):
    """The settings in the JSON file at `path`; refused when a key is missing or unknown."""
    settings = json.loads(Path(path).read_text())
    missing, unknown = sorted(SETTINGS - settings.keys()), sorted(settings.keys() - SETTINGS)
    if missing or unknown:
        raise ValueError(
            f"{path} does not match this pophub_hub: missing settings {missing}, unknown settings {unknown}"
        )
    return settings


def read_secrets(auth_file, environ):
    """The login secrets in `auth_file` (auth.json), and those systemd hands the hub in `environ`."""
    return {
        **json.loads(Path(auth_file).read_text()),
        "db_password": environ["JUPYTERHUB_DB_PASSWORD"],
        "db_provisioner_password": environ.get("POPHUB_DB_PROVISIONER_PASSWORD"),
        "verify_token": environ.get("POPHUB_VERIFY_TOKEN", ""),
        "organizer_token": environ.get("POPHUB_ORGANIZER_TOKEN", ""),
    }


def configure(c, settings, secrets):
    """Set every option of the hub on `c`, the config jupyterhub_config.py gets from JupyterHub."""
    _hub(c, settings, secrets)
    _pages(c, settings)
    auth.configure(c, settings, secrets)
    if settings["authenticator"] == "native":
        auth.patch_native_login_handler()
    _servers(c, settings, secrets)
    _services(c, settings, secrets)
    if settings["teams"]:
        _teams(c, settings)


def _hub(c, settings, secrets):
    """The hub, its proxy and its database."""
    c.JupyterHub.hub_bind_url = f"http://{settings['hub_ip']}:{settings['hub_port']}"
    if settings["public_url"]:
        c.JupyterHub.public_url = settings["public_url"]
    if settings["subdomain_host"]:
        # Each server at a name of its own (alice.<domain>), so that what one user serves runs in an
        # origin of its own; the proxy's unit routes by name (--host-routing) to match.
        c.JupyterHub.subdomain_host = settings["subdomain_host"]
        # And its login cookies named __Host-: a browser then takes them only from the name that set
        # them, so a page at another name (a participant's server) cannot plant one for the hub to read.
        c.JupyterHub.cookie_host_prefix_enabled = True
    # The proxy runs as its own unit (jupyterhub-proxy.service), so browser connections to running
    # servers survive a hub restart. Its token arrives as CONFIGPROXY_AUTH_TOKEN.
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings['proxy_api_port']}"
    c.JupyterHub.bind_url = f"http://127.0.0.1:{settings['proxy_port']}"
    # Leave user servers running when the hub stops or restarts.
    c.JupyterHub.cleanup_servers = False

    c.JupyterHub.cookie_secret_file = settings["cookie_secret_file"]
    database = settings["db"]
    c.JupyterHub.db_url = "postgresql+psycopg://{user}:{password}@{host}:{port}/{name}".format(
        password=secrets["db_password"], **database
    )
    # Reconnect by itself after PostgreSQL restarts: a connection is tested when taken from the pool,
    # and each request starts with the connection handed back (see db.release_db_connection).
    c.JupyterHub.db_kwargs = {"pool_pre_ping": True}
    db.patch_handlers()


TEMPLATES = Path(__file__).parent / "templates"
# Present when the kernel the hub (and every server) runs on has IPv6.
IPV6 = Path("/proc/sys/net/ipv6")


def _pages(c, settings):
    """What the hub's pages say for the event, through JupyterHub's own templates (login.html and
    page.html in TEMPLATES extend the stock ones) and template variables. The organizer's text is
    plain text: the stock page shows `announcement` as HTML, so it is escaped here."""
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    c.JupyterHub.template_vars = {
        "pophub_event_name": settings["event_name"],
        "pophub_login_hint": auth.login_hint(settings),
        "pophub_contact": settings["contact"],
        "announcement": html.escape(settings["announcement"]),
        # What `announce` set since (eventday.Announcement), read at every page, so the banner
        # changes without restarting the hub.
        "pophub_banner": eventday.Announcement(settings["announcement_file"], settings["announcement"]),
        "pophub_hand_back_url": service_url(settings, "hand-back"),
    }
    if settings["authenticator"] == "native":
        # NativeAuthenticator's login page has its own template, whose only opening for text is the
        # login announcement: the name and the hint go there, above the organizer's announcement.
        lines = [settings["event_name"], auth.login_hint(settings), settings["announcement"]]
        c.JupyterHub.template_vars["announcement_login"] = "<br>".join(html.escape(line) for line in lines if line)


def service_url(settings, name):
    """Where a browser finds the hub's service `name`: under the hub's own name, or with subdomains
    at a name of its own (JupyterHub's default subdomain hook: hand-back--service.<domain>)."""
    path = f"/services/{name}/"
    if not settings["subdomain_host"]:
        return path
    url = urlsplit(settings["subdomain_host"])
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{name}--service.{url.hostname}{port}{path}"


def _servers(c, settings, secrets):
    """User servers: one Docker container each."""
    c.JupyterHub.spawner_class = spawner.PophubDockerSpawner
    c.PophubDockerSpawner.docker_threads = settings["docker_threads"]
    c.PophubDockerSpawner.concurrent_starts = settings["concurrent_starts"]
    # The images on offer, by the name users see; the first is the default. A start that asks for
    # anything else is refused (HTTP 400), through the form and the API alike.
    images = settings["images"]
    c.DockerSpawner.allowed_images = {image["display_name"]: image["ref"] for image in images}
    c.DockerSpawner.image = images[0]["ref"]
    if len(images) > 1:
        c.DockerSpawner.options_form = spawner.image_form
    # Images are built on the box before users arrive; a spawn never waits for a pull.
    c.DockerSpawner.pull_policy = "never"
    c.DockerSpawner.network_name = settings["network_name"]
    c.DockerSpawner.use_internal_ip = True
    # A stopped server's container is removed; its home lives on in the named volume, and the next
    # start uses the current image.
    c.DockerSpawner.remove = True
    c.DockerSpawner.volumes = {
        settings["home_volume"]: settings["home_path"],
        **{
            volume["source"]: {"bind": volume["target"], "mode": volume.get("mode", "rw")}
            for volume in settings["extra_volumes"]
        },
    }
    c.DockerSpawner.notebook_dir = settings["home_path"]
    c.DockerSpawner.mem_limit = settings["mem_limit"]
    if settings["cpu_limit"] > 0:
        c.DockerSpawner.cpu_limit = float(settings["cpu_limit"])
    c.DockerSpawner.extra_host_config = {
        "pids_limit": settings["pids_limit"],
        # A quarter of the CPU weight of anything else on the box: when a room's starts take every
        # core, the hub, the proxy, nginx and PostgreSQL still get theirs, and logins stay quick.
        # Only a weight: a server alone on an idle box still gets all it may (jupyterhub_cpu_limit).
        "cpu_shares": 256,
        "security_opt": ["no-new-privileges"],
        # A server's output outlives its container (removed when it stops): in the box's journal,
        # `journalctl -t pophub-server` for all, `journalctl CONTAINER_NAME=jupyter-<user>` for one.
        "log_config": {"type": "journald", "config": {"tag": "pophub-server"}},
    }
    if IPV6.exists():
        # The user network's firewall is IPv4; IPv6 link-local addresses would reach every other
        # server on the network (and the box) past it. A server has no IPv6 at all, and cannot turn it
        # back on (no CAP_NET_ADMIN, /proc/sys read-only). Not set where the box's kernel has no IPv6:
        # Docker would refuse to start the container.
        c.DockerSpawner.extra_host_config["sysctls"] = {
            "net.ipv6.conf.all.disable_ipv6": "1",
            "net.ipv6.conf.default.disable_ipv6": "1",
        }
    c.Spawner.cmd = ["jupyterhub-singleuser"]
    c.Spawner.default_url = settings["default_url"]
    c.Spawner.start_timeout = settings["start_timeout"]
    c.Spawner.http_timeout = settings["http_timeout"]
    c.JupyterHub.concurrent_spawn_limit = settings["concurrent_spawn_limit"]
    c.JupyterHub.active_server_limit = settings["active_server_limit"]

    c.DockerSpawner.environment = dict(settings["user_environment"])
    # How often a server tells the hub it is in use, and how often the hub reads the proxy's record
    # of requests: the idle culler judges servers by the last of these.
    c.DockerSpawner.environment["JUPYTERHUB_ACTIVITY_INTERVAL"] = str(settings["activity_interval"])
    c.JupyterHub.last_activity_interval = settings["activity_interval"]

    database = settings["user_database"]
    if database["name"]:
        # The event database, reached on the user network's gateway. Each user logs in with a role
        # of their own (private schema, read access to the shared datasets), with a password made
        # afresh for every start; libpq and psycopg in the container read PG* by themselves.
        c.DockerSpawner.environment.update(
            PGHOST=database["host"], PGPORT=str(database["port"]), PGDATABASE=database["name"]
        )
        c.Spawner.pre_spawn_hook = spawner.database_role_hook(database, secrets["db_provisioner_password"])


def _services(c, settings, secrets):
    """pophub-verify, pophub-organizer and the idle culler, each with the least scopes it needs."""
    # pophub-verify: the post-deploy check (playbooks/verify.yml) acts as one test user through it,
    # whatever the login method. Its scopes reach that user and nothing else.
    user = settings["verify_user"]
    c.JupyterHub.services = [{"name": "pophub-verify", "api_token": secrets["verify_token"]}]
    c.JupyterHub.load_roles = [
        {
            "name": "pophub-verify",
            "scopes": [f"admin:users!user={user}", f"servers!user={user}", f"access:servers!user={user}"],
            "services": ["pophub-verify"],
        }
    ]
    # pophub-organizer: the event-day commands (pophub_hub.eventday, root on the box) see every user
    # and server and stop servers; they start none, open none and change no user.
    if secrets["organizer_token"]:
        c.JupyterHub.services.append({"name": "pophub-organizer", "api_token": secrets["organizer_token"]})
        c.JupyterHub.load_roles.append(
            {
                "name": "pophub-organizer",
                "scopes": ["list:users", "read:users", "read:users:activity", "read:servers", "delete:servers"],
                "services": ["pophub-organizer"],
            }
        )
    # hand-back: each user downloads their own home as one archive (the link on their hub page). It
    # asks the hub who is there (OAuth, without a confirmation page) and needs no scope of its own;
    # every user may reach it.
    c.JupyterHub.services.append({
        "name": "hand-back", "url": f"http://127.0.0.1:{settings['hand_back_port']}", "oauth_no_confirm": True,
        "command": [sys.executable, "-m", "pophub_hub.handback"],
    })  # fmt: skip
    c.JupyterHub.extra_user_scopes = {"access:services!service=hand-back"}
    if settings["idle_timeout"] > 0:
        # The scopes jupyterhub-idle-culler 2.0.0 documents for culling servers (admin:users would
        # be needed only with --cull-users, which pophub does not use).
        command = [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={settings['idle_timeout']}"]
        if settings["idle_cull_every"] > 0:
            command.append(f"--cull-every={settings['idle_cull_every']}")
        c.JupyterHub.services.append({"name": "idle-culler", "command": command})
        c.JupyterHub.load_roles.append(
            {
                "name": "idle-culler",
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
                "services": ["idle-culler"],
            }
        )


def _teams(c, settings):
    """Each team is a group; its role lets members start, open and stop the server of the team's
    shared account, and nothing else of it. Members' own servers stay private as always. Nobody logs
    in as a shared account: it exists only to own a server and a home (auth.name_refusal refuses every
    name with the prefix; as blocked users, JupyterHub would take the accounts out of their group)."""
    teams, prefix = settings["teams"], settings["team_account_prefix"]
    c.JupyterHub.load_groups = {team: {"users": members} for team, members in teams.items()}
    c.JupyterHub.load_groups["pophub-team-accounts"] = {"users": [prefix + team for team in teams]}
    for team in teams:
        account = prefix + team
        c.JupyterHub.load_roles.append(
            {
                "name": f"team-{team}",
                "scopes": [f"servers!user={account}", f"access:servers!user={account}", f"read:users!user={account}"],
                "groups": [team],
            }
        )
