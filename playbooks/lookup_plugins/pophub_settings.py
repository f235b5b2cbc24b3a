"""The problems of this host's event settings, as sentences: lookup('pophub_settings').

Every pophub_* variable the host has, and every organizer setting named after a role, is checked
against the spec (src/pophub/settings.yml); other role variables against their role's
meta/argument_specs.yml. Each value is worked out (templated) on its own, so one that fails to
render is named instead of stopping the check. When every value has the right shape, the rules
that tie settings together follow (taken_ports: the box's own ports, by what uses them). The logic
lives in pophub.settings; this file only hands it the host's variables.

lookup('pophub_settings', 'effective') gives every setting's value instead, the inventory's or its
default, for playbooks that read settings of roles they do not run (z2jh-values.yml, verify.yml);
lookup('pophub_settings', 'allowed_users') the names allowed in, the users file's included;
lookup('pophub_settings', 'z2jh_login', public_url=..., allowed_users=..., oidc_endpoints=...) the
login method as Zero to JupyterHub values, made by the hub's own code (pophub.z2jh.login_values)."""

import sys
from pathlib import Path

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from pophub import settings, z2jh  # noqa: E402 (after the path that holds it)

DOCUMENTATION = """
name: pophub_settings
short_description: the problems of this host's event settings
description: Checks every pophub_* variable, and every role variable, against its spec.
"""


class LookupModule(LookupBase):
    def run(self, terms, variables=None, taken_ports=None, public_url="", allowed_users=(), oidc_endpoints=None,
            **kwargs):
        spec = settings.load_spec()
        role_specs = settings.load_role_specs(ROOT / "roles")
        values, problems = {}, []
        for name in sorted(variables or {}):
            if not (name.startswith(settings.PREFIX) or settings.role_of(name, role_specs)):
                continue
            try:
                values[str(name)] = settings.plain(self._templar.template(variables[name]))
            except AnsibleError as error:
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                problems.append(f"{name} could not be worked out: {message}")
        if terms == ["effective"]:
            # Every setting as the run sees it, the defaults of roles this play does not load included.
            return [settings.effective(values, spec)]
        if terms == ["allowed_users"]:
            return [settings.allowed_users(settings.effective(values, spec))]
        if terms == ["z2jh_login"]:
            effective = settings.effective(values, spec)
            endpoints = settings.plain(oidc_endpoints or {})
            hub = z2jh.hub_settings(
                effective, public_url=str(public_url or ""), allowed_users=settings.plain(list(allowed_users)),
                oidc_authorize_url=endpoints.get("authorize", ""), oidc_token_url=endpoints.get("token", ""),
                oidc_userdata_url=endpoints.get("userdata", ""),
            )  # fmt: skip
            secrets = {name: effective[setting] for name, setting in z2jh.SECRETS.items()}
            return [z2jh.login_values(hub, secrets)]
        problems += settings.problems(values, spec, role_specs)
        if not problems:
            problems = settings.rules(settings.effective(values, spec), settings.plain(taken_ports or {}))
        return [problems]
