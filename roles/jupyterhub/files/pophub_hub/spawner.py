"""User servers: DockerSpawner with the two changes the benchmark asked for
(bench/results/*/findings.md), the spawn page's choice of image, and the hook that gives each server
a database login of its own."""

import asyncio
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


class PophubDockerSpawner(DockerSpawner):
    """DockerSpawner with a pool of Docker threads of its own, and a start that returns as soon as the
    new server accepts connections."""

    docker_threads = Integer(
        1, config=True, help="Threads the hub talks to Docker with, shared by all users' servers (1: DockerSpawner's)."
    )

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
        # The hub checks a new server with a backoff that doubles up to 5 s apart, so a server that
        # is up waits for the next check; checking here every 0.1 s, it is seen at once. Whether it
        # answered is left to the hub's own check.
        ip, port = await super().start()
        await wait_until_accepting(ip, port, self.http_timeout)
        return ip, port


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
        async with await psycopg.AsyncConnection.connect(
            host="127.0.0.1",
            port=int(database["port"]),
            dbname=database["name"],
            user=database["provisioner"],
            password=provisioner_password,
            connect_timeout=10,
        ) as connection:
            cursor = await connection.execute(
                "SELECT public.pophub_provision_user(%s, %s)", (spawner.user.name, password)
            )
            (role,) = await cursor.fetchone()
        spawner.environment = {**spawner.environment, "PGUSER": role, "PGPASSWORD": password}

    return provision_database_role
