"""Check the hub's config before it replaces the running one.

    python -m pophub_hub.check [--settings FILE] [--auth FILE] CONFIG...

Loads each jupyterhub_config.py with JupyterHub's own config machinery (with FILE as its settings
or its login secrets in place of the installed ones), refuses options that no class knows or that
are deprecated, and instantiates the authenticator and the spawner it names. Exits non-zero with
the reason, so Ansible's `validate:` keeps the old file and the running hub stays up. Run it with
the hub's environment's python."""

import argparse
import inspect
import logging
import os
import sys
import warnings
from contextlib import contextmanager
from types import SimpleNamespace

# Secrets the config reads from the environment that systemd builds for the hub; their values do
# not matter for the check.
PLACEHOLDER_ENVIRONMENT = ("JUPYTERHUB_DB_PASSWORD", "POPHUB_DB_PROVISIONER_PASSWORD")
# Packages whose deprecation warnings mean the config uses an outdated name.
WATCHED_MODULES = ("jupyterhub", "oauthenticator", "dockerspawner", "traitlets")


def configurable_classes(*roots):
    """Every class in the MROs of `roots` that takes configuration, by name."""
    from traitlets.config import Configurable

    classes = {}
    for root in roots:
        for cls in inspect.getmro(root):
            if isinstance(cls, type) and issubclass(cls, Configurable):
                classes.setdefault(cls.__name__, cls)
    return classes


def option_problems(config, classes):
    """Sections or options no class knows, and options their class calls deprecated."""
    problems = []
    for section, values in config.items():
        cls = classes.get(section)
        if cls is None:
            problems.append(f"{section}: no such configurable class here")
            continue
        traits = cls.class_traits(config=True)
        for name in values:
            trait = traits.get(name)
            if trait is None:
                problems.append(f"{section}.{name}: not an option of {cls.__name__}")
            elif "deprecated" in (trait.help or "").lower()[:120]:
                problems.append(f"{section}.{name}: deprecated")
    return problems


class _WarningCollector(logging.Handler):
    """Collects what the classes log at WARNING and above while they are set up: traitlets and
    OAuthenticator report deprecated or unknown options through logging, not through warnings."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextmanager
def _environment(values):
    """os.environ with `values` set, as it was again afterwards."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check(path, settings=None, auth=None):
    """Load the config at `path` (with the settings file `settings` and the login secrets file
    `auth`, if given); return (app, authenticator, spawner) or raise with the reason."""
    environment = {name: os.environ.get(name, "placeholder") for name in PLACEHOLDER_ENVIRONMENT}
    if settings:
        environment["POPHUB_SETTINGS_FILE"] = str(settings)
    if auth:
        environment["POPHUB_AUTH_FILE"] = str(auth)
    collector = _WarningCollector()
    logging.getLogger().addHandler(collector)
    try:
        with _environment(environment):
            return _check(str(path), collector)
    finally:
        logging.getLogger().removeHandler(collector)


def _check(path, collector):
    from jupyterhub import orm
    from jupyterhub.app import JupyterHub
    from jupyterhub.proxy import ConfigurableHTTPProxy

    with warnings.catch_warnings():
        # Deprecations raised by the hub's own packages are errors; others' (say, a plugin's use of
        # a deprecated standard library call) are not the config's doing.
        for module in WATCHED_MODULES:
            for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
                warnings.filterwarnings("error", category=category, module=module)
        app = JupyterHub()
        app.log.addHandler(collector)
        app.load_config_file(path)
        classes = configurable_classes(JupyterHub, ConfigurableHTTPProxy, app.authenticator_class, app.spawner_class)
        problems = option_problems(app.config, classes)
        if problems:
            raise ValueError("unusable options:\n  " + "\n  ".join(problems))
        # Authenticators that keep tables of their own (NativeAuthenticator) get a throwaway
        # in-memory database, the way the hub hands them its own.
        scratch_db = orm.new_session_factory("sqlite:///:memory:")()
        authenticator = app.authenticator_class(config=app.config, _deprecated_db_session=scratch_db)
        authenticator.check_allow_config()
        spawner = app.spawner_class(config=app.config, user=SimpleNamespace(name="pophub-check"))
    complaints = [m for m in collector.messages if "deprecat" in m.lower() or "not recognized" in m.lower()]
    if complaints:
        raise ValueError("the config uses deprecated or unknown options:\n  " + "\n  ".join(complaints))
    return app, authenticator, spawner


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pophub_hub.check", description=__doc__.split("\n")[0])
    parser.add_argument("--settings", help="the settings file to check (default: the one the config names)")
    parser.add_argument("--auth", help="the login secrets to check (default: the ones the config names)")
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="a jupyterhub_config.py")
    args = parser.parse_args(argv)
    failed = False
    for path in args.configs:
        try:
            _, authenticator, spawner = check(path, settings=args.settings, auth=args.auth)
        except Exception as error:  # noqa: BLE001 (any failure means: do not install this config)
            print(f"{path}: {type(error).__name__}: {error}", file=sys.stderr)
            failed = True
        else:
            print(f"{path}: ok ({type(authenticator).__name__}, {type(spawner).__name__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
