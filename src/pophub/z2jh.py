"""Check Zero to JupyterHub values files the way helm does before it renders the chart.

helm merges the files given with -f in order (maps merge key by key, anything else is replaced),
coalesces the result over the chart's values.yaml (a null in the user's values deletes the chart's
key) and validates that against the chart's values schema. This does the same, so a values file
that passes here is one `helm upgrade --install ... -f FILE` accepts. It exits 1 with one line per
problem, each naming the key, and 2 when the chart's files are missing.

Usage: pophub-z2jh-validate --chart DIR FILE [FILE ...]    (or: python -m pophub.z2jh ...)
  DIR holds the chart's values.yaml and values.schema.yaml (or the packaged values.schema.json),
  e.g. what `helm pull jupyterhub/jupyterhub --untar` makes.
"""

import argparse
import copy
import sys
from pathlib import Path

import yaml

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
