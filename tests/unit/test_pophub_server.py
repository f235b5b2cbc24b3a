"""pophub_server, the Jupyter server extension in every event image: nbgitpuller's targets."""

import asyncio
import importlib.util
from pathlib import Path

import pytest
from tornado import web

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("pophub_server", ROOT / "roles/event_image/files/pophub_server.py")
pophub_server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pophub_server)

REPO = "https://github.com/my-org/workshop"


@pytest.mark.parametrize(
    ("targetpath", "repo"),
    [(None, REPO), ("workshop", REPO), ("courses/day-1", REPO), ("notes", "https://github.com/org/.dotfiles")],
)
def test_a_visible_folder_of_the_home_passes(targetpath, repo):
    assert pophub_server.target_refusal(targetpath, repo) is None


@pytest.mark.parametrize(
    ("targetpath", "repo"),
    [
        (".ipython", REPO),  # startup files there run in every kernel
        ("work/.jupyter", REPO),
        ("../other", REPO),
        ("/etc/cron.d", REPO),
        (None, "https://example.org/.ipython"),  # the default target is the repository's last part
        (None, "https://example.org/repo/"),  # an empty one: the home itself
    ],
)
def test_a_hidden_empty_or_outside_target_is_refused_with_a_sentence(targetpath, repo):
    reason = pophub_server.target_refusal(targetpath, repo)
    assert reason and "A link may only pull into a visible folder of your home" in reason


class FakeHandler:
    """nbgitpuller's handler as far as the guard sees it: arguments in, a GET that records its call."""

    def __init__(self, **arguments):
        self.arguments, self.pulled = arguments, False

    def get_argument(self, name, default=None):
        return self.arguments.get(name, default)

    async def get(self):
        self.pulled = True


def test_the_guard_stops_a_refused_target_before_nbgitpuller_and_lets_others_through():
    pophub_server.guard(FakeHandler)
    refused = FakeHandler(repo=REPO, targetpath=".ipython")
    with pytest.raises(web.HTTPError) as error:
        asyncio.run(refused.get())
    assert error.value.status_code == 400 and not refused.pulled
    allowed = FakeHandler(repo=REPO, targetPath="workshop")
    asyncio.run(allowed.get())
    assert allowed.pulled
