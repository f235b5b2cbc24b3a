"""The hand-back at the end of the event: each participant downloads their whole home from their own
hub page, over HTTPS as their browser does, and the organizer fetches one archive per participant
(bin/pophub hand-back) with a manifest and checksums. Both must match the home byte for byte, and
neither may change it."""

import hashlib
import io
import json
import subprocess
import tarfile
import uuid

import pytest
import requests
from conftest import box_exec, event_inventory
from test_eventday import pophub

RUN = uuid.uuid4().hex[:6]
# A name with a dot and a plus, which the home volume's name escapes and the archive's folder keeps.
OWNER, NEWCOMER = f"e2e-hb.ana+{RUN}", f"e2e-hb-bo-{RUN}"

# What the owner's home holds: text, binary bytes of every value, an empty file, a file in a folder
# with a non-ASCII name, a hidden file, a symbolic link, and one big enough to take several chunks.
MAKE_HOME = """
import os, random
random.seed(17)
os.makedirs('données/deep', exist_ok=True)
open('notes.md', 'w').write('# my work\\n')
open('bytes.bin', 'wb').write(bytes(range(256)) * 64)
open('empty', 'wb').close()
open('données/deep/é.txt', 'w').write('accents\\n')
open('.hidden', 'w').write('dotfile\\n')
open('big.dat', 'wb').write(random.randbytes(5 * 1024 * 1024))
if not os.path.islink('link-to-notes'):
    os.symlink('notes.md', 'link-to-notes')
print('made')
"""
# Every regular file under the home, by its path there, with its SHA-256; and every link's target.
# Not what each kernel the test runs writes as it goes: IPython's history, the kernel's connection file.
TRANSIENT = (".ipython/profile_default/history.sqlite", ".local/share/jupyter/runtime/")
HASH_HOME = """
import hashlib, json, os
files, links = {}, {}
for folder, folders, names in os.walk('.'):
    for name in folders + names:
        path = os.path.join(folder, name)[2:]
        if os.path.islink(path):
            links[path] = os.readlink(path)
        elif os.path.isfile(path) and not path.startswith(TRANSIENT):
            files[path] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
print(json.dumps({'files': files, 'links': links}))
""".replace("TRANSIENT", repr(TRANSIENT))


def contents(archive_bytes, top):
    """What a .tar.gz holds under its one folder `top`, in HASH_HOME's form."""
    files, links = {}, {}
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as archive:
        for member in archive:
            assert member.name == top or member.name.startswith(f"{top}/"), member.name
            path = member.name.removeprefix(top).lstrip("/")
            if member.issym():
                links[path] = member.linkname
            elif member.isreg() and not path.startswith(TRANSIENT):
                files[path] = hashlib.sha256(archive.extractfile(member).read()).hexdigest()
    return {"files": files, "links": links}


@pytest.fixture(scope="module")
def owner(hub_user):
    """A participant with a home full of work, whose server keeps running through the tests."""
    user = hub_user(OWNER)
    user.start_server()
    assert user.run_code(MAKE_HOME).strip() == "made"
    yield user
    user.stop_server()


def home_of(user):
    return json.loads(user.run_code(HASH_HOME))


def test_a_participant_downloads_their_own_home_from_their_hub_page(owner, hub_url, cafile):
    home = home_of(owner)
    page = owner.session.get(f"{hub_url}/hub/home", timeout=60)
    assert page.status_code == 200 and 'href="/services/hand-back/"' in page.text, page.text[-2000:]
    # The browser follows the link: the service asks the hub who this is (OAuth, no confirmation
    # page) and sends the archive as a download.
    answer = owner.session.get(f"{hub_url}/services/hand-back/", timeout=300)
    assert answer.status_code == 200, answer.text[:2000]
    assert answer.headers["Content-Type"] == "application/gzip"
    assert answer.headers["Content-Disposition"].startswith("attachment; filename=")
    assert answer.headers["Content-Disposition"].endswith(f'-{OWNER}.tar.gz"')
    assert contents(answer.content, OWNER) == home
    made = {"notes.md", "bytes.bin", "empty", "données/deep/é.txt", ".hidden", "big.dat"}
    assert made <= home["files"].keys() and home["links"]["link-to-notes"] == "notes.md", home
    # The home is as it was, and the server never stopped.
    assert home_of(owner) == home


def test_nobody_gets_an_archive_that_is_not_their_own(owner, hub_user, hub_url, cafile):
    stranger = requests.Session()
    stranger.verify, stranger.trust_env = cafile, False
    answer = stranger.get(f"{hub_url}/services/hand-back/", timeout=60)
    assert answer.status_code == 200 and "/hub/login" in answer.url, answer.url
    assert "application/gzip" not in answer.headers.get("Content-Type", "")
    # Another participant, logged in, gets their own (empty) home: a clear page, never the owner's.
    newcomer = hub_user(NEWCOMER)
    answer = newcomer.session.get(f"{hub_url}/services/hand-back/", timeout=60)
    assert answer.status_code == 404 and f"{NEWCOMER} has no home on this hub yet" in answer.text, answer.text
    assert "Back to your hub page" in answer.text
    # The service's address takes no name: whatever is asked for, it answers for who is logged in.
    answer = newcomer.session.get(f"{hub_url}/services/hand-back/?user={OWNER}", timeout=60)
    assert answer.status_code == 404 and OWNER not in answer.text


def test_the_organizer_fetches_every_home_with_a_manifest(owner, hub_user, tmp_path):
    hub_user(NEWCOMER)  # on the hub, never started: no home
    home = home_of(owner)
    inventory = event_inventory(tmp_path / "inventory")
    code, output, errors = pophub(inventory, "hand-back")
    assert code == 0, errors
    assert f"{OWNER}" in output and "No home (their server never started): " in output and NEWCOMER in output, output
    fetched = inventory / "hand-back"
    manifest = json.loads((fetched / "MANIFEST.json").read_text())
    entry = next(archive for archive in manifest["archives"] if archive["user"] == OWNER)
    data = (fetched / entry["file"]).read_bytes()
    assert entry["file"] == f"{OWNER}.tar.gz" and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["bytes"] == len(data) and entry["files"] >= len(home["files"])
    assert contents(data, OWNER) == home
    assert NEWCOMER in manifest["without_home"]
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=fetched, capture_output=True, text=True)
    assert checked.returncode == 0 and f"{OWNER}.tar.gz: OK" in checked.stdout, checked.stdout + checked.stderr
    assert home_of(owner) == home


def test_the_organizer_can_hand_back_one_user_and_is_told_of_a_wrong_name(owner, tmp_path):
    inventory = event_inventory(tmp_path / "inventory")
    code, _, errors = pophub(inventory, "hand-back", f"nobody-{RUN}")
    assert code == 2 and f"There is no user 'nobody-{RUN}' on this hub" in errors, errors
    assert not (inventory / "hand-back").exists()
    code, output, errors = pophub(inventory, "hand-back", OWNER)
    assert code == 0 and "Handed back 1 home(s)" in output, errors + output
    assert {path.name for path in (inventory / "hand-back").iterdir()} == {
        f"{OWNER}.tar.gz", "MANIFEST.json", "SHA256SUMS"
    }
    # The copies on the box went once fetched; the homes did not.
    assert box_exec("ls", "/var/tmp").split().count("pophub-hand-back") == 0
