"""pophub's Jupyter server extension, in every event image: what a link may make a server do.

nbgitpuller (1.3.0, its newest release) clones into `targetpath`, or into the repository's last path
part, under the home, without looking at it. A link a participant is sent and clicks could then
write a repository into ~/.ipython (its startup files run in every kernel), ~/.jupyter or ~/.local,
or outside the home. Here, both of nbgitpuller's pages refuse such a target with a page that says
why; an ordinary folder of the home passes as before.
"""

from pathlib import PurePosixPath


def target_refusal(target):
    """Why nbgitpuller may not pull into `target`, a path under the home, or None."""
    parts = PurePosixPath(target).parts
    if parts and not PurePosixPath(target).is_absolute() and not any(p == ".." or p.startswith(".") for p in parts):
        return None
    return (
        f"This link asks to put a repository into {target!r}, which is hidden, empty or outside your home. "
        "A link may only pull into a visible folder of your home, such as 'workshop'; ask whoever sent it "
        "for one with such a targetpath."
    )


def guard(handler_class, default_target):
    """Wrap the handler's GET so that a refused target gets HTTP 400 before anything is cloned.

    `default_target(repo)` is where the handler itself pulls when the link names no targetpath.
    """
    from tornado import web

    original = handler_class.get

    async def get(self, *args, **kwargs):
        targetpath = self.get_argument("targetpath", None) or self.get_argument("targetPath", None)
        reason = target_refusal(targetpath or default_target(self.get_argument("repo", "")))
        if reason:
            raise web.HTTPError(400, reason)
        return await original(self, *args, **kwargs)

    handler_class.get = get


def _jupyter_server_extension_points():
    return [{"module": "pophub_server"}]


def _load_jupyter_server_extension(serverapp):
    try:
        from nbgitpuller import handlers
    except ImportError:
        return
    # The page strips the repository's trailing slashes before taking its last part; the API that
    # clones does not, so there `.../repo/` means the home itself.
    guard(handlers.UIHandler, lambda repo: repo.rstrip("/").split("/")[-1])
    guard(handlers.SyncHandler, lambda repo: repo.split("/")[-1])
    serverapp.log.info("pophub_server: nbgitpuller pulls only into visible folders of the home")
