"""pophub_hub.handback on its own: the archive it makes from the tar stream Docker sends (the real
Docker, the service and the organizer's fetch are exercised on the box by tests/e2e/test_handback.py)."""

import io
import tarfile
import threading
import time

import pytest

from pophub_hub import handback


def docker_tar(members):
    """A tar stream as Docker's archive API sends a home: the home's own folder on top, PAX names."""
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.uid = 1_700_000_000, 0o640, 1000
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
                archive.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, data
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    raw = stream.getvalue()
    return [raw[start : start + 7777] for start in range(0, len(raw), 7777)]  # in uneven chunks


class FakeDocker:
    """The two calls write_home makes of docker-py, answering with `chunks`; records what was made."""

    def __init__(self, chunks, volumes=("pophub-home-ana",)):
        self.chunks, self.known, self.made, self.removed = chunks, volumes, [], []
        fake = self

        class Volumes:
            def get(self, name):
                import docker.errors

                if name not in fake.known:
                    raise docker.errors.NotFound(name)

        class Container:
            def get_archive(self, path):
                return iter(fake.chunks), {"name": path.rsplit("/", 1)[-1]}

            def remove(self, v, force):
                fake.removed.append((v, force))

        class Containers:
            def create(self, image, **options):
                fake.made.append((image, options))
                return Container()

        self.volumes, self.containers = Volumes(), Containers()


HOME = [
    ("jovyan", None, "dir"),
    ("jovyan/notes.md", b"# notes\n", "file"),
    ("jovyan/données", None, "dir"),
    ("jovyan/données/é" + "x" * 150 + ".bin", bytes(range(256)) * 300, "file"),
    ("jovyan/link", "notes.md", "symlink"),
    ("jovyan/again.md", "jovyan/notes.md", "hardlink"),
]


def test_the_archive_has_the_users_folder_on_top_with_every_file_as_it_was():
    out = io.BytesIO()
    client = FakeDocker(docker_tar(HOME))
    counted = handback.write_home(client, "pophub/event:1", "pophub-home-ana", "/home/jovyan", "ana", out)
    assert counted == {"files": 2, "file_bytes": 8 + 256 * 300}
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r:gz") as archive:
        members = {member.name: member for member in archive}
        long_name = "ana/données/é" + "x" * 150 + ".bin"
        assert set(members) == {"ana", "ana/notes.md", "ana/données", long_name, "ana/link", "ana/again.md"}
        assert archive.extractfile(members[long_name]).read() == bytes(range(256)) * 300
        assert members["ana/link"].linkname == "notes.md"  # a symbolic link's target is the user's own
        assert members["ana/again.md"].linkname == "ana/notes.md"  # a hard link follows the new folder
        assert (members["ana/notes.md"].mode, members["ana/notes.md"].mtime) == (0o640, 1_700_000_000)
    # Read through a container that never runs, has no network, and sees the home read-only; then gone.
    (image, options), = client.made
    assert image == "pophub/event:1" and options["network_disabled"] is True
    assert options["volumes"] == {"pophub-home-ana": {"bind": "/home/jovyan", "mode": "ro"}}
    assert client.removed == [(True, True)]  # with any anonymous volume the image declares


def test_a_user_without_a_home_gets_no_archive_and_no_container():
    client = FakeDocker(docker_tar(HOME), volumes=())
    with pytest.raises(handback.NoHome):
        handback.write_home(client, "pophub/event:1", "pophub-home-bo", "/home/jovyan", "bo", io.BytesIO())
    assert client.made == []


def test_the_reading_container_goes_even_when_the_stream_breaks():
    chunks = docker_tar(HOME)
    client = FakeDocker([chunks[0], b"this is not a tar stream" * 100])
    with pytest.raises(tarfile.TarError):
        handback.write_home(client, "pophub/event:1", "pophub-home-ana", "/home/jovyan", "ana", io.BytesIO())
    assert client.removed == [(True, True)]


@pytest.mark.parametrize(
    ("user", "volume", "folder"),
    [("ana", "pophub-home-ana", "ana"), ("ana.b+c@x", "pophub-home-ana-2eb-2bc-40x", "ana.b+c@x"),
     ("..", "pophub-home--2e-2e", "-2e-2e"), ("a b", "pophub-home-a-20b", "a-20b")],
)  # fmt: skip
def test_volume_and_folder_names(user, volume, folder):
    assert handback.volume_name("pophub-home-{username}", user) == volume
    assert handback.folder_name(user) == folder


def test_a_download_given_up_stops_the_writer_instead_of_leaving_it_waiting():
    pipe = handback._Pipe()
    errors = []

    def writer():
        try:
            for _ in range(100):
                pipe.write(b"x" * 1000)
        except BrokenPipeError as error:
            errors.append(error)

    thread = threading.Thread(target=writer)
    thread.start()
    assert pipe.read() == b"x" * 1000
    time.sleep(0.2)  # the writer has filled the pipe and waits
    pipe.abandon()
    thread.join(timeout=5)
    assert not thread.is_alive() and len(errors) == 1
    # Nor does the writer's last word wait for a reader that is gone.
    closing = threading.Thread(target=pipe.close)
    closing.start()
    closing.join(timeout=5)
    assert not closing.is_alive()


def test_the_download_is_named_after_the_event_and_the_user():
    assert handback._filename({"event_name": "Summer School 2026"}, "ana") == "summer-school-2026-ana.tar.gz"
    assert handback._filename({"event_name": ""}, "ana") == "hub-ana.tar.gz"


def test_the_organizers_archives_never_share_a_name(tmp_path, monkeypatch):
    """"a b" is kept as a-20b (escaped), which is also a name someone may have: each gets a file."""
    import docker

    from pophub_hub import eventday

    class Hub:
        def users(self):
            return [{"name": "a-20b"}, {"name": "a b"}]

    def write_home(client, image, volume, home_path, top, out):
        out.write(f"{volume} {top}".encode())
        return {"files": 1, "file_bytes": 1}

    monkeypatch.setattr(handback, "write_home", write_home)
    monkeypatch.setattr(docker, "from_env", lambda timeout: None)
    settings = {"event_name": "x", "images": [{"ref": "i"}], "home_volume": "pophub-home-{username}",
                "home_path": "/home/jovyan"}  # fmt: skip
    manifest = eventday.hand_back(settings, Hub(), [], tmp_path / "out")
    files = {archive["user"]: archive["file"] for archive in manifest["archives"]}
    assert files == {"a b": "a-20b.tar.gz", "a-20b": "a-20b-2.tar.gz"}
    assert (tmp_path / "out/a-20b.tar.gz").read_text() == "pophub-home-a-20b a-20b"
    assert (tmp_path / "out/a-20b-2.tar.gz").read_text() == "pophub-home-a-2d20b a-20b-2"
