"""User servers: DockerSpawner with the changes a room arriving at once asked for (a line instead of
"too many users" pages, its own Docker threads, a fast readiness check: bench/results/*/findings.md),
the spawn page's choice of image, and the hook that gives each server a database login of its own."""

import asyncio
import contextlib
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from html import escape

import psycopg
from dockerspawner import DockerSpawner
from traitlets import Integer


async def wait_until_accepting(ip, port, timeout, interval=0.1):
    """Whether (ip, port) accepted a TCP connection within `timeout` seconds, trying every `interval`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=1)
        except OSError:  # refused, unreachable, or no answer within a second (TimeoutError)
            await asyncio.sleep(interval)
            continue
        writer.close()
        return True
    return False


class StartLine:
    """At most `slots` starts at a time; the others wait in the order they came, each able to ask how
    many are ahead of it. A start that gives up while waiting (the hub's start timeout) leaves the
    line; a finished one hands its slot straight to the next in line."""

    def __init__(self, slots):
        self.slots = slots
        self.running = 0
        self._waiting = []  # (key, future), first come first

    def ahead_of(self, key):
        """How many wait before `key`, or None when `key` is not waiting (started, or never came)."""
        for index, (waiting, _) in enumerate(self._waiting):
            if waiting is key:
                return index
        return None

    @property
    def waiting(self):
        return len(self._waiting)

    @contextlib.asynccontextmanager
    async def turn(self, key):
        if self.running < self.slots and not self._waiting:
            self.running += 1
        else:
            future = asyncio.get_running_loop().create_future()
            self._waiting.append((key, future))
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # the slot was handed over just as we gave up: pass it on
                else:
                    self._waiting = [(k, f) for k, f in self._waiting if f is not future]
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self):
        while self._waiting:
            _, future = self._waiting.pop(0)
            if not future.done():
                future.set_result(None)  # the slot passes on: `running` stays as it is
                return
        self.running -= 1


class PophubDockerSpawner(DockerSpawner):
    """DockerSpawner with a line for starts, a pool of Docker threads of its own, and a start that
    returns as soon as the new server accepts connections."""

    docker_threads = Integer(
        1, config=True, help="Threads the hub talks to Docker with, shared by all users' servers (1: DockerSpawner's)."
    )
    concurrent_starts = Integer(
        0,
        config=True,
        help="Servers that start at once; the others wait in line on their progress page, told how many are "
        "ahead of them (0: one per CPU core, at least 2).",
    )

    # One line for every user's server, made at the first start.
    _line = None

    @classmethod
    def start_line(cls, slots):
        if cls._line is None:
            cls._line = StartLine(slots or max(2, os.cpu_count() or 1))
        return cls._line

    # Every user's Docker calls go through one pool of this class's own. DockerSpawner's has one
    # thread, so at the start of a class, stops and status checks queue behind everyone's starts.
    _executor = None

    @property
    def executor(self):
        cls = type(self)
        if cls._executor is None:
            cls._executor = ThreadPoolExecutor(self.docker_threads, thread_name_prefix="pophub-docker")
        return cls._executor

    async def start(self):
        # A room pressing Start together would otherwise start every server at once: each takes the
        # box's CPU from the others (and from the hub), so all of them are slow. In line, each
        # starts quickly in turn, and the wait is counted in the hub's start timeout.
        async with self.start_line(self.concurrent_starts).turn(self):
            ip, port = await super().start()
            # The hub checks a new server with a backoff that doubles up to 5 s apart, so a server
            # that is up waits for the next check; checking here every 0.1 s, it is seen at once.
            # Whether it answered is left to the hub's own check.
            await wait_until_accepting(ip, port, self.http_timeout)
        return ip, port

    async def progress(self):
        """What the progress page shows while this server waits in line, then once it starts."""
        line = self.start_line(self.concurrent_starts)
        said = None
        while (ahead := line.ahead_of(self)) is not None:
            if ahead != said:
                people = "nobody" if ahead == 0 else ("1 person" if ahead == 1 else f"{ahead} people")
                yield {
                    "progress": 10,
                    "message": f"Waiting for a free place to start: {people} ahead of you. Your server starts "
                    "as soon as there is room; keep this page open.",
                }
                said = ahead
            await asyncio.sleep(0.5)
        if said is not None:
            yield {"progress": 50, "message": "Your turn: starting your server."}


def image_form(spawner):
    """The spawn page's list of images by display name, with the spawner's image selected."""
    choices = "".join(
        f'<option value="{escape(name)}"{" selected" if ref == spawner.image else ""}>{escape(name)}</option>'
        for name, ref in spawner.allowed_images.items()
    )
    return (
        '<label for="image">Environment</label>'
        f'<select class="form-control" id="image" name="image" required autofocus>{choices}</select>'
    )


def database_role_hook(database, provisioner_password):
    """A pre_spawn_hook that asks the event database (`database`: its port, name and provisioner
    account) for the user's own role with a fresh password, and hands both to the server as PGUSER
    and PGPASSWORD."""

    async def provision_database_role(spawner):
        password = secrets.token_urlsafe(32)
        role = await retry_while_unavailable(
            lambda: _provision(database, provisioner_password, spawner.user.name, password), spawner.log
        )
        spawner.environment = {**spawner.environment, "PGUSER": role, "PGPASSWORD": password}

    return provision_database_role


async def _provision(database, provisioner_password, username, password):
    async with await psycopg.AsyncConnection.connect(
        host="127.0.0.1",
        port=int(database["port"]),
        dbname=database["name"],
        user=database["provisioner"],
        password=provisioner_password,
        connect_timeout=10,
    ) as connection:
        cursor = await connection.execute("SELECT public.pophub_provision_user(%s, %s)", (username, password))
        (role,) = await cursor.fetchone()
    return role


async def retry_while_unavailable(attempt, log, patience=90, pause=1.0):
    """`await attempt()`, again after `pause` seconds while PostgreSQL cannot be reached (a box busy
    with a room's starts, a restart), for `patience` seconds in all; then its last error stands."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return await attempt()
        except psycopg.OperationalError as error:
            if time.monotonic() + pause >= deadline:
                raise
            log.warning("The event database did not answer (%s); trying again", str(error).strip())
            await asyncio.sleep(pause)
