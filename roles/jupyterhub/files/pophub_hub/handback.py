"""The hand-back: a user's whole home as one .tar.gz, for the participant from their own hub page
(the hand-back service, python -m pophub_hub.handback, which the hub runs) and for the organizer,
one archive per user (python -m pophub_hub.eventday hand-back, through playbooks/hand-back.yml).

A home is a Docker volume. It is read through a container made from the event's image with the
volume mounted read-only, created and never started (no process, no network), then removed: what
`docker cp` reads. Each archive holds one folder named after its user, with the files, their
modes and times as they are in the home. Nothing in a home is changed or deleted."""

import asyncio
import contextlib
import html
import io
import os
import queue
import re
import tarfile
import threading

HOME_IS_MISSING = "has no home on this hub yet"


class NoHome(Exception):
    """The user has no home volume: their server never started."""


def volume_name(template, user):
    """The name of `user`'s home volume, as DockerSpawner makes it from jupyterhub_home_volume."""
    from dockerspawner import DockerSpawner

    escaped = DockerSpawner._escape(user)
    return template.format(username=escaped, safe_username=escaped, raw_username=user)


def folder_name(user):
    """The archive's top folder: the user name, or its escaped form when it would not be a plain name."""
    from dockerspawner import DockerSpawner

    return user if re.fullmatch(r"[\w.@+-]+", user) and user.strip(".") else DockerSpawner._escape(user)


class _Chunks(io.RawIOBase):
    """The bytes of an iterator of chunks, as a file to read."""

    def __init__(self, chunks):
        self._chunks, self._left = iter(chunks), b""

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        count = min(len(buffer), len(self._left))
        buffer[:count], self._left = self._left[:count], self._left[count:]
        return count


def write_home(client, image, volume, home_path, top, out):
    """Write the home in Docker volume `volume` to the binary file `out` as a .tar.gz whose one
    folder is `top`. Returns the number of files and their bytes ({"files", "file_bytes"}); raises
    NoHome without the volume."""
    import docker.errors

    try:
        client.volumes.get(volume)
    except docker.errors.NotFound as missing:
        raise NoHome(volume) from missing
    reader = client.containers.create(
        image, command=["true"], network_disabled=True, labels={"pophub.hand-back": volume},
        volumes={volume: {"bind": home_path, "mode": "ro"}},
    )  # fmt: skip
    counted = {"files": 0, "file_bytes": 0}
    try:
        chunks, _ = reader.get_archive(home_path)
        # Docker's tar has the home's own folder (its last path part) on top: it becomes `top`.
        with (
            tarfile.open(fileobj=io.BufferedReader(_Chunks(chunks), 1 << 20), mode="r|") as source,
            tarfile.open(fileobj=out, mode="w|gz", format=tarfile.PAX_FORMAT) as target,
        ):
            for member in source:
                # A long or non-ASCII name came in a PAX header, which would win over the new name.
                member.pax_headers = {k: v for k, v in member.pax_headers.items() if k not in ("path", "linkpath")}
                member.name = _renamed(member.name, top)
                if member.islnk():
                    member.linkname = _renamed(member.linkname, top)
                if member.isreg():
                    counted["files"] += 1
                    counted["file_bytes"] += member.size
                    target.addfile(member, source.extractfile(member))
                else:
                    target.addfile(member)
    finally:
        reader.remove(v=True, force=True)
    return counted


def _renamed(name, top):
    rest = name.partition("/")[2]
    return f"{top}/{rest}" if rest else top


# --- The service: each participant's own archive, over HTTPS through the hub's proxy ------------------
class _Pipe:
    """What one thread writes, read by the event loop in chunks; the writer waits while the reader
    is behind, so a slow download holds a few chunks in memory, not the home. A download the
    browser gave up on abandons the pipe: the writer's next write fails, and it cleans up."""

    def __init__(self):
        self._queue = queue.Queue(maxsize=8)
        self._abandoned = threading.Event()

    def write(self, data):
        while data and not self._abandoned.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(bytes(data), timeout=1)
                return len(data)
        if self._abandoned.is_set():
            raise BrokenPipeError("the download was given up")
        return len(data)

    def flush(self):
        pass

    def abandon(self):
        self._abandoned.set()

    def close(self, error=None):
        """The end (or what went wrong), unless the reader is gone: then nobody waits for it."""
        while not self._abandoned.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(error, timeout=1)
                return

    def read(self):
        return self._queue.get()


def make_app(settings, client=None):
    """The tornado application of the hand-back service (JUPYTERHUB_* from the hub's environment)."""
    import docker
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
    from jupyterhub.utils import url_path_join
    from tornado import web
    from tornado.iostream import StreamClosedError

    client = client or docker.from_env(timeout=120)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/hand-back/")
    # A few archives are made at a time; a room asking together waits its turn, download open.
    turns = asyncio.Semaphore(2)

    class ArchiveHandler(HubOAuthenticated, web.RequestHandler):
        async def prepare(self):
            # The hub is asked without blocking: HubAuth's own call (get_current_user) would hold the
            # event loop, and with it every download in progress, while a new visitor is looked up.
            model = await self.hub_auth.get_user(self, sync=False)
            try:
                self.current_user = self.check_hub_user(model) if model else None
            except UserNotAllowed:
                self._page(403, "This download is only for the hub's users.")

        @web.authenticated
        async def get(self):
            user = self.current_user["name"]
            volume = volume_name(settings["home_volume"], user)
            top = folder_name(user)
            pipe = _Pipe()
            async with turns:
                loop = asyncio.get_running_loop()

                def work():
                    try:
                        write_home(client, settings["images"][0]["ref"], volume, settings["home_path"], top, pipe)
                    except BaseException as error:  # noqa: BLE001 (handed to the event loop, which reports it)
                        pipe.close(error)
                    else:
                        pipe.close()

                threading.Thread(target=work, name=f"hand-back-{top}", daemon=True).start()
                first = await loop.run_in_executor(None, pipe.read)
                if isinstance(first, NoHome):
                    return self._page(404, f"{user} {HOME_IS_MISSING}: start your server once, and your "
                                      "work is kept in your home from then on.")  # fmt: skip
                if isinstance(first, BaseException):
                    self.log.error("The hand-back of %s failed: %s", user, first)
                    return self._page(503, "Your archive could not be made just now. Your files are safe: "
                                      "try again in a minute, or ask the organizers.")  # fmt: skip
                self.set_header("Content-Type", "application/gzip")
                self.set_header("Content-Disposition", f'attachment; filename="{_filename(settings, top)}"')
                self.set_header("Cache-Control", "no-store")
                chunk = first
                try:
                    while chunk is not None:
                        if isinstance(chunk, BaseException):
                            # Cut short: the connection is dropped without the response's last chunk, so
                            # the browser reports a failed download, never a whole-looking archive.
                            self.log.error("The hand-back of %s stopped: %s", user, chunk)
                            self.request.connection.close()
                            self._finished = True  # tornado must not end the response now
                            return None
                        self.write(chunk)
                        await self.flush()
                        chunk = await loop.run_in_executor(None, pipe.read)
                except StreamClosedError:
                    self.log.info("The browser gave up the hand-back of %s", user)
                finally:
                    pipe.abandon()

        def _page(self, code, text):
            self.set_status(code)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(
                "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Your work</title></head>"
                f"<body><p>{html.escape(text)}</p><p><a href='{html.escape(settings['hub_prefix'])}home'>Back to "
                "your hub page</a></p></body></html>"
            )

    return web.Application(
        [
            (prefix, ArchiveHandler),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ],
        cookie_secret=os.urandom(32),
    )


def _filename(settings, top):
    event = "".join(ch if ch.isalnum() else "-" for ch in settings["event_name"].lower()).strip("-") or "hub"
    return f"{event}-{top}.tar.gz".encode("ascii", "replace").decode().replace('"', "-")


def main():
    """python -m pophub_hub.handback: the service, on 127.0.0.1 at hand_back_port, started by the hub."""
    from tornado import ioloop

    from pophub_hub.config import read_settings
    from pophub_hub.eventday import SETTINGS_FILE

    settings = read_settings(SETTINGS_FILE)
    # The hub's pages by their full address: with per-user subdomains this service has a name of its own.
    settings["hub_prefix"] = f"{settings['public_url'] or '/'}hub/"
    make_app(settings).listen(settings["hand_back_port"], address="127.0.0.1")
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
