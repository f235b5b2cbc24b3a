"""Check Zero to JupyterHub values files the way helm does before it renders the chart.

helm merges the files given with -f in order (maps merge key by key, anything else is replaced),
coalesces the result over the chart's values.yaml (a null in the user's values deletes the chart's
key) and validates that against the chart's values schema. This does the same, so a values file
that passes here is one `helm upgrade --install ... -f FILE` accepts. It exits 1 with one line per
problem, each naming the key, and 2 when the chart's files are missing.

Usage: pophub-z2jh-validate --chart DIR FILE [FILE ...]    (or: python -m pophub.z2jh ...)
  DIR holds the chart's values.yaml and values.schema.yaml (or the packaged values.schema.json),
  e.g. what `helm pull jupyterhub/jupyterhub --untar` makes.

login_values() is the other half of the export (playbooks/z2jh-values.yml): the chart's hub.config
for the login method, made by the very code that configures the box's hub (pophub_hub.auth), so
the two cannot say different things.
"""

import argparse
import copy
import inspect
import sys
from pathlib import Path

import yaml

# The hub's package (roles/jupyterhub/files/pophub_hub): in a checkout it sits beside src/, where an
# organizer's plain `pip install ansible` cannot have put it.
_HUB_PACKAGE_DIR = Path(__file__).resolve().parents[2] / "roles" / "jupyterhub" / "files"
if (_HUB_PACKAGE_DIR / "pophub_hub").is_dir() and str(_HUB_PACKAGE_DIR) not in sys.path:
    sys.path.append(str(_HUB_PACKAGE_DIR))

SCHEMA_NAMES = ("values.schema.yaml", "values.schema.json")
# libyaml's loader when PyYAML has it: the chart's schema is large.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text):
    return yaml.load(text, Loader=LOADER)  # noqa: S506 (a safe loader)


def merge_user_values(base, override):
    """helm's mergeMaps for several -f files: maps merge recursively, the later file wins otherwise."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_user_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def coalesce(user, defaults):
    """helm's coalesceValues: the user's values over the chart's. Maps merge recursively; lists and
    scalars from the user replace the chart's; a user's null removes the chart's key."""
    result = copy.deepcopy(user)
    for key, default in defaults.items():
        if key not in result:
            result[key] = copy.deepcopy(default)
        elif result[key] is None:
            del result[key]
        elif isinstance(result[key], dict) and isinstance(default, dict):
            result[key] = coalesce(result[key], default)
    return result


def load_chart(chart_dir):
    """(defaults, schema) from a chart directory; FileNotFoundError says which file is missing."""
    chart_dir = Path(chart_dir)
    defaults_path = chart_dir / "values.yaml"
    schema_path = next((chart_dir / name for name in SCHEMA_NAMES if (chart_dir / name).is_file()), None)
    if not defaults_path.is_file() or schema_path is None:
        raise FileNotFoundError(
            f"{chart_dir} does not hold the chart's values.yaml and {' or '.join(SCHEMA_NAMES)}: point --chart at "
            "the directory `helm pull jupyterhub/jupyterhub --untar` makes"
        )
    return load_yaml(defaults_path.read_text()) or {}, load_yaml(schema_path.read_text())


def merged_values(chart_dir, *documents):
    """The values helm would render the chart with: the documents merged in order, over the defaults."""
    defaults, _ = load_chart(chart_dir)
    user = {}
    for document in documents:
        user = merge_user_values(user, document or {})
    return coalesce(user, defaults)


def problems(chart_dir, *documents):
    """Every schema violation of the documents merged over the chart's defaults, as 'key.path: message'."""
    # Formats are not checked (helm does not either), so jsonschema's optional IRI checker, which
    # takes over a second to import, is left out.
    sys.modules.setdefault("rfc3987_syntax", None)
    from jsonschema import Draft7Validator

    _, schema = load_chart(chart_dir)
    values = merged_values(chart_dir, *documents)
    found = []
    for error in sorted(Draft7Validator(schema).iter_errors(values), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(part) for part in error.path) or "(top level)"
        found.append(f"{where}: {error.message}")
    return found


# --- The login method, as hub.config -----------------------------------------------------------
# The hub's options that are code, not values: what the chart's hub gets instead. A function of the
# hub's package that needs nothing around it travels as extraConfig (the chart runs that as part of
# its config file); one that does is said plainly.
UNMAPPED_HOOKS = {
    ("Authenticator", "post_auth_hook"): (
        "The hub's refusal of reserved names at login (pophub-*, the team account prefix, names longer than the"
        " box allows): it is code of pophub's hub package, which the chart's hub image does not have."
    ),
}
# The login secrets auth.json holds on the box, by their name in pophub_hub.auth, and the setting each comes from.
SECRETS = {
    "shared_password": "jupyterhub_shared_password",
    "admin_password": "jupyterhub_admin_password",
    "oauth_client_secret": "jupyterhub_oauth_client_secret",
}


class _Secret(str):
    """A login secret on its way through pophub_hub.auth: it goes to the secrets file, never the values."""


class _Section(dict):
    """One class's options, as pophub_hub.auth sets them (`c.Class.option = value`)."""

    def __setattr__(self, name, value):
        self[name] = value

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Recorder(dict):
    """Stands in for the traitlets Config that JupyterHub hands its config file: it keeps what is set."""

    def __getattr__(self, name):
        return self.setdefault(name, _Section())


def hub_settings(effective, **given):
    """The settings pophub_hub.auth reads, from every setting as the export sees it (the role's
    variables without their jupyterhub_ prefix, as on the box), with `given` (what the box works out
    on its own: the public URL, the allowed names with the users file's, the OpenID Connect endpoints)."""
    found = {name.removeprefix("jupyterhub_"): value for name, value in effective.items()
             if name.startswith("jupyterhub_")}  # fmt: skip
    found.update(given)
    return found


def login_values(settings, secrets):
    """hub.config for the login method, the same secrets at their own keys, hub.extraConfig, and a
    sentence for each option that does not carry over: {config, secrets, extra_config, unmapped}.
    `settings` as pophub_hub.auth reads them (hub_settings()); `secrets` by their names there."""
    from pophub_hub import auth

    recorder = _Recorder()
    auth.configure(recorder, settings, {name: _Secret(value or "") for name, value in secrets.items()})
    config, hidden, extra, unmapped = {}, {}, {}, []
    for cls, options in sorted(recorder.items()):
        for option, value in sorted(options.items()):
            if isinstance(value, _Secret):
                hidden.setdefault(cls, {})[option] = str(value)
            elif callable(value):
                if (cls, option) in UNMAPPED_HOOKS:
                    unmapped.append(UNMAPPED_HOOKS[cls, option])
                elif value.__closure__ is None and getattr(auth, value.__name__, None) is value:
                    name = f"pophub-{cls}-{option}".lower().replace("_", "-")
                    extra[name] = f"{inspect.getsource(value)}\n\nc.{cls}.{option} = {value.__name__}\n"
                else:
                    raise ValueError(f"c.{cls}.{option} is code the export cannot carry: add it to UNMAPPED_HOOKS")
            else:
                config.setdefault(cls, {})[option] = sorted(value) if isinstance(value, set | frozenset) else value
    # The chart's own values set JupyterHub.admin_access, deprecated since JupyterHub 2.0 (it no longer
    # changes what admins may do: the admin role has every scope). A null deletes the chart's key, so
    # the hub starts without a deprecated option, as the box's does.
    config.setdefault("JupyterHub", {})["admin_access"] = None
    return {"config": config, "secrets": hidden, "extra_config": extra, "unmapped": unmapped}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pophub-z2jh-validate", description=__doc__.splitlines()[0])
    parser.add_argument("--chart", required=True, help="directory with the chart's values.yaml and values schema")
    parser.add_argument("files", nargs="+", help="values files, in the order helm's -f would get them")
    args = parser.parse_args(argv)
    try:
        sys.modules.setdefault("rfc3987_syntax", None)
        import jsonschema  # noqa: F401 (checked here so the message can say what to install)
    except ImportError:
        print("pophub-z2jh-validate: needs the jsonschema Python package (pip install jsonschema)", file=sys.stderr)
        return 2
    try:
        documents = []
        for name in args.files:
            document = load_yaml(Path(name).read_text())
            if document is not None and not isinstance(document, dict):
                print(f"{name}: not a mapping of values", file=sys.stderr)
                return 1
            documents.append(document)
        found = problems(args.chart, *documents)
    except FileNotFoundError as error:
        print(f"pophub-z2jh-validate: {error}", file=sys.stderr)
        return 2
    except yaml.YAMLError as error:
        print(f"pophub-z2jh-validate: not YAML: {error}", file=sys.stderr)
        return 1
    for problem in found:
        print(f"{args.files[-1]}: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"{' + '.join(args.files)}: valid for the chart in {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
