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


@pytest.mark.parametrize("target", ["workshop", "courses/day-1", "day-1/notes.d"])
def test_a_visible_folder_of_the_home_passes(target):
    assert pophub_server.target_refusal(target) is None


@pytest.mark.parametrize(
    "target",
    [
        ".ipython",  # startup files there run in every kernel
        "work/.jupyter",
        "../other",
        "/etc/cron.d",
        "",  # the home itself
    ],
)
def test_a_hidden_empty_or_outside_target_is_refused_with_a_sentence(target):
    reason = pophub_server.target_refusal(target)
    assert reason and "A link may only pull into a visible folder of your home" in reason


class FakeHandler:
    """nbgitpuller's handler as far as the guard sees it: arguments in, a GET that records its call."""

    def __init__(self, **arguments):
        self.arguments, self.pulled = arguments, False

    def get_argument(self, name, default=None):
        return self.arguments.get(name, default)

    async def get(self):
        self.pulled = True


def guarded():
    """A fresh FakeHandler class with the guard, as the extension puts it on nbgitpuller's API."""
    handler_class = type("Guarded", (FakeHandler,), {})
    pophub_server.guard(handler_class, lambda repo: repo.split("/")[-1])
    return handler_class


def test_the_guard_stops_a_refused_target_before_nbgitpuller_and_lets_others_through():
    handler_class = guarded()
    refused = handler_class(repo=REPO, targetpath=".ipython")
    with pytest.raises(web.HTTPError) as error:
        asyncio.run(refused.get())
    assert error.value.status_code == 400 and not refused.pulled
    allowed = handler_class(repo=REPO, targetPath="workshop")
    asyncio.run(allowed.get())
    assert allowed.pulled


@pytest.mark.parametrize(
    ("repo", "pulled"),
    [
        (REPO, True),  # into ~/workshop
        ("https://example.org/.ipython", False),  # the default target is the repository's last part
        ("https://example.org/repo/", False),  # for the API that clones, an empty one: the home itself
    ],
)
def test_without_a_targetpath_the_guard_checks_where_the_handler_would_pull(repo, pulled):
    handler = guarded()(repo=repo)
    if pulled:
        asyncio.run(handler.get())
    else:
        with pytest.raises(web.HTTPError, match="A link may only pull"):
            asyncio.run(handler.get())
    assert handler.pulled is pulled
