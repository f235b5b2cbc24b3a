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
GOOD = {
    "pophub_domain": "hub.example.org",
    "pophub_shared_password": "event-password",
    "pophub_admin_users": ["organizer"],
    "pophub_admin_password": "x" * 32,
}
IMAGE = {"name": "python", "base": "docker.io/library/python:3.12-slim-bookworm"}

# case name -> (settings over GOOD, words the error must contain)
CASES = {
    "domain-with-scheme": ({"pophub_domain": "https://hub.example.org"}, "pophub_domain"),
    "domain-with-path": ({"pophub_domain": "hub.example.org/jupyter"}, "pophub_domain"),
    "domain-empty": ({"pophub_domain": ""}, "pophub_domain"),
    "port-text": ({"pophub_https_port": "https"}, "pophub_https_port"),
    "port-too-big": ({"pophub_https_port": 70000}, "pophub_https_port"),
    "ssh-port-clash": ({"pophub_ssh_port": 443}, "pophub_ssh_port"),
    "ssh-port-text": ({"pophub_ssh_port": "ssh"}, "pophub_ssh_port"),
    "tls-unknown": ({"pophub_tls": "acme"}, "pophub_tls"),
    "provided-without-key": (
        {"pophub_tls": "provided", "pophub_tls_certificate": str(ROOT / "README.md")},
        "pophub_tls_private_key",
    ),
    "letsencrypt-without-email": ({"pophub_tls": "letsencrypt"}, "pophub_letsencrypt_email"),
    "letsencrypt-for-an-ip": (
        {"pophub_tls": "letsencrypt", "pophub_letsencrypt_email": "a@example.org", "pophub_domain": "203.0.113.10"},
        "pophub_domain",
    ),
    "auth-unknown": ({"pophub_auth": "ldap"}, "pophub_auth"),
    "shared-password-short": ({"pophub_shared_password": "short"}, "pophub_shared_password"),
    "admin-password-short": ({"pophub_admin_password": "x" * 31}, "pophub_admin_password"),
    "admin-password-same": (
        {"pophub_shared_password": "y" * 32, "pophub_admin_password": "y" * 32},
        "pophub_admin_password",
    ),
    "admins-as-text": ({"pophub_admin_users": "organizer"}, "pophub_admin_users"),
    "memory-in-words": ({"pophub_user_mem_limit": "2 gigs"}, "pophub_user_mem_limit"),
    "cpu-in-words": ({"pophub_user_cpu_limit": "two"}, "pophub_user_cpu_limit"),
    "idle-timeout-in-words": ({"pophub_idle_timeout": "1h"}, "pophub_idle_timeout"),
    "backups-none-kept": ({"pophub_backup_keep": 0}, "pophub_backup_keep"),
    "backups-relative-dir": ({"pophub_backup_dir": "backups"}, "pophub_backup_dir"),
    "missing-base-tarball": (
        {"pophub_images": [{**IMAGE, "base_tarball": "/nonexistent/base.tar"}]},
        "pophub_images entry 'python'",
    ),
    "no-images": ({"pophub_images": []}, "pophub_images must list at least one image"),
    "image-without-base": ({"pophub_images": [{"name": "python"}]}, "pophub_images must list"),
    "image-name-uppercase": ({"pophub_images": [{**IMAGE, "name": "Python"}]}, "pophub_images must list"),
    "image-names-twice": ({"pophub_images": [IMAGE, IMAGE]}, "pophub_images must list"),
    "image-display-names-twice": (
        {"pophub_images": [{**IMAGE, "display_name": "A"}, {**IMAGE, "name": "r", "display_name": "A"}]},
        "display names must differ",
    ),
    "image-pip-packages-as-text": (
        {"pophub_images": [{**IMAGE, "pip_packages": "pandas"}]},
        "pip_packages and apt_packages must be lists",
    ),
    "conda-environment-without-conda": (
        {"pophub_images": [{**IMAGE, "conda_environment": str(ROOT / "README.md")}]},
        "conda_environment needs conda: true",
    ),
    "hook-without-run-as": ({"pophub_start_hooks": [{"name": "x", "content": "true"}]}, "pophub_start_hooks"),
    "hook-with-content-and-src": (
        {"pophub_start_hooks": [{"name": "x", "run_as": "root", "content": "true", "src": str(ROOT / "README.md")}]},
        "pophub_start_hooks",
    ),
    "hook-bad-name": ({"pophub_start_hooks": [{"name": "../x", "run_as": "user", "content": "true"}]}, "pophub_start_hooks"),
    "git-load-without-repo": ({"pophub_git_load_data": True}, "pophub_git_load_data needs a repository"),
    "git-interval-in-words": (
        {"pophub_git_repo": "https://example.org/r.git", "pophub_git_sync_interval": "hourly"},
        "the interval a span like 15min",
    ),
    "teams-as-list": ({"pophub_teams": ["team-a"]}, "pophub_teams is"),
    "team-members-as-text": ({"pophub_teams": {"team-a": "ann"}}, "pophub_teams is"),
    "team-name-with-space": ({"pophub_teams": {"team a": ["ann"]}}, "pophub_teams is"),
    "teams-with-github": (
        {"pophub_teams": {"team-a": ["ann"]}, "pophub_auth": "github", "pophub_github_client_id": "id",
         "pophub_github_client_secret": "secret", "pophub_github_allowed_organizations": ["org"]},
        "the hub takes group membership from the provider",
    ),
    "hub-python-unknown": ({"pophub_hub_python": "pyenv"}, "pophub_hub_python"),
    "data-dir-relative": ({"pophub_data_dir": "data"}, "pophub_data_dir"),
    "missing-ca-file": ({"pophub_extra_ca_certificates": ["/nonexistent/ca.crt"]}, "pophub_extra_ca_certificates"),
    "blocked-admin": ({"pophub_blocked_users": ["organizer"]}, "pophub_blocked_users"),
    "missing-users-file": ({"pophub_users_file": "/nonexistent/users.txt"}, "pophub_users_file"),
    "native-without-admins": ({"pophub_auth": "native", "pophub_admin_users": []}, "pophub_admin_users"),
    "native-short-minimum": (
        {"pophub_auth": "native", "pophub_native_minimum_password_length": 4},
        "pophub_native_minimum_password_length",
    ),
    "pam-without-users": ({"pophub_auth": "pam"}, "pophub_pam_users"),
    "pam-plain-password": (
        {"pophub_auth": "pam", "pophub_pam_users": [{"name": "alice", "password_hash": "secret123"}]},
        "pophub_pam_users",
    ),
    "pam-bad-name": (
        {"pophub_auth": "pam", "pophub_pam_users": [{"name": "Alice Smith", "password_hash": "$6$salt$hash"}]},
        "pophub_pam_users",
    ),
    "github-without-secret": (
        {"pophub_auth": "github", "pophub_github_client_id": "id", "pophub_github_allowed_organizations": ["org"]},
        "pophub_github_client_secret",
    ),
    "github-open-to-everyone": (
        {"pophub_auth": "github", "pophub_github_client_id": "id", "pophub_github_client_secret": "s"},
        "pophub_github_allowed_organizations",
    ),
    "github-malformed-team": (
        {
            "pophub_auth": "github",
            "pophub_github_client_id": "id",
            "pophub_github_client_secret": "s",
            "pophub_github_allowed_organizations": ["org:team:extra"],
        },
        "pophub_github_allowed_organizations",
    ),
    "github-admin-team-without-org": (
        {
            "pophub_auth": "github",
            "pophub_github_client_id": "id",
            "pophub_github_client_secret": "s",
            "pophub_github_allowed_organizations": ["org"],
            "pophub_github_admin_teams": ["tas"],
        },
        "pophub_github_admin_teams",
    ),
    "github-url-with-path": (
        {
            "pophub_auth": "github",
            "pophub_github_client_id": "id",
            "pophub_github_client_secret": "s",
            "pophub_github_allowed_organizations": ["org"],
            "pophub_github_url": "https://github.example.org/",
        },
        "pophub_github_url",
    ),
    "oidc-without-issuer": (
        {"pophub_auth": "oidc", "pophub_oidc_client_id": "id", "pophub_oidc_client_secret": "s",
         "pophub_oidc_allowed_groups": ["staff"]},
        "pophub_oidc_issuer",
    ),
    "oidc-without-client-id": (
        {"pophub_auth": "oidc", "pophub_oidc_issuer": "https://idp.example.org", "pophub_oidc_client_secret": "s",
         "pophub_oidc_allowed_groups": ["staff"]},
        "pophub_oidc_client_id",
    ),
    "oidc-open-to-everyone": (
        {"pophub_auth": "oidc", "pophub_oidc_issuer": "https://idp.example.org", "pophub_oidc_client_id": "id",
         "pophub_oidc_client_secret": "s"},
        "pophub_oidc_allowed_groups",
    ),
    "dummy-without-the-flag": ({"pophub_auth": "dummy"}, "pophub_allow_insecure_dummy_auth"),
    "subnet-without-mask": ({"pophub_user_subnet": "172.28.0.0"}, "pophub_user_subnet"),
    "gateway-outside-subnet": ({"pophub_user_gateway": "10.0.0.1"}, "pophub_user_gateway"),
}


@pytest.fixture(scope="module")
def preflight_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preflight")
    hosts = {"control": {**GOOD}}
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


def test_the_control_host_passes_preflight(preflight_run):
    task, result = failures(preflight_run)["control"]
    assert result.get("unreachable"), f"control failed at {task}: {result.get('msg')}"
    assert preflight_run["stats"]["control"]["failures"] == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_at_preflight(preflight_run, case):
    task, result = failures(preflight_run)[case]
    assert task.startswith("preflight | "), f"{case} got past preflight, to {task}"
    assert not result.get("unreachable"), f"{case} reached for the box"
    message = result.get("msg", "")
    assert CASES[case][1] in message, message
    assert preflight_run["stats"][case]["unreachable"] == 0
    print(f"{case}: {message}")
