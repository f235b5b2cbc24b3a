"""The event settings: the spec of every pophub_* setting, and the check of an inventory against it.

The spec (settings.yml beside this file) uses the keys of a role's meta/argument_specs.yml plus a
few of its own (see the head of that file). `problems()` checks the values an inventory gives,
together with the role variables it sets directly against those roles' argument specs, and
returns one sentence per mistake: the setting, the entry, what is wrong and what to write. It
never repeats a secret. Nothing here imports Ansible, so it is tested with plain pytest.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import yaml

SPEC_FILE = Path(__file__).with_name("settings.yml")
PREFIX = "pophub_"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")

_CALENDAR_WORDS = {
    "minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly", "semiannually",
}  # fmt: skip
_DAY = r"(mon|tue|wed|thu|fri|sat|sun)[a-z]*"
_CALENDAR = re.compile(
    rf"^({_DAY}([.,]{{1,2}}{_DAY})*\s+)?"  # weekdays: Mon, Mon..Fri, Sat,Sun
    r"([0-9*][0-9*,./~]*-[0-9*][0-9*,./~]*-[0-9*][0-9*,./~]*\s+)?"  # date: *-*-*, 2026-12-01
    r"[0-9*][0-9*,./]*:[0-9*][0-9*,./]*(:[0-9*][0-9*,./]*)?"  # time: 03:00, 03:00:00, *:0/15
    r"(\s+[A-Za-z_/+-]+)?$",  # a time zone
    re.IGNORECASE,
)


def _regex(pattern, flags=0):
    compiled = re.compile(pattern, flags)
    return lambda value: compiled.fullmatch(value) is not None


def _url(value, base_only=False):
    """http(s) URL; plain http only to this machine itself, where nothing in between can read it."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    if parts.scheme not in ("https", "http") or not parts.hostname or " " in value:
        return False
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return False
    return not base_only or parts.path in ("",)


def _git_repository(value):
    if value.startswith("-") or any(c.isspace() for c in value):
        return False
    if re.fullmatch(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^:]\S*", value):  # git@host:org/repo.git
        return True
    if value.startswith("/"):
        return True
    parts = urlsplit(value)
    # A password or token in the URL would be readable on the box: refuse it (a token can stand alone
    # as the user, https://<token>@github.com/...). ssh's user is a login name, not a secret.
    userinfo_ok = parts.password is None and (parts.scheme == "ssh" or parts.username is None)
    return parts.scheme in ("https", "http", "ssh", "git", "file") and userinfo_ok


def _ip_or_network(value):
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _ipv4_network(value):
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return False
    return "/" in value and 8 <= network.prefixlen <= 28


def _ipv4_address(value):
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


# format -> (test, what it should look like)
FORMATS = {
    "hostname": (
        _regex(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?"),
        "the bare name users will type, e.g. hub.example.org (no https://, no port, no path)",
    ),
    "email": (_regex(r"[^@\s]+@[^@\s]+\.[^@\s]+"), "an e-mail address, e.g. organizer@example.org"),
    "file": (os.path.isfile, "the path of a file on this machine (the controller)"),
    "subject_alt_name": (_regex(r"(IP|DNS):\S+"), "IP:<address> or DNS:<name>, e.g. IP:203.0.113.10"),
    "username": (
        # The hub refuses the same names at login (pophub_hub.auth.name_refusal).
        _regex(r"(?!pophub-)[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}"),
        "a username: letters, digits and . _ @ + -, no spaces, starting with a letter or digit, at most 64 "
        "characters, not starting with pophub- (kept for the hub itself)",
    ),
    "system_user": (_regex(r"[a-z_][a-z0-9_-]{0,31}"), "a system account name: lowercase letters, digits, - and _"),
    "crypt_hash": (
        _regex(r"\$(6|5|y)\$\S+"),
        "a crypt hash such as the output of `openssl passwd -6`, never the password itself",
    ),
    "base_url": (
        lambda v: _url(v, base_only=True),
        "an https:// address with no path and no trailing slash, e.g. https://github.com",
    ),
    "url": (_url, "an https:// URL (plain http:// only to localhost)"),
    "github_org_or_team": (
        _regex(r"[A-Za-z0-9][A-Za-z0-9-]*(:[A-Za-z0-9][A-Za-z0-9_.-]*)?"),
        "an organization (my-org) or a team (my-org:team-slug, the team's name as in its URL)",
    ),
    "github_team": (
        _regex(r"[A-Za-z0-9][A-Za-z0-9-]*:[A-Za-z0-9][A-Za-z0-9_.-]*"),
        "a team as my-org:team-slug (the team's name as in its URL)",
    ),
    "no_spaces": (_regex(r"\S+"), "one word, without spaces"),
    "apt_package": (_regex(r"[a-z0-9][a-z0-9.+-]*(=\S+)?"), "a Debian package name, e.g. gdal-bin"),
    "image_name": (_regex(r"[a-z0-9][a-z0-9-]{0,39}"), "a short id of lowercase letters, digits and -"),
    "image_reference": (
        _regex(r"[a-z0-9][A-Za-z0-9._/:@-]*"),
        "an image reference without spaces, e.g. docker.io/library/python:3.12-slim-bookworm",
    ),
    "team_name": (_regex(r"[a-z0-9][a-z0-9-]{0,30}"), "lowercase letters, digits and -, at most 31"),
    "absolute_path": (_regex(r"/\S*"), "an absolute path on the box without spaces, e.g. /srv/pophub/data"),
    "hook_name": (_regex(r"[A-Za-z0-9_-]+"), "letters, digits, - and _, e.g. 10-notebooks"),
    "git_repository": (
        _git_repository,
        "a repository URL (https://, ssh://, git@host:path) or a path on the box, with no password or token "
        "in it (for a private repository, an ssh address and workspace_git_ssh_key) and not starting with -",
    ),
    "git_branch": (
        lambda v: re.fullmatch(r"[A-Za-z0-9._/][A-Za-z0-9._/-]*", v) is not None and ".." not in v,
        "a branch name such as main",
    ),
    "restic_repository": (
        _regex(r"(sftp|s3|rest|b2|azure|gs|swift|rclone):\S+"),
        "a restic repository off the box, e.g. sftp:backup@backup.example.org:/srv/restic/myevent",
    ),
    "timespan": (_regex(r"[0-9]+ ?(s|sec|min|m|h|d)?"), "a span like 15min, 1h or 30s"),
    "sql_name": (_regex(r"[a-z_][a-z0-9_]{0,62}"), "a PostgreSQL name: lowercase letters, digits and _"),
    "memory": (_regex(r"[0-9]+(\.[0-9]+)?[KMG]"), "a size like 2G or 512M"),
    "systemd_calendar": (
        lambda v: v.lower() in _CALENDAR_WORDS or _CALENDAR.fullmatch(v.strip()) is not None,
        "a systemd calendar time like '*-*-* 03:00:00' or daily (check one with `systemd-analyze calendar`)",
    ),
    "ip_or_network": (_ip_or_network, "an IP address or network, e.g. 203.0.113.7 or 198.51.100.0/24"),
    "ipv4_network": (_ipv4_network, "an IPv4 network in CIDR form, /8 to /28, e.g. 172.28.0.0/24"),
    "ipv4_address": (_ipv4_address, "an IPv4 address, e.g. 172.28.0.1"),
}

_TYPE_WORDS = {
    "str": "text",
    "path": "a path",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "list": "a YAML list",
    "dict": "a YAML mapping",
}


def plain(value):
    """`value` as plain Python data (Ansible hands over subclasses of str, dict and list)."""
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def load_spec(path=SPEC_FILE):
    return yaml.safe_load(Path(path).read_text())


def load_role_specs(roles_dir):
    """{role name: the options of its main entry point}, from every role's meta/argument_specs.yml."""
    specs = {}
    for spec_file in sorted(Path(roles_dir).glob("*/meta/argument_specs.yml")):
        entry = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]
        specs[spec_file.parents[1].name] = entry.get("options", {})
    return specs


def defaults(spec):
    return {name: entry["default"] for name, entry in spec.items()}


def _show(value, spec):
    if spec.get("secret"):
        return "set to a secret" if value not in ("", None) else "empty"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"'{text}'" if len(text) <= 120 else f"'{text[:117]}...'"


def _example(name, spec):
    if "example" not in spec:
        return ""
    shown = yaml.safe_dump({name: spec["example"]}, default_flow_style=True, width=10_000).strip()
    return f" For example: {shown[1:-1]}."


def _what(spec):
    what = spec.get("description", "").rstrip(".")
    if what[1:2].islower():  # "The port" -> "the port", but "CPU cores" stays
        what = what[0].lower() + what[1:]
    return f" ({what})" if what else ""


def _convert(value, kind):
    """The value as the type the spec names, the way Ansible reads inventories; ValueError if it
    is not one. Numbers may arrive as text (a template's result, an -e value)."""
    if kind in ("str", "path"):
        if isinstance(value, str):
            return value
        raise ValueError
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError
    if kind == "int":
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
            return int(value)
        raise ValueError
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+(\.[0-9]+)?\s*", value):
            return float(value)
        raise ValueError
    if kind == "list":
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ValueError
    if kind == "dict":
        if isinstance(value, Mapping):
            return dict(value)
        raise ValueError
    return value  # raw, or a type this checker does not know: left to the role


def _near(name, known):
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


# How the example inventory's passwords start; a secret that still does is refused.
PLACEHOLDER = "change-me"


def check_value(label, value, spec, name=None):
    """Problems of one value against its spec, each a sentence naming `label`."""
    name = name or label
    kind = spec.get("type", "raw")
    example = _example(name, spec)
    if value is None:
        return [
            f"{label} is empty (null){_what(spec)}: give it a value, or delete the line to take the default.{example}"
        ]
    try:
        value = _convert(value, kind)
    except ValueError:
        quote = " (put it in quotes)" if kind in ("str", "path") and isinstance(value, (int, float)) else ""
        return [
            f"{label} is {_show(value, spec)}, which is not {_TYPE_WORDS.get(kind, kind)}{quote}{_what(spec)}.{example}"
        ]
    problems = []
    if spec.get("secret") and isinstance(value, str) and value.startswith(PLACEHOLDER):
        # The example inventory's passwords are published: a box deployed with them is open to anyone.
        return [
            f"{label} is still the example inventory's placeholder ({PLACEHOLDER}...), which anyone can read: set "
            "your event's own (python3 -c 'import secrets; print(secrets.token_urlsafe(24))' makes one)."
        ]
    if "choices" in spec and value not in spec["choices"]:
        choices = ", ".join(str(c) for c in spec["choices"])
        near = _near(str(value), [str(c) for c in spec["choices"]])
        return [f"{label} is {_show(value, spec)}{near}: set it to one of {choices}."]
    if kind in ("int", "float"):
        if "min" in spec and value < spec["min"]:
            problems.append(f"{label} is {value}{_what(spec)}: it must be at least {spec['min']}.{example}")
        if "max" in spec and value > spec["max"]:
            problems.append(f"{label} is {value}{_what(spec)}: it must be at most {spec['max']}.{example}")
    if kind in ("str", "path"):
        if len(value) < spec.get("min_length", 0):
            problems.append(f"{label} is empty{_what(spec)}: it needs a value.{example}")
        elif value and "format" in spec:
            test, looks_like = FORMATS[spec["format"]]
            if not test(value):
                problems.append(f"{label} is {_show(value, spec)}: write {looks_like}.{example}")
    if kind == "list":
        problems += _check_list(label, value, spec, name, example)
    if kind == "dict":
        problems += _check_dict(label, value, spec, example)
    return problems


def _check_list(label, items, spec, name, fix):
    problems = []
    if len(items) < spec.get("min_length", 0):
        problems.append(f"{label} is empty{_what(spec)}: list at least {spec['min_length']}.{fix}")
    element = {"type": spec.get("elements", "raw")}
    if element["type"] == "dict":
        element["options"] = spec.get("options", {})
        element["one_of"] = spec.get("one_of")
    for key in ("format", "choices", "secret"):
        if key in spec:
            element[key] = spec[key]
    seen = {}
    for index, item in enumerate(items, 1):
        entry_label = _entry_label(label, index, item)
        problems += check_value(entry_label, item, element, name=name)
        unique = spec.get("unique")
        key = item.get(unique) if isinstance(unique, str) and isinstance(item, Mapping) else item
        if unique and isinstance(key, (str, int, float)):
            if key in seen:
                what = f"the {unique} '{key}'" if isinstance(unique, str) else f"'{key}'"
                problems.append(
                    f"{label} lists {what} twice (entries {seen[key]} and {index}): each must differ; remove "
                    "or rename one."
                )
            seen.setdefault(key, index)
    return problems


def _entry_label(label, index, item):
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        return f"{label} entry {index} ('{item['name']}')"
    return f"{label} entry {index}"


def _check_dict(label, value, spec, fix):
    problems = []
    options = spec.get("options")
    if options is not None:
        for key in value:
            if key not in options:
                known = ", ".join(options)
                problems.append(
                    f"{label} has the key '{key}'{_near(str(key), list(options))}, which pophub does not know: "
                    f"use only {known}."
                )
        for key, option in options.items():
            if key in value:
                problems += check_value(f"{label}: {key}", value[key], option, name=key)
            elif option.get("required"):
                problems.append(f"{label} has no {key}{_what(option)}: add it.")
        one_of = spec.get("one_of")
        if one_of and sum(key in value for key in one_of) != 1:
            problems.append(f"{label} needs exactly one of {' or '.join(one_of)}.")
    if "key_format" in spec:
        test, looks_like = FORMATS[spec["key_format"]]
        for key in value:
            if not isinstance(key, str) or not test(key):
                problems.append(f"{label} has the name '{key}': each name must be {looks_like}.{fix}")
    if "values" in spec:
        for key, item in value.items():
            problems += check_value(f"{label}: {key}", item, spec["values"])
    return problems


def _within(value, network):
    try:
        address, net = ipaddress.ip_address(value), ipaddress.ip_network(network, strict=True)
    except ValueError:
        return True  # the formats of both are reported on their own
    return address in net and address not in (net.network_address, net.broadcast_address)


def problems(values, spec, role_specs=None):
    """Every mistake in `values` (name -> value: the inventory's pophub_* settings and role variables
    it sets), as sentences. Unknown pophub_* names and unknown role variables are mistakes too."""
    role_specs = role_specs or {}
    found = []
    known = list(spec)
    renamed = {}
    for current, entry in spec.items():
        former = entry.get("formerly", [])
        for old in [former] if isinstance(former, str) else former:
            renamed[old] = current
    for name in sorted(values):
        value = values[name]
        if name in spec:
            found += check_value(name, value, spec[name])
            continue
        role = role_of(name, role_specs)
        if name in renamed:
            found.append(f"{name} is now called {renamed[name]}: rename it in the inventory (same value).")
        elif role is None and name.startswith(PREFIX):
            found.append(
                f"{name} is not a pophub setting{_near(name, known)}: fix its name, or remove it "
                "(the example inventory lists every setting)."
            )
        elif role is not None:
            options = role_specs[role]
            if name in options:
                found += check_value(name, value, options[name])
            else:
                found.append(
                    f"{name} is not a variable of the {role} role{_near(name, list(options))}: fix its name, or "
                    f"remove it (roles/{role}/README.md lists its variables)."
                )
    users_file = values.get("jupyterhub_users_file")
    if isinstance(users_file, str) and users_file and os.path.isfile(users_file):
        found += users_file_problems(users_file)
    for name, entry in spec.items():
        other = entry.get("within")
        # Only when both are there and well formed: their own problems are reported above.
        if not (other and name in values and other in values):
            continue
        if check_value(name, values[name], entry) or check_value(other, values[other], spec[other]):
            continue
        if not _within(values[name], values[other]):
            found.append(
                f"{name} is '{values[name]}', which is not an address inside {other} ('{values[other]}'): set it "
                f"to an address of that network, normally its first, e.g. {_first_host(values[other])}."
            )
    return found


def effective(values, spec):
    """Every setting of the spec as the run will see it: the inventory's value, read as its type,
    or else the default. Only for values that passed `problems()`."""
    found = {}
    for name, entry in spec.items():
        value = values.get(name, entry["default"])
        try:
            found[name] = _convert(value, entry.get("type", "raw"))
        except ValueError:
            found[name] = value
    return found


def rules(settings, taken_ports=None):
    """The rules that tie settings together or look at files, as sentences. `settings` holds every
    setting (see effective()); `taken_ports` names the box's own ports ({"the hub": 8081, ...})."""
    s = settings
    method = s["jupyterhub_authenticator"]
    found = []

    def need(ok, message):
        if not ok:
            found.append(message)

    for what, port in (taken_ports or {}).items():
        need(
            int(s["host_security_ssh_port"]) != int(port),
            f"host_security_ssh_port is {s['host_security_ssh_port']}, which {what} uses: set it to 22 or another "
            "free port.",
        )
    if s["backup_offsite_repository"].startswith("sftp:"):
        need(
            bool(s["backup_offsite_ssh_key"] and s["backup_offsite_known_hosts"]),
            "backup_offsite_repository is an sftp: repository: set backup_offsite_ssh_key to the private key the "
            "box logs in with (its text, kept in the vault) and backup_offsite_known_hosts to the server's host key "
            "line (ssh-keyscan -p PORT HOST).",
        )
    if s["nginx_tls_mode"] == "provided":
        need(
            bool(s["nginx_tls_certificate"] and s["nginx_tls_private_key"]),
            f"nginx_tls_mode is 'provided' but nginx_tls_certificate ('{s['nginx_tls_certificate']}') or "
            f"nginx_tls_private_key ('{s['nginx_tls_private_key']}') is empty: set both to the paths of your "
            "certificate chain and its private key, files on this machine.",
        )
    if s["nginx_tls_mode"] == "letsencrypt":
        domain = s["pophub_domain"]
        public = not (re.fullmatch(r"[0-9.]+", domain) or ":" in domain or domain.endswith("localhost"))
        need(
            bool(s["nginx_letsencrypt_email"]) and public,
            "nginx_tls_mode is 'letsencrypt', which needs nginx_letsencrypt_email set to your address (now "
            f"'{s['nginx_letsencrypt_email']}') and pophub_domain set to a public DNS name that points at this box "
            f"(now '{domain}').",
        )
    if s["pophub_user_subdomains"]:
        domain = s["pophub_domain"]
        need(
            domain.count(".") >= 1 and not re.fullmatch(r"[0-9.]+", domain) and ":" not in domain,
            f"pophub_user_subdomains is true, which serves each participant at a name under pophub_domain "
            f"(alice.{domain}), but '{domain}' is an address or a single label, under which browsers accept no "
            "wildcard certificate: set pophub_domain to a DNS name of two labels or more, such as hub.example.org "
            "(with a DNS record *.hub.example.org for this box), or pophub_user_subdomains to false.",
        )
        need(
            s["nginx_tls_mode"] != "letsencrypt",
            f"pophub_user_subdomains is true, which needs a certificate for *.{domain}, and nginx_tls_mode "
            "'letsencrypt' cannot get one (Let's Encrypt issues wildcards only over DNS, which pophub does not "
            "drive): set nginx_tls_mode to 'provided' with a wildcard certificate of yours, or to 'selfsigned', or "
            "pophub_user_subdomains to false.",
        )
        if s["nginx_tls_mode"] == "provided" and s["nginx_tls_certificate"]:
            need(
                certificate_covers(s["nginx_tls_certificate"], f"*.{domain}") is not False,
                f"pophub_user_subdomains is true, but the certificate in nginx_tls_certificate "
                f"('{s['nginx_tls_certificate']}') does not cover *.{domain}: use a wildcard certificate for "
                f"{domain} and *.{domain}, or set pophub_user_subdomains to false.",
            )
    both = sorted(set(s["jupyterhub_admin_users"]) & set(s["jupyterhub_blocked_users"]))
    need(
        not both,
        f"{', '.join(both)} is in both jupyterhub_admin_users and jupyterhub_blocked_users: take the name out of one "
        "of them.",
    )
    prefix = s["jupyterhub_team_account_prefix"]
    for setting in ("jupyterhub_admin_users", "jupyterhub_allowed_users"):
        taken = [name for name in s[setting] if prefix and name.startswith(prefix)]
        need(
            not taken,
            f"{setting} lists {', '.join(taken)}, but names starting with {prefix} (jupyterhub_team_account_prefix) "
            "belong to team servers, which nobody logs in as: list the people by their own names.",
        )
    allowed = bool(s["jupyterhub_allowed_users"] or s["jupyterhub_users_file"])
    callback = f"https://{s['pophub_domain']}/hub/oauth_callback"
    if method == "shared_password":
        need(
            len(s["jupyterhub_shared_password"]) >= 8,
            f"jupyterhub_authenticator is 'shared_password' but jupyterhub_shared_password has "
            f"{len(s['jupyterhub_shared_password'])} characters: set it to the event password, at least 8 characters.",
        )
        if s["jupyterhub_admin_users"]:
            need(
                len(s["jupyterhub_admin_password"]) >= 32
                and s["jupyterhub_admin_password"] != s["jupyterhub_shared_password"],
                "jupyterhub_admin_users is set, so jupyterhub_admin_password must be at least 32 characters and differ "
                f"from jupyterhub_shared_password (it has {len(s['jupyterhub_admin_password'])}): set it, for example "
                "to the output of `openssl rand -base64 32`.",
            )
    if method == "native":
        need(
            bool(s["jupyterhub_admin_users"]) or s["jupyterhub_native_open_signup"],
            "jupyterhub_authenticator is 'native' but jupyterhub_admin_users is empty, so nobody could approve "
            "sign-ups: list at least one admin (who signs up first under that name), or set "
            "jupyterhub_native_open_signup: true.",
        )
    if method == "pam":
        need(
            bool(s["jupyterhub_pam_users"]),
            "jupyterhub_authenticator is 'pam' but jupyterhub_pam_users is empty: list the system users (name, "
            "password_hash) who may log in.",
        )
    if method in ("github", "oidc"):
        need(
            bool(s["jupyterhub_oauth_client_id"] and s["jupyterhub_oauth_client_secret"]),
            f"jupyterhub_authenticator is '{method}' but jupyterhub_oauth_client_id or jupyterhub_oauth_client_secret "
            f"is empty: register the hub with {'GitHub as an OAuth app' if method == 'github' else 'your provider'} "
            f"(callback URL {callback}) and set both from it.",
        )
        need(
            not s["jupyterhub_teams"],
            f"jupyterhub_teams is set, but with jupyterhub_authenticator '{method}' the hub takes group membership "
            "from the provider and cannot define the teams itself: use shared_password, native or pam for team "
            "accounts, or leave jupyterhub_teams empty.",
        )
    if method == "github":
        need(
            bool(s["jupyterhub_github_allowed_organizations"]) or allowed,
            "jupyterhub_authenticator is 'github' but jupyterhub_github_allowed_organizations and "
            "jupyterhub_allowed_users are empty, which would let anyone with a GitHub account in: list your "
            "organization, e.g. [my-org] or [my-org:participants].",
        )
    if method == "oidc":
        endpoints = ("jupyterhub_oidc_authorize_url", "jupyterhub_oidc_token_url", "jupyterhub_oidc_userdata_url")
        need(
            bool(s["jupyterhub_oidc_issuer"]) or all(s[name] for name in endpoints),
            f"jupyterhub_authenticator is 'oidc' but jupyterhub_oidc_issuer is '{s['jupyterhub_oidc_issuer']}': set it "
            "to your provider's issuer URL (e.g. https://accounts.google.com), or set jupyterhub_oidc_authorize_url, "
            "jupyterhub_oidc_token_url and jupyterhub_oidc_userdata_url instead.",
        )
        need(
            bool(s["jupyterhub_oidc_allowed_groups"] or s["jupyterhub_oidc_admin_groups"])
            or allowed
            or s["jupyterhub_oidc_allow_all_users"],
            "jupyterhub_authenticator is 'oidc' but jupyterhub_oidc_allowed_groups and jupyterhub_allowed_users are "
            f"empty: list the groups (from the '{s['jupyterhub_oidc_groups_claim']}' claim) or users who may log in, "
            "or set jupyterhub_oidc_allow_all_users: true to let in everyone your provider knows.",
        )
    if method == "dummy":
        need(
            s["jupyterhub_allow_insecure_dummy_auth"],
            "jupyterhub_authenticator is 'dummy', which lets anyone in with any password; it is for tests only. Pick "
            "another method, or set jupyterhub_allow_insecure_dummy_auth: true if this box really is a throwaway test.",
        )
    images = s["event_image_images"]
    shown = [image.get("display_name") or image["name"] for image in images]
    need(
        len(set(shown)) == len(shown),
        f"event_image_images has two images users would see under the same name ({', '.join(shown)}): display "
        "names must differ, so give each image a display_name of its own.",
    )
    for image in images:
        need(
            not image.get("conda_environment") or image.get("conda") is True,
            f"event_image_images entry '{image['name']}' has a conda_environment, which needs conda: true, for a base "
            "that has conda (such as the Jupyter docker-stacks images); for a plain Python base use pip_packages or "
            "pip_requirements instead.",
        )
    need(
        not s["workspace_git_ssh_key"] or re.match(r"ssh://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:", s["workspace_git_repo"]),
        f"workspace_git_ssh_key is set, but workspace_git_repo ('{s['workspace_git_repo']}') is not an ssh address: "
        "set it to the repository's ssh address, such as git@github.com:my-org/data.git.",
    )
    need(
        bool(s["workspace_git_repo"]) or not s["workspace_git_load_data"],
        "workspace_git_load_data is true, but workspace_git_load_data needs a repository: set workspace_git_repo to "
        "the repository's URL, or workspace_git_load_data to false.",
    )
    need(
        s["pophub_data_dir"] != s["pophub_shared_dir"],
        f"pophub_data_dir and pophub_shared_dir are both '{s['pophub_data_dir']}': the data directory is read-only "
        "in servers and the shared one writable, so they must be two different directories, e.g. /srv/pophub/data "
        "and /srv/pophub/shared.",
    )
    return found


def certificate_covers(path, name):
    """Whether the PEM certificate at `path` names `name` (a DNS name, or a wildcard such as
    *.hub.example.org) among its subject alternative names; None when it cannot be read here."""
    try:
        from cryptography import x509  # ansible-core's own dependency
    except ImportError:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    return name.lower() in {dns.lower() for dns in names.get_values_for_type(x509.DNSName)}


def read_users_file(path):
    """The names in a users file: one a line; blank lines and # comments are skipped."""
    return [(number, line.strip()) for number, line in enumerate(Path(path).read_text().splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")]  # fmt: skip


def allowed_users(settings):
    """Who may log in by name: jupyterhub_allowed_users and the names in jupyterhub_users_file, as
    the jupyterhub role reads them (`settings` as effective() gives them)."""
    names = list(settings["jupyterhub_allowed_users"])
    if settings["jupyterhub_users_file"]:
        names += [name for _, name in read_users_file(settings["jupyterhub_users_file"])]
    return list(dict.fromkeys(names))


def users_file_problems(path):
    test, looks_like = FORMATS["username"]
    found, seen = [], {}
    for number, name in read_users_file(path):
        if not test(name):
            found.append(
                f"jupyterhub_users_file ({path}) line {number} is '{name}': put one name a line, {looks_like}."
            )
        elif name in seen:
            found.append(f"jupyterhub_users_file ({path}) lists '{name}' twice (lines {seen[name]} and {number}).")
        seen.setdefault(name, number)
    return found


def _first_host(network):
    try:
        return str(next(iter(ipaddress.ip_network(network, strict=False).hosts())))
    except (ValueError, StopIteration):
        return "172.28.0.1"


def role_of(name, role_specs):
    """The role whose prefix `name` carries, the longest match first (event_image before event)."""
    for role in sorted(role_specs, key=len, reverse=True):
        if name.startswith(f"{role}_"):
            return role
    return None


def _type_text(entry):
    kind = entry.get("type", "raw")
    if kind == "list":
        inner = entry.get("elements", "raw")
        if inner == "dict":
            return "list of {" + ", ".join(entry.get("options", {})) + "}"
        return f"list of {inner}"
    if kind == "dict" and "values" in entry:
        return "{name: " + _type_text(entry["values"]) + "}"
    if "choices" in entry:
        return " \\| ".join(f"`{c}`" for c in entry["choices"])
    return kind


def markdown_table(spec):
    """The README's table of every setting (tests/unit/test_settings.py keeps the two equal)."""
    rows = ["| Setting | Type | Default | What it is |", "|---|---|---|---|"]
    for name, entry in spec.items():
        default = yaml.safe_dump(entry["default"], default_flow_style=True, width=10_000).strip()
        default = default.removesuffix("...").strip().replace("|", "\\|")
        if default == "''":
            default = '""'
        if len(default) > 40:
            default = "(see the example inventory)"
        description = entry["description"].replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_text(entry)} | `{default}` | {description} |")
    return "\n".join(rows) + "\n"


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the README's table of every setting")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(load_spec()), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
