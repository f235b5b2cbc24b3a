"""The hub's database: a live connection for every request, and the schema check before an upgrade.

    python -m pophub_hub.db HOST PORT NAME USER PASSWORD_FILE

prints "upgrade" when the hub's PostgreSQL database has an older schema than this JupyterHub's,
else "current" (tasks/upgrade.yml reads it). Read-only: JupyterHub's own check, and only on a
database that carries a revision; a new one is left to the hub, which stamps it."""

import sys
from pathlib import Path

from sqlalchemy import URL, create_engine, inspect
from sqlalchemy.exc import SQLAlchemyError


def release_db_connection(prepare):
    """JupyterHub's one session stays in a transaction between requests, so it keeps its connection
    and pool_pre_ping never tests it: the first request after PostgreSQL restarts would fail
    (tests/e2e/test_faults.py). Ending a clean transaction as each request begins hands the
    connection back, and the request's first query takes a tested one. Nothing uncommitted is
    touched: a session with pending changes is left alone."""

    async def prepare_with_a_live_connection(self):
        db = self.db
        if not (db.new or db.dirty or db.deleted):
            try:
                db.commit()
            except SQLAlchemyError:
                db.rollback()
        return await prepare(self)

    return prepare_with_a_live_connection


def patch_handlers():
    """Wrap the prepare() of JupyterHub's handlers in release_db_connection, once."""
    from jupyterhub.handlers.base import BaseHandler

    if not getattr(BaseHandler.prepare, "_pophub", False):
        BaseHandler.prepare = release_db_connection(BaseHandler.prepare)
        BaseHandler.prepare._pophub = True


def revision_state(engine):
    """Whether the database behind `engine` needs an "upgrade" to this JupyterHub's schema, or is "current"."""
    from jupyterhub import orm

    if "alembic_version" not in inspect(engine).get_table_names():
        return "current"
    try:
        orm.check_db_revision(engine)
    except orm.DatabaseSchemaMismatch:
        return "upgrade"
    return "current"


def main(argv):
    host, port, name, user, password_file = argv
    url = URL.create(
        "postgresql+psycopg",
        username=user,
        password=Path(password_file).read_text().strip(),
        host=host,
        port=int(port),
        database=name,
    )
    print(revision_state(create_engine(url)))


if __name__ == "__main__":
    main(sys.argv[1:])
