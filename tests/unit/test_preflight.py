"""Bad inventories are refused at preflight, before anything on the box changes.

All cases run in one ansible-playbook run: each case is a host of its own with the bad setting in
its host vars, reached through a Docker connection to a container that does not exist. A case that
got past preflight would try to connect and show up as unreachable, so "failed at preflight, never
unreachable" proves nothing on any box was touched. A control host with good settings must pass
preflight (and then be unreachable), so the harness itself can fail."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_json import failures

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests/unit/data"  # test certificates: hub.example.org alone, and with *.hub.example.org
GOOD = {
    "pophub_domain": "hub.example.org",
    "jupyterhub_shared_password": "event-password",
    "jupyterhub_admin_users": ["organizer"],
    "jupyterhub_admin_password": "x" * 32,
}
IMAGE = {"name": "python", "base": "docker.io/library/python:3.12-slim-bookworm"}
# Good inventories: each must pass preflight (and then find no box), so the harness can fail.
CONTROLS = {
    "control": {},
    # A /8 whose gateway differs from the network in its second octet.
    "control-wide-subnet": {"pophub_user_subnet": "10.0.0.0/8", "pophub_user_gateway": "10.1.0.1"},
    # Numbers and booleans as text, as templates and -e give them.
    "control-text-values": {
        "pophub_https_port": "8443",
        "jupyterhub_native_open_signup": "false",
        "jupyterhub_cpu_limit": "0.5",
    },
    # Role variables set directly in the inventory.
    "control-role-variable": {"host_security_fail2ban_maxretry": 10},
    # Per-user subdomains with a self-signed certificate, and with a wildcard certificate of one's own.
    "control-subdomains": {"pophub_user_subdomains": True},
    "control-subdomains-provided": {
        "pophub_user_subdomains": True,
        "nginx_tls_mode": "provided",
        "nginx_tls_certificate": str(DATA / "hub-example-org-wildcard.crt"),
        "nginx_tls_private_key": str(ROOT / "README.md"),
    },
}

# case name -> (settings over GOOD, words the error must contain)
CASES = {
    "domain-with-scheme": ({"pophub_domain": "https://hub.example.org"}, "pophub_domain"),
    "domain-with-path": ({"pophub_domain": "hub.example.org/jupyter"}, "pophub_domain"),
    "domain-empty": ({"pophub_domain": ""}, "pophub_domain"),
    "port-text": ({"pophub_https_port": "https"}, "pophub_https_port"),
    "port-too-big": ({"pophub_https_port": 70000}, "pophub_https_port"),
    "ssh-port-clash": ({"host_security_ssh_port": 443}, "host_security_ssh_port is 443, which nginx (HTTPS) uses"),
    "ssh-port-clash-with-the-hub": (
        {"host_security_ssh_port": 8081},
        "host_security_ssh_port is 8081, which the hub uses",
    ),
    "ssh-port-text": ({"host_security_ssh_port": "ssh"}, "host_security_ssh_port"),
    "tls-unknown": ({"nginx_tls_mode": "acme"}, "nginx_tls_mode"),
    "provided-without-key": (
        {"nginx_tls_mode": "provided", "nginx_tls_certificate": str(ROOT / "README.md")},
        "nginx_tls_private_key",
    ),
    "letsencrypt-without-email": ({"nginx_tls_mode": "letsencrypt"}, "nginx_letsencrypt_email"),
    "letsencrypt-for-an-ip": (
        {"nginx_tls_mode": "letsencrypt", "nginx_letsencrypt_email": "a@example.org", "pophub_domain": "203.0.113.10"},
        "pophub_domain",
    ),
    "subdomains-under-one-label": (
        {"pophub_user_subdomains": True, "pophub_domain": "localhost"},
        "pophub_user_subdomains is true, which serves each participant at a name under pophub_domain (alice.localhost)",
    ),
    "subdomains-with-letsencrypt": (
        {"pophub_user_subdomains": True, "nginx_tls_mode": "letsencrypt", "nginx_letsencrypt_email": "a@example.org"},
        "nginx_tls_mode 'letsencrypt' cannot get one",
    ),
    "subdomains-with-a-certificate-for-one-name": (
        {
            "pophub_user_subdomains": True,
            "nginx_tls_mode": "provided",
            "nginx_tls_certificate": str(DATA / "hub-example-org.crt"),
            "nginx_tls_private_key": str(ROOT / "README.md"),
        },
        "does not cover *.hub.example.org",
    ),
    "auth-unknown": ({"jupyterhub_authenticator": "ldap"}, "jupyterhub_authenticator"),
    "shared-password-short": ({"jupyterhub_shared_password": "short"}, "jupyterhub_shared_password"),
    "admin-password-short": ({"jupyterhub_admin_password": "x" * 31}, "jupyterhub_admin_password"),
    "admin-password-same": (
        {"jupyterhub_shared_password": "y" * 32, "jupyterhub_admin_password": "y" * 32},
        "jupyterhub_admin_password",
    ),
    "admins-as-text": ({"jupyterhub_admin_users": "organizer"}, "jupyterhub_admin_users"),
    "admin-with-a-team-accounts-name": ({"jupyterhub_admin_users": ["collab-ta"]}, "belong to team servers"),
    "allowed-name-of-the-hubs-own": ({"jupyterhub_allowed_users": ["pophub-verify"]}, "not starting with pophub-"),
    "git-token-as-user": ({"workspace_git_repo": "https://ghp_abc123@github.com/org/data.git"}, "workspace_git_repo"),
    "git-key-for-an-https-url": (
        {"workspace_git_repo": "https://github.com/org/data.git", "workspace_git_ssh_key": "/etc/hostname"},
        "is not an ssh address",
    ),
    "example-event-password": (
        {"jupyterhub_shared_password": "change-me-event-password"},
        "jupyterhub_shared_password is still the example inventory's placeholder",
    ),
    "allowed-name-too-long": ({"jupyterhub_allowed_users": ["x" * 65]}, "at most 64"),
    "memory-in-words": ({"jupyterhub_mem_limit": "2 gigs"}, "jupyterhub_mem_limit"),
    "cpu-in-words": ({"jupyterhub_cpu_limit": "two"}, "jupyterhub_cpu_limit"),
    "idle-timeout-in-words": ({"jupyterhub_idle_timeout": "1h"}, "jupyterhub_idle_timeout"),
    "backups-none-kept": ({"backup_keep": 0}, "backup_keep"),
    "backups-relative-dir": ({"pophub_backup_dir": "backups"}, "pophub_backup_dir"),
    "offsite-on-the-box": ({"backup_offsite_repository": "/mnt/usb/restic"}, "a restic repository off the box"),
    "offsite-sftp-without-key": (
        {"backup_offsite_repository": "sftp:backup@backup.example.org:/srv/restic"},
        "set backup_offsite_ssh_key to the private key",
    ),
    "ssh-port-clash-hand-back": ({"host_security_ssh_port": 8082}, "which the hand-back service uses"),
    "missing-base-tarball": (
        {"event_image_images": [{**IMAGE, "base_tarball": "/nonexistent/base.tar"}]},
        "event_image_images entry 1 ('python'): base_tarball",
    ),
    "no-images": ({"event_image_images": []}, "event_image_images is empty"),
    "image-without-base": (
        {"event_image_images": [{"name": "python"}]},
        "event_image_images entry 1 ('python') has no base",
    ),
    "image-name-uppercase": ({"event_image_images": [{**IMAGE, "name": "Python"}]}, "entry 1 ('Python'): name is"),
    "image-names-twice": ({"event_image_images": [IMAGE, IMAGE]}, "event_image_images lists the name 'python' twice"),
    "image-display-names-twice": (
        {"event_image_images": [{**IMAGE, "display_name": "A"}, {**IMAGE, "name": "r", "display_name": "A"}]},
        "display names must differ",
    ),
    "image-pip-packages-as-text": (
        {"event_image_images": [{**IMAGE, "pip_packages": "pandas"}]},
        "pip_packages is 'pandas', which is not a YAML list",
    ),
    "conda-environment-without-conda": (
        {"event_image_images": [{**IMAGE, "conda_environment": str(ROOT / "README.md")}]},
        "which needs conda: true",
    ),
    "hook-without-run-as": ({"workspace_start_hooks": [{"name": "x", "content": "true"}]}, "workspace_start_hooks"),
    "hook-with-content-and-src": (
        {"workspace_start_hooks": [{"name": "x", "run_as": "root", "content": "true", "src": str(ROOT / "README.md")}]},
        "workspace_start_hooks",
    ),
    "hook-bad-name": (
        {"workspace_start_hooks": [{"name": "../x", "run_as": "user", "content": "true"}]},
        "workspace_start_hooks",
    ),
    "git-load-without-repo": ({"workspace_git_load_data": True}, "workspace_git_load_data needs a repository"),
    "git-interval-in-words": (
        {"workspace_git_repo": "https://example.org/r.git", "workspace_git_sync_interval": "hourly"},
        "workspace_git_sync_interval is 'hourly': write a span like 15min",
    ),
    "teams-as-list": ({"jupyterhub_teams": ["team-a"]}, "jupyterhub_teams is"),
    "team-members-as-text": (
        {"jupyterhub_teams": {"team-a": "ann"}},
        "jupyterhub_teams: team-a is 'ann', which is not a YAML list",
    ),
    "team-name-with-space": ({"jupyterhub_teams": {"team a": ["ann"]}}, "jupyterhub_teams has the name 'team a'"),
    "teams-with-github": (
        {
            "jupyterhub_teams": {"team-a": ["ann"]},
            "jupyterhub_authenticator": "github",
            "jupyterhub_oauth_client_id": "id",
            "jupyterhub_oauth_client_secret": "secret",
            "jupyterhub_github_allowed_organizations": ["org"],
        },
        "the hub takes group membership from the provider",
    ),
    "hub-python-unknown": ({"pophub_hub_python": "pyenv"}, "pophub_hub_python"),
    "data-dir-relative": ({"pophub_data_dir": "data"}, "pophub_data_dir"),
    "missing-ca-file": ({"pophub_extra_ca_certificates": ["/nonexistent/ca.crt"]}, "pophub_extra_ca_certificates"),
    "blocked-admin": ({"jupyterhub_blocked_users": ["organizer"]}, "jupyterhub_blocked_users"),
    "missing-users-file": ({"jupyterhub_users_file": "/nonexistent/users.txt"}, "jupyterhub_users_file"),
    "native-without-admins": (
        {"jupyterhub_authenticator": "native", "jupyterhub_admin_users": []},
        "jupyterhub_admin_users",
    ),
    "native-short-minimum": (
        {"jupyterhub_authenticator": "native", "jupyterhub_native_minimum_password_length": 4},
        "jupyterhub_native_minimum_password_length",
    ),
    "pam-without-users": ({"jupyterhub_authenticator": "pam"}, "jupyterhub_pam_users"),
    "pam-plain-password": (
        {"jupyterhub_authenticator": "pam", "jupyterhub_pam_users": [{"name": "alice", "password_hash": "secret123"}]},
        "jupyterhub_pam_users",
    ),
    "pam-bad-name": (
        {
            "jupyterhub_authenticator": "pam",
            "jupyterhub_pam_users": [{"name": "Alice Smith", "password_hash": "$6$salt$hash"}],
        },
        "jupyterhub_pam_users",
    ),
    "github-without-secret": (
        {
            "jupyterhub_authenticator": "github",
            "jupyterhub_oauth_client_id": "id",
            "jupyterhub_github_allowed_organizations": ["org"],
        },
        "jupyterhub_oauth_client_secret",
    ),
    "github-open-to-everyone": (
        {
            "jupyterhub_authenticator": "github",
            "jupyterhub_oauth_client_id": "id",
            "jupyterhub_oauth_client_secret": "s",
        },
        "jupyterhub_github_allowed_organizations",
    ),
    "github-malformed-team": (
        {
            "jupyterhub_authenticator": "github",
            "jupyterhub_oauth_client_id": "id",
            "jupyterhub_oauth_client_secret": "s",
            "jupyterhub_github_allowed_organizations": ["org:team:extra"],
        },
        "jupyterhub_github_allowed_organizations",
    ),
    "github-admin-team-without-org": (
        {
            "jupyterhub_authenticator": "github",
            "jupyterhub_oauth_client_id": "id",
            "jupyterhub_oauth_client_secret": "s",
            "jupyterhub_github_allowed_organizations": ["org"],
            "jupyterhub_github_admin_teams": ["tas"],
        },
        "jupyterhub_github_admin_teams",
    ),
    "github-url-with-path": (
        {
            "jupyterhub_authenticator": "github",
            "jupyterhub_oauth_client_id": "id",
            "jupyterhub_oauth_client_secret": "s",
            "jupyterhub_github_allowed_organizations": ["org"],
            "jupyterhub_github_url": "https://github.example.org/",
        },
        "jupyterhub_github_url",
    ),
    "oidc-without-issuer": (
        {
            "jupyterhub_authenticator": "oidc",
            "jupyterhub_oauth_client_id": "id",
            "jupyterhub_oauth_client_secret": "s",
            "jupyterhub_oidc_allowed_groups": ["staff"],
        },
        "jupyterhub_oidc_issuer",
    ),
    "oidc-without-client-id": (
        {
            "jupyterhub_authenticator": "oidc",
            "jupyterhub_oidc_issuer": "https://idp.example.org",
            "jupyterhub_oauth_client_secret": "s",
            "jupyterhub_oidc_allowed_groups": ["staff"],
        },
        "jupyterhub_oauth_client_id",
    ),
    "oidc-open-to-everyone": (
        {
            "jupyterhub_authenticator": "oidc",
            "jupyterhub_oidc_issuer": "https://idp.example.org",
            "jupyterhub_oauth_client_id": "id",
            "jupyterhub_oauth_client_secret": "s",
        },
        "jupyterhub_oidc_allowed_groups",
    ),
    "dummy-without-the-flag": ({"jupyterhub_authenticator": "dummy"}, "jupyterhub_allow_insecure_dummy_auth"),
    "subnet-without-mask": ({"pophub_user_subnet": "172.28.0.0"}, "pophub_user_subnet"),
    "gateway-outside-subnet": ({"pophub_user_gateway": "10.0.0.1"}, "pophub_user_gateway"),
    # Mistakes a new organizer makes that the spec catches: names, keys, duplicates, shapes.
    # An inventory written for the names before roles read their own settings.
    "setting-under-its-former-name": ({"pophub_" + "auth": "native"}, "is now called jupyterhub_authenticator"),
    "setting-misspelled": ({"jupyterhub_shared_pasword": "event-password"}, "did you mean jupyterhub_shared_password?"),
    "shared-setting-misspelled": ({"pophub_domian": "hub.example.org"}, "did you mean pophub_domain?"),
    "role-variable-misspelled": (
        {"host_security_fail2ban_maxretrys": 3},
        "did you mean host_security_fail2ban_maxretry?",
    ),
    "role-variable-wrong-type": (
        {"host_security_fail2ban_maxretry": "ten"},
        "host_security_fail2ban_maxretry is 'ten'",
    ),
    "image-unknown-key": (
        {"event_image_images": [{**IMAGE, "pip_pakages": ["pandas"]}]},
        "has the key 'pip_pakages' (did you mean pip_packages?)",
    ),
    "image-empty-base": ({"event_image_images": [{**IMAGE, "base": ""}]}, "entry 1 ('python'): base is empty"),
    "image-spaced-base": ({"event_image_images": [{**IMAGE, "base": "python 3.12"}]}, "entry 1 ('python'): base is"),
    "image-as-text": (
        {"event_image_images": ["python"]},
        "event_image_images entry 1 is 'python', which is not a YAML mapping",
    ),
    "hooks-twice": (
        {"workspace_start_hooks": [{"name": "x", "run_as": "user", "content": "true"}] * 2},
        "workspace_start_hooks lists the name 'x' twice",
    ),
    "pam-users-twice": (
        {
            "jupyterhub_authenticator": "pam",
            "jupyterhub_pam_users": [{"name": "alice", "password_hash": "$6$salt$hash"}] * 2,
        },
        "jupyterhub_pam_users lists the name 'alice' twice",
    ),
    "admins-twice": (
        {"jupyterhub_admin_users": ["organizer", "organizer"]},
        "jupyterhub_admin_users lists 'organizer' twice",
    ),
    "team-member-as-mapping": (
        {"jupyterhub_teams": {"team-a": [{"name": "ann"}]}},
        "jupyterhub_teams: team-a entry 1 ('ann') is '{name: ann}', which is not text",
    ),
    "admin-name-with-space": (
        {"jupyterhub_admin_users": ["the organizer"]},
        "jupyterhub_admin_users entry 1 is 'the organizer'",
    ),
    "oidc-plain-http-issuer": (
        {
            "jupyterhub_authenticator": "oidc",
            "jupyterhub_oidc_issuer": "http://idp.example.org",
            "jupyterhub_oauth_client_id": "id",
            "jupyterhub_oauth_client_secret": "s",
            "jupyterhub_oidc_allowed_groups": ["staff"],
        },
        "jupyterhub_oidc_issuer is 'http://idp.example.org': write an https:// URL",
    ),
    "git-repo-option": ({"workspace_git_repo": "--upload-pack=touch /tmp/x"}, "not starting with -"),
    "git-repo-with-token": (
        {"workspace_git_repo": "https://ann:ghp_secret@github.com/org/data.git"},
        "with no password or token in it",
    ),
    "backup-calendar-in-words": (
        {"backup_on_calendar": "every night"},
        "backup_on_calendar is 'every night'",
    ),
    "password-null": ({"jupyterhub_shared_password": None}, "jupyterhub_shared_password is empty (null)"),
    "password-as-number": ({"jupyterhub_shared_password": 12345678}, "(put it in quotes)"),
    "gateway-outside-a-small-subnet": (
        {"pophub_user_gateway": "172.28.9.1"},
        "not an address inside pophub_user_subnet",
    ),
    "cpu-negative": ({"jupyterhub_cpu_limit": -1}, "jupyterhub_cpu_limit is -1"),
    "extra-name-without-kind": ({"nginx_selfsigned_extra_names": ["203.0.113.10"]}, "write IP:<address> or DNS:<name>"),
    "fail2ban-ignore-a-word": (
        {"host_security_fail2ban_ignoreip": ["venue"]},
        "host_security_fail2ban_ignoreip entry 1 is 'venue'",
    ),
    "letsencrypt-email-without-domain": (
        {"nginx_tls_mode": "letsencrypt", "nginx_letsencrypt_email": "organizer"},
        "nginx_letsencrypt_email is 'organizer'",
    ),
    "users-file-with-a-bad-line": (
        {"jupyterhub_users_file": str(ROOT / "tests/unit/data/users-with-a-bad-line.txt")},
        "users-with-a-bad-line.txt) line 4 is 'Clara Smith'",
    ),
    "setting-that-fails-to-render": (
        {"pophub_data_dir": "{{ no_such_variable }}/data"},
        "pophub_data_dir could not be worked out",
    ),
}


@pytest.fixture(scope="module")
def preflight_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preflight")
    hosts = {name: {**GOOD, **settings} for name, settings in CONTROLS.items()}
    for name, (settings, _) in CASES.items():
        hosts[name] = {**GOOD, **settings}
    for vars_ in hosts.values():
        vars_.update(ansible_connection="community.docker.docker", ansible_host="pophub-no-such-box")
    inventory = tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"pophub": {"hosts": hosts}}))
    # The project's ansible.cfg, less its task profiler (which would print into the JSON).
    config = tmp / "ansible.cfg"
    config.write_text(
        f"[defaults]\nroles_path = {ROOT / 'roles'}\nstdout_callback = ansible.posix.json\n"
        "fact_caching = memory\ninterpreter_python = auto_silent\n"
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(config)}
    result = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks/site.yml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return json.loads(result.stdout)


@pytest.mark.parametrize("control", sorted(CONTROLS))
def test_a_good_inventory_passes_preflight(preflight_run, control):
    task, result = failures(preflight_run)[control]
    assert result.get("unreachable"), f"{control} failed at {task}: {result.get('msg')}"
    assert preflight_run["stats"][control]["failures"] == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_at_preflight(preflight_run, case):
    task, result = failures(preflight_run)[case]
    assert task.startswith("preflight | "), f"{case} got past preflight, to {task}"
    assert not result.get("unreachable"), f"{case} reached for the box"
    message = result.get("msg", "")
    assert CASES[case][1] in message, message
    assert preflight_run["stats"][case]["unreachable"] == 0
    print(f"{case}: {message}")
