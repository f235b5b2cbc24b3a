"""The Zero to JupyterHub export: real inventories through the real playbook, checked as helm would.

One ansible-playbook run exports every case in tests/unit/z2jh/hosts.yml, each a host of its own
whose box is a Docker container that does not exist: a task that reached for it would show up as
unreachable, so "nothing unreachable" proves the export never touches the box. Each exported pair of
files is merged over the chart's values.yaml and validated against its values schema (helm's check),
its hub.config is loaded into the real authenticator class with unknown and deprecated option names
refused (the schema lets anything through there), and the values are looked up where they must land.

The chart's files (values.yaml and values.schema.yaml) are looked for in POPHUB_Z2JH_DIR, then in
../shared/z2jh beside the project. To get them: `helm repo add jupyterhub https://hub.jupyter.org/helm-chart/`
and `helm pull jupyterhub/jupyterhub --untar` (the chart lands in ./jupyterhub), then point POPHUB_Z2JH_DIR
at that directory. Without them, the tests that need the chart's schema or defaults are skipped with a
reason that says so; the rest (the export itself, the refusals, the authenticator classes loading
hub.config) still run."""

import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from ansible_json import failures

from pophub import z2jh as validator
from pophub_hub import check as checker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES_DIR = HERE / "z2jh"
CHART = Path(os.environ.get("POPHUB_Z2JH_DIR") or ROOT.parent / "shared" / "z2jh")
REGISTRY = "registry.example.org/summer-school"
# The ansible-playbook of the Python running the tests, so the playbook's check finds jsonschema.
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
DEFAULT_IMAGE = yaml.safe_load((ROOT / "roles/event_image/defaults/main.yml").read_text())["event_image_images"][0][
    "name"
]
# The validator as playbooks/z2jh-values.yml runs it: from this checkout's src/, not pip installed.
VALIDATOR = [sys.executable, "-m", "pophub.z2jh"]
VALIDATOR_ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


EXPORTED = ["shared-password", "native", "github", "oidc-discovery", "oidc-endpoints", "dummy", "multi-image"]
# case -> (the task that refuses it, words its message must contain)
REFUSED = {
    "pam": (
        "PAM logins have no Kubernetes equivalent",
        ["jupyterhub_authenticator is 'pam'", "no equivalent", "native"],
    ),
    "no-registry": ("The images have a registry to come from", ["pophub_z2jh_image_registry is ''"]),
    "registry-with-scheme": ("The images have a registry to come from", ["without https://"]),
    "bad-database-url": ("The event database URL is a PostgreSQL URL", ["pophub_z2jh_database_url is not"]),
    # Any preflight check: the settings spec (src/pophub/settings.yml) says how pophub_domain is written.
    "bad-domain": ("preflight | ", ["pophub_domain is 'https://hub.example.org'"]),
    "chart-refuses": ("Write the chart values", ["cull.timeout", "3600"]),
}
# Refused by the chart's schema, so only refused when the chart is there.
NEEDS_CHART = {"chart-refuses"}


def missing_chart():
    """Why the chart's files cannot be used, or None."""
    missing = [name for name in ("values.yaml", "values.schema.yaml") if not (CHART / name).is_file()]
    if missing:
        return (
            f"the Zero to JupyterHub chart's schema checks did not run: its {' and '.join(missing)} not found in "
            f"{CHART}. Get the chart with `helm pull jupyterhub/jupyterhub --untar` and point POPHUB_Z2JH_DIR at "
            "the directory it makes (or put its files in ../shared/z2jh beside the project)"
        )
    return None


@pytest.fixture(scope="session")
def chart():
    """The chart's directory; skips the test, saying why, when its files are not there."""
    if missing_chart():
        pytest.skip(missing_chart())
    return CHART


class _Discovery(BaseHTTPRequestHandler):
    """An OpenID provider's discovery document, at /realms/school/.well-known/openid-configuration."""

    def do_GET(self):
        base = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}/realms/school"
        if self.path != "/realms/school/.well-known/openid-configuration":
            self.send_error(404)
            return
        body = json.dumps(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/protocol/openid-connect/auth",
                "token_endpoint": f"{base}/protocol/openid-connect/token",
                "userinfo_endpoint": f"{base}/protocol/openid-connect/userinfo",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def idp():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run_playbook(tmp, *args):
    # The project's ansible.cfg, less its task profiler (which would print into the JSON).
    config = tmp / "ansible.cfg"
    config.write_text("[defaults]\nstdout_callback = ansible.posix.json\nfact_caching = memory\nforks = 20\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(config), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1"}
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(CASES_DIR / "hosts.yml"), str(ROOT / "playbooks/z2jh-values.yml"),
         "--vault-password-file", str(CASES_DIR / "files/vault-password"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook printed no JSON:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="module")
def export(tmp_path_factory, idp):
    """The playbook run over every case. Without the chart, its check is left out (an empty
    directory stands for the chart) and everything else runs the same."""
    tmp = tmp_path_factory.mktemp("z2jh")
    out = tmp / "out"
    out.mkdir()
    chart = strict = tmp / "no-chart"
    chart.mkdir()
    if missing_chart() is None:
        chart = CHART
        # The chart with one more rule its real schema lacks, in the test's own scratch directory.
        strict = tmp / "strict-chart"
        strict.mkdir()
        shutil.copy(chart / "values.yaml", strict / "values.yaml")
        schema = yaml.safe_load((chart / "values.schema.yaml").read_text())
        schema["properties"]["cull"]["properties"]["timeout"]["maximum"] = 60
        (strict / "values.schema.yaml").write_text(yaml.safe_dump(schema))
    extra = ["-e", f"z2jh_out_dir={out}", "-e", f"z2jh_test_chart={chart}", "-e", f"z2jh_strict_chart={strict}",
             "-e", f"z2jh_test_idp={idp}"]  # fmt: skip
    run = run_playbook(tmp, *extra)
    return {"run": run, "out": out, "tmp": tmp, "extra": extra, "idp": idp}


def files_of(export, case):
    return export["out"] / f"{case}.yaml", export["out"] / f"{case}.secrets.yaml"


def exported(export, case):
    """(values, secrets, merged) of a case. With the chart, helm's check must pass and merged is
    what helm would render with; without it, merged is the two files merged as helm's -f would."""
    failed = failures(export["run"]).get(case)
    assert failed is None, f"{case} failed at {failed[0]}: {failed[1].get('msg')} {failed[1].get('stderr', '')}"
    values_path, secrets_path = files_of(export, case)
    values = yaml.safe_load(values_path.read_text())
    secrets = yaml.safe_load(secrets_path.read_text())
    if missing_chart():
        return values, secrets, without_nulls(validator.merge_user_values(values, secrets or {}))
    assert validator.problems(CHART, values, secrets) == []
    return values, secrets, validator.merged_values(CHART, values, secrets)


def without_nulls(values):
    """The values with every null key gone: a null only deletes the chart's default, and there is none."""
    if isinstance(values, dict):
        return {key: without_nulls(value) for key, value in values.items() if value is not None}
    return values


def authenticator(merged):
    """The authenticator the chart's hub would make from hub.config and hub.extraConfig."""
    from jupyterhub import orm
    from jupyterhub.app import JupyterHub
    from traitlets.config import Config

    config = Config(merged["hub"]["config"])
    for name in sorted(merged["hub"].get("extraConfig", {})):
        exec(merged["hub"]["extraConfig"][name], {"c": config})  # noqa: S102 (as the chart's hub runs it)
    cls = entry_points(group="jupyterhub.authenticators")[config.JupyterHub.authenticator_class].load()
    assert checker.option_problems(config, checker.configurable_classes(JupyterHub, cls)) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auth = cls(config=config, _deprecated_db_session=orm.new_session_factory("sqlite:///:memory:")())
    auth.check_allow_config()
    return auth


def values_of(export, case):
    """The exported values file of a case, as written."""
    return yaml.safe_load(files_of(export, case)[0].read_text())


def unmapped(export, case):
    """The header's list of what was not carried over, as one line of text."""
    values_path, _ = files_of(export, case)
    comments = [line.lstrip("# ").strip() for line in values_path.read_text().splitlines() if line.startswith("#")]
    return " ".join(comments)


# --- The run as a whole ------------------------------------------------------------------------
class _InventoryLoader(yaml.SafeLoader):
    """Reads the test inventory, leaving its vaulted values encrypted."""


_InventoryLoader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))


def test_every_case_in_the_inventory_is_checked():
    hosts = yaml.load((CASES_DIR / "hosts.yml").read_text(), Loader=_InventoryLoader)["pophub"]["hosts"]  # noqa: S506
    assert sorted(hosts) == sorted(EXPORTED + list(REFUSED))


def test_nothing_reached_for_the_box(export):
    stats = export["run"]["stats"]
    assert sorted(stats) == sorted(EXPORTED + list(REFUSED))
    assert {host: s["unreachable"] for host, s in stats.items() if s["unreachable"]} == {}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_a_clear_sentence_and_nothing_written(export, case):
    if case in NEEDS_CHART and missing_chart():
        pytest.skip(missing_chart())
    task, result = failures(export["run"])[case]
    expected_task, words = REFUSED[case]
    assert task.startswith(expected_task), f"{case} failed at {task}: {result.get('msg')}"
    message = result.get("msg", "") + result.get("stderr", "")
    for word in words:
        assert word in message, message
    assert not any(path.exists() for path in files_of(export, case))
    print(f"{case}: {message}")


def test_a_bad_database_url_is_not_echoed(export):
    _, result = failures(export["run"])["bad-database-url"]
    assert "hunter2-secret" not in json.dumps(result)


def test_a_second_run_changes_nothing(export):
    run = run_playbook(export["tmp"], *export["extra"], "--limit", "shared-password,multi-image")
    assert {host: s["changed"] for host, s in run["stats"].items()} == {"shared-password": 0, "multi-image": 0}


# --- Every login method ------------------------------------------------------------------------
def test_shared_password(export):
    _values, _secrets, merged = exported(export, "shared-password")
    assert merged["hub"]["config"]["JupyterHub"] == {"authenticator_class": "shared-password"}
    auth = authenticator(merged)
    assert type(auth).__name__ == "SharedPasswordAuthenticator"
    # Vaulted in the inventory, plain in the secrets file (helm cannot decrypt), absent from the values.
    assert auth.user_password == "vaulted-event-password"
    assert auth.admin_password == "admin-password-of-32-characters-"
    assert auth.admin_users == {"organizer"} and auth.allow_all is True
    values_text, secrets_text = (path.read_text() for path in files_of(export, "shared-password"))
    assert "vaulted-event-password" not in values_text and "admin-password-of" not in values_text
    assert "$ANSIBLE_VAULT" not in secrets_text
    assert os.stat(files_of(export, "shared-password")[1]).st_mode & 0o077 == 0


def test_native(export):
    _values, secrets, merged = exported(export, "native")
    auth = authenticator(merged)
    assert type(auth).__name__ == "NativeAuthenticator"
    assert auth.enable_signup is True and auth.open_signup is False
    assert auth.minimum_password_length == 10 and auth.check_common_password is True
    assert auth.allow_all is True
    # The listed names and the bulk file's.
    assert auth.allowed_users == {"alice", "carol", "dave"} and auth.blocked_users == {"mallory"}
    assert "hub" not in secrets


def test_github(export):
    _values, secrets, merged = exported(export, "github")
    auth = authenticator(merged)
    assert type(auth).__name__ == "GitHubOAuthenticator"
    assert auth.client_id == "Ov23liTestClientId" and auth.client_secret == "github-client-secret-value"
    assert auth.oauth_callback_url == "https://hub.example.org:8443/hub/oauth_callback"
    assert auth.allowed_organizations == {"summer-school", "summer-school:participants"}
    assert "read:org" in auth.scope and auth.allow_all is False and auth.enable_auth_state is True
    assert auth.manage_groups is True and auth.admin_groups == {"summer-school:tutors"}
    teams = {"teams": [{"slug": "tutors", "organization": {"login": "summer-school"}}]}
    assert auth.auth_state_groups_key(teams) == ["summer-school:tutors"]
    assert auth.blocked_users == {"mallory"} and auth.admin_users == {"organizer"}
    assert "github-client-secret-value" not in files_of(export, "github")[0].read_text()
    assert secrets == {"hub": {"config": {"GitHubOAuthenticator": {"client_secret": "github-client-secret-value"}}}}


def test_oidc_with_discovery(export):
    _values, _secrets, merged = exported(export, "oidc-discovery")
    auth = authenticator(merged)
    base = f"{export['idp']}/realms/school/protocol/openid-connect"
    assert type(auth).__name__ == "GenericOAuthenticator"
    assert (auth.authorize_url, auth.token_url, auth.userdata_url) == (
        f"{base}/auth",
        f"{base}/token",
        f"{base}/userinfo",
    )
    assert auth.client_secret == "oidc-client-secret-value" and auth.login_service == "Summer School login"
    assert auth.manage_groups is True and auth.auth_state_groups_key == "oauth_user.groups"
    assert auth.allowed_groups == {"participants"} and auth.admin_groups == {"organizers"}
    assert auth.allow_all is False and auth.enable_auth_state is True


def test_oidc_with_endpoints_open_to_all(export):
    _values, _secrets, merged = exported(export, "oidc-endpoints")
    auth = authenticator(merged)
    assert auth.authorize_url == "https://idp.example.org/authorize"
    assert auth.userdata_url == "https://idp.example.org/userinfo"
    assert auth.username_claim == "email" and auth.scope == ["openid", "email"]
    assert auth.allow_all is True and auth.manage_groups is False


def test_dummy(export):
    _values, secrets, merged = exported(export, "dummy")
    auth = authenticator(merged)
    assert type(auth).__name__ == "DummyAuthenticator" and auth.allow_all is True
    assert secrets == {}


# --- What users get ------------------------------------------------------------------------------
def test_multi_image_event_gets_a_profile_per_image(export):
    _values, _secrets, merged = exported(export, "multi-image")
    singleuser = merged["singleuser"]
    assert (singleuser["image"]["name"], singleuser["image"]["tag"]) == (f"{REGISTRY}/python", "2026.07")
    assert singleuser["image"].get("pullPolicy") is None
    assert singleuser["profileList"] == [
        {"display_name": "Python 3 with JupyterLab", "slug": "python", "default": True,
         "kubespawner_override": {"image": f"{REGISTRY}/python:2026.07"}},
        {"display_name": "Geospatial (GeoPandas, PostGIS tools)", "slug": "geo",
         "kubespawner_override": {"image": f"{REGISTRY}/geo:2026.07"}},
        {"display_name": "R with the tidyverse", "slug": "r",
         "kubespawner_override": {"image": f"{REGISTRY}/r:2026.07"}},
    ]  # fmt: skip
    auth = authenticator(merged)
    assert auth.allowed_users == {"alice", "bob"} and auth.allow_all is False


def test_a_single_image_needs_no_choice(export):
    _, _, merged = exported(export, "dummy")
    assert merged["singleuser"]["image"]["name"] == f"{REGISTRY}/{DEFAULT_IMAGE}"
    assert merged["singleuser"]["image"]["tag"] == "2026.07" and merged["singleuser"]["image"].get("pullPolicy") is None
    assert not merged["singleuser"].get("profileList")


def test_a_moving_tag_is_pulled_at_every_start(export):
    _, _, merged = exported(export, "oidc-discovery")
    assert merged["singleuser"]["image"]["tag"] == "latest"
    assert merged["singleuser"]["image"]["pullPolicy"] == "Always"


def test_limits(export):
    _, _, small = exported(export, "shared-password")
    _, _, large = exported(export, "github")
    _, _, fractional = exported(export, "multi-image")
    # Never a guarantee above the limit; the chart's 1G otherwise.
    assert small["singleuser"]["memory"] == {"limit": "512M", "guarantee": "512M"}
    assert large["singleuser"]["memory"] == {"limit": "4G", "guarantee": "1G"}
    assert "cpu" not in values_of(export, "shared-password")["singleuser"]
    assert large["singleuser"]["cpu"]["limit"] == 2.0 and fractional["singleuser"]["cpu"]["limit"] == 0.5


def test_culling(export):
    _, _, off = exported(export, "shared-password")
    _, _, short = exported(export, "native")
    assert off["cull"]["enabled"] is False
    assert short["cull"]["enabled"] is True and short["cull"]["timeout"] == 1800


def test_admin_users_with_every_method(export):
    for case in EXPORTED:
        _, _, merged = exported(export, case)
        assert merged["hub"]["config"]["Authenticator"]["admin_users"] == ["organizer"], case


def test_shared_data_as_extra_volumes(export):
    _, _, merged = exported(export, "multi-image")
    storage = merged["singleuser"]["storage"]
    assert storage["extraVolumes"] == [
        {"name": "pophub-data", "persistentVolumeClaim": {"claimName": "school-data", "readOnly": True}},
        {"name": "pophub-shared", "persistentVolumeClaim": {"claimName": "school-shared"}},
    ]
    assert storage["extraVolumeMounts"] == [
        {"name": "pophub-data", "mountPath": "/srv/data", "readOnly": True},
        {"name": "pophub-shared", "mountPath": "/srv/shared"},
    ]
    assert "ln -s" in " ".join(merged["singleuser"]["lifecycleHooks"]["postStart"]["exec"]["command"])


def test_a_directory_without_a_claim_is_left_out_and_said_so(export):
    _, _, merged = exported(export, "github")
    assert [v["name"] for v in merged["singleuser"]["storage"]["extraVolumes"]] == ["pophub-shared"]
    assert [m["mountPath"] for m in merged["singleuser"]["storage"]["extraVolumeMounts"]] == ["/srv/shared"]
    assert "pophub_z2jh_data_claim is empty" in unmapped(export, "github")


def test_the_event_database_becomes_an_external_url(export):
    values, _secrets, merged = exported(export, "shared-password")
    assert merged["singleuser"]["extraEnv"] == {
        "PGHOST": "db.example.org", "PGPORT": "6432", "PGDATABASE": "event", "PGUSER": "reader",
        "PGSSLMODE": "require", "PGPASSWORD": "p@ss/word",
    }  # fmt: skip
    assert "PGPASSWORD" not in values["singleuser"]["extraEnv"]
    assert "per-user roles and private schemas" in unmapped(export, "shared-password")


def test_tls(export):
    _, _, letsencrypt = exported(export, "shared-password")
    values, secrets, provided = exported(export, "native")
    https = letsencrypt["proxy"]["https"]
    assert (https["enabled"], https["type"], https["hosts"]) == (True, "letsencrypt", ["hub.example.org"])
    assert https["letsencrypt"]["contactEmail"] == "organizer@example.org"
    assert provided["proxy"]["https"]["type"] == "manual"
    assert provided["proxy"]["https"]["manual"]["cert"] == "test-only certificate chain, not a real one"
    assert secrets["proxy"]["https"]["manual"]["key"] == "test-only key, not a real one"
    assert "key" not in values["proxy"]["https"]["manual"]


def test_what_the_export_leaves_to_the_chart_keeps_its_defaults(export, chart):
    """Once helm merges the chart in: its CPU defaults (no limit, no guarantee), its image pull
    settings, its home volumes and its ACME server."""
    _, _, small = exported(export, "shared-password")
    _, _, multi = exported(export, "multi-image")
    assert small["singleuser"]["cpu"] == {"limit": None, "guarantee": None}
    assert multi["singleuser"]["image"]["pullPolicy"] is None and multi["singleuser"]["image"]["pullSecrets"] == []
    storage = multi["singleuser"]["storage"]
    assert storage["type"] == "dynamic" and storage["homeMountPath"] == "/home/jovyan"
    assert small["proxy"]["https"]["letsencrypt"] == {
        "contactEmail": "organizer@example.org",
        "acmeServer": "https://acme-v02.api.letsencrypt.org/directory",
    }


def test_what_has_no_equivalent_is_said_plainly(export):
    said = unmapped(export, "github")
    for words in ("Start-up hooks (workspace_start_hooks: 10-welcome)", "git sync of https://github.com/example/course.git",
                  "loading into the database", "no self-signed mode", "pophub_https_port 8443",
                  "set pophub_z2jh_database_url", "SSH, fail2ban", "refusal of reserved names",
                  "set hub.config.JupyterHub.subdomain_host to https://hub.example.org"):  # fmt: skip
        assert words in said, said
    assert "self-signed" not in unmapped(export, "shared-password")
    assert "subdomain_host" not in unmapped(export, "shared-password")


# --- The login options come from the hub's own code ----------------------------------------------
# What pophub_hub.auth reads, as the jupyterhub role renders it with its defaults.
HUB_SETTINGS = {
    "authenticator": "shared_password", "admin_users": [], "allowed_users": [], "blocked_users": [],
    "native_open_signup": False, "native_minimum_password_length": 8, "pam_group": "pophub-pam",
    "oauth_client_id": "", "public_url": "", "github_url": "https://github.com", "github_allowed_organizations": [],
    "github_admin_teams": [], "oidc_authorize_url": "", "oidc_token_url": "", "oidc_userdata_url": "",
    "oidc_scopes": ["openid", "profile", "email"], "oidc_username_claim": "preferred_username",
    "oidc_groups_claim": "groups", "oidc_allowed_groups": [], "oidc_admin_groups": [], "oidc_allow_all_users": False,
    "oidc_login_service": "single sign-on", "allow_insecure_dummy_auth": False, "login_hint": "",
    "team_account_prefix": "collab-", "verify_user": "pophub-verify",
}  # fmt: skip
LOGIN_CASES = {
    "shared_password": {"admin_users": ["organizer"], "blocked_users": ["mallory"]},
    "shared_password-listed": {"authenticator": "shared_password", "allowed_users": ["alice", "bob"]},
    "native": {"native_open_signup": True, "native_minimum_password_length": 12, "allowed_users": ["alice"]},
    "github": {"oauth_client_id": "id", "github_allowed_organizations": ["school"],
               "github_admin_teams": ["school:tas"], "public_url": "https://hub.example.org/"},
    "oidc": {"oauth_client_id": "id", "oidc_authorize_url": "https://idp/a", "oidc_token_url": "https://idp/t",
             "oidc_userdata_url": "https://idp/u", "oidc_allowed_groups": ["p"], "oidc_admin_groups": ["o"]},
    "dummy": {"allow_insecure_dummy_auth": True},
}  # fmt: skip
LOGIN_SECRETS = {"shared_password": "event-pass", "admin_password": "admin-pass", "oauth_client_secret": "secret"}


@pytest.mark.parametrize("case", sorted(LOGIN_CASES))
def test_the_exported_login_is_the_hubs_own_config(case):
    """Every option the box's hub gets from pophub_hub.auth, and nothing else, is in hub.config, the
    secrets file or extraConfig; run as the chart's hub runs them, they give the same Config."""
    from traitlets.config import Config

    from pophub_hub import auth

    method = LOGIN_CASES[case].get("authenticator", case)
    settings = {**HUB_SETTINGS, "authenticator": method, **LOGIN_CASES[case]}
    box = Config()
    auth.configure(box, settings, LOGIN_SECRETS)
    exported_login = validator.login_values(settings, LOGIN_SECRETS)
    values_text = json.dumps(exported_login["config"])
    assert not any(secret in values_text for secret in LOGIN_SECRETS.values())
    chart = Config(validator.merge_user_values(exported_login["config"], exported_login["secrets"]))
    for source in exported_login["extra_config"].values():
        exec(source, {"c": chart})  # noqa: S102 (as the chart's hub runs it)
    chart.JupyterHub.pop("admin_access")
    box.Authenticator.pop("post_auth_hook")
    box_data = {cls: {key: sorted(value) if isinstance(value, set) else value for key, value in options.items()}
                for cls, options in box.items()}  # fmt: skip
    if method == "github":
        # A function on both sides: compared by what it does.
        teams = {"teams": [{"slug": "tas", "organization": {"login": "school"}}]}
        ours, theirs = (side["GitHubOAuthenticator"].pop("auth_state_groups_key") for side in (box_data, chart))
        assert theirs(teams) == ours(teams) == ["school:tas"]
    assert {cls: dict(options) for cls, options in chart.items()} == box_data
    assert any("reserved names" in sentence for sentence in exported_login["unmapped"])


def test_code_the_export_cannot_carry_is_refused(monkeypatch):
    """A new function option whose code needs its surroundings (a closure) must be named in
    UNMAPPED_HOOKS, with its sentence, before the export runs: never dropped in silence."""
    from pophub_hub import auth

    def configure(c, settings, secrets):
        limit = 3
        c.Authenticator.username_map = lambda name: name[:limit]

    monkeypatch.setattr(auth, "configure", configure)
    with pytest.raises(ValueError, match=r"c\.Authenticator\.username_map is code the export cannot carry"):
        validator.login_values(HUB_SETTINGS, LOGIN_SECRETS)


# --- The validator: helm's merge and schema check ----------------------------------------------------
def test_the_validator_refuses_an_unknown_top_level_key(chart):
    assert validator.problems(chart, {"hubb": {"config": {}}}) == [
        "(top level): Additional properties are not allowed ('hubb' was unexpected)"
    ]


def test_the_validator_refuses_a_wrong_type(chart):
    problems = validator.problems(chart, {"cull": {"timeout": "1h"}, "singleuser": {"cpu": {"limit": "2"}}})
    assert problems == [
        "cull.timeout: '1h' is not of type 'integer', 'null'",
        "singleuser.cpu.limit: '2' is not of type 'number', 'null'",
    ]


def test_the_merge_is_helms(chart):
    merged = validator.merged_values(
        chart,
        {"hub": {"config": {"JupyterHub": {"admin_access": None}}},
         "singleuser": {"profileList": [{"display_name": "first"}], "memory": {"limit": "2G"}}},
        {"singleuser": {"profileList": [{"display_name": "second"}]}},
    )  # fmt: skip
    # null deletes the chart's key; maps merge; a later file's list replaces an earlier one.
    assert merged["hub"]["config"]["JupyterHub"] == {"authenticator_class": "dummy"}
    assert merged["singleuser"]["memory"] == {"limit": "2G", "guarantee": "1G"}
    assert merged["singleuser"]["profileList"] == [{"display_name": "second"}]
    assert merged["singleuser"]["storage"]["capacity"] == "10Gi"


def test_the_validator_command_names_the_key_and_fails(chart, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("singleuser:\n  memory:\n    limit: [2G]\n")
    result = subprocess.run(
        [*VALIDATOR, "--chart", str(chart), str(bad)], env=VALIDATOR_ENV, capture_output=True, text=True
    )
    assert result.returncode == 1 and "singleuser.memory.limit" in result.stderr, result.stderr
    good = tmp_path / "good.yaml"
    good.write_text("cull:\n  timeout: 60\n")
    result = subprocess.run(
        [*VALIDATOR, "--chart", str(chart), str(good)], env=VALIDATOR_ENV, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_validator_says_when_the_chart_is_missing(tmp_path):
    (tmp_path / "v.yaml").write_text("{}\n")
    result = subprocess.run(
        [*VALIDATOR, "--chart", str(tmp_path / "nowhere"), str(tmp_path / "v.yaml")],
        env=VALIDATOR_ENV,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "helm pull jupyterhub/jupyterhub --untar" in result.stderr
