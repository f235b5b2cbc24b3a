"""pophub-git-sync against real git repositories on this machine: the checkout, links, the address."""

import importlib.machinery
import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
loader = importlib.machinery.SourceFileLoader("pophub_git_sync", str(ROOT / "roles/workspace/files/pophub-git-sync"))
sync_program = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
loader.exec_module(sync_program)


def run(*argv, cwd):
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)


@pytest.fixture(autouse=True)
def sync_account_home(tmp_path, monkeypatch):
    """The sync's account has a home of its own (its state directory): git's global config goes there."""
    home = tmp_path / "sync-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def origin(tmp_path):
    """A repository with a data file, a link to a secret, and a linked directory."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data/venues.csv").write_text("name,lon,lat\nstation,8.54,47.38\n")
    (work / "data/shadow.csv").symlink_to("/etc/shadow")
    (work / "etc").symlink_to("/etc")
    run("git", "init", "--quiet", "--initial-branch=main", cwd=work)
    run("git", "add", "-A", cwd=work)
    run("git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "--quiet", "-m", "data", cwd=work)
    return work


def test_links_are_checked_out_as_plain_files_and_only_real_files_are_data(origin, tmp_path):
    checkout = tmp_path / "checkout"
    head = sync_program.sync(str(origin), "main", checkout)
    origin_head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=origin, capture_output=True, text=True).stdout
    assert head == origin_head.strip()
    link = checkout / "data/shadow.csv"
    assert not link.is_symlink() and link.read_text() == "/etc/shadow"
    assert not (checkout / "etc").is_symlink()
    files = [p for p in sorted(checkout.rglob("*.csv")) if sync_program.data_file(p, checkout)]
    assert [p.name for p in files] == ["shadow.csv", "venues.csv"]


def test_a_repository_on_the_box_is_trusted_once_in_the_sync_accounts_own_config(origin, tmp_path, sync_account_home):
    sync_program.sync(str(origin), "main", tmp_path / "checkout")
    sync_program.sync(str(origin), "main", tmp_path / "checkout")
    config = (sync_account_home / ".gitconfig").read_text()
    assert config.count(f"directory = {origin}") == 1, config


def test_a_fetch_that_fails_says_what_git_said(tmp_path):
    with pytest.raises(SystemExit, match=r"git fetch failed: .*does not appear to be a git repository"):
        sync_program.sync(str(tmp_path / "nothing-here"), "main", tmp_path / "checkout")


def test_a_link_that_is_there_anyway_is_never_data(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "data").mkdir(parents=True)
    (checkout / "data/real.csv").write_text("a\n1\n")
    (checkout / "data/secret.csv").symlink_to("/etc/hostname")
    (checkout / "linked").symlink_to(tmp_path)  # a linked directory: data/ seen again through it
    found = [p.relative_to(checkout) for p in sorted(checkout.rglob("*.csv")) if sync_program.data_file(p, checkout)]
    assert found == [Path("data/real.csv")]


def test_the_address_is_not_kept_in_the_checkout_and_an_older_clones_remote_goes(origin, tmp_path):
    checkout = tmp_path / "checkout"
    run("git", "clone", "--quiet", str(origin), str(checkout), cwd=tmp_path)  # as an older pophub did
    assert str(origin) in (checkout / ".git/config").read_text()
    sync_program.sync(str(origin), "main", checkout)
    assert str(origin) not in (checkout / ".git/config").read_text()
    # A second sync with a new commit follows it.
    (origin / "NOTES.md").write_text("laptops\n")
    run("git", "add", "-A", cwd=origin)
    run("git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "--quiet", "-m", "notes", cwd=origin)
    sync_program.sync(str(origin), "main", checkout)
    assert (checkout / "NOTES.md").read_text() == "laptops\n"
