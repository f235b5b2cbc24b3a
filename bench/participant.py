"""One simulated participant: what a browser does, over verified HTTPS through nginx, with each
phase timed. Phases: login (form with its _xsrf), spawn (start request until the hub says ready),
kernel (start one and open its websocket), cell (run one and read its result), stop. The requests
themselves are pophub.hubclient's, the same the post-deploy check and the end-to-end tests make."""

import time
from contextlib import ExitStack

import requests
import websocket

from pophub.hubclient import HubClient, HubError

PHASES = ["login", "spawn", "kernel", "cell", "stop"]


class PhaseFailed(Exception):
    def __init__(self, phase, message):
        super().__init__(f"{phase}: {message}")
        self.phase = phase


class Participant:
    def __init__(self, hub_url, name, cafile, timeout=300):
        # Under load a start request can take a while to answer: twice the client's usual wait.
        self.client = HubClient(hub_url, name, cafile, timeout=120)
        self.name = name
        self.timeout = timeout
        self.times = {}
        self.throttled = 0  # 429 answers to a start request (the hub's concurrent spawn limit)

    @property
    def token(self):
        return self.client.token

    # --- phases ----------------------------------------------------------------------------
    def login(self, password):
        with self._phase("login"):
            response = self.client.post_login(password)
            if response.status_code != 302:
                raise PhaseFailed("login", f"the login form answered {response.status_code}")
        # A token for the API calls, made with the browser session as the token page does; not
        # part of what a participant waits for, so outside the timed phase.
        try:
            self.client.make_token("pophub bench", 7200)
        except (HubError, requests.RequestException) as error:
            raise PhaseFailed("login", str(error)) from error

    def mistype(self, wrong_password):
        """A wrong password in the login form: the hub's answer (the form again, 403, when all is well)."""
        with self._phase("mistype"):
            return self.client.post_login(wrong_password)

    def spawn(self):
        with self._phase("spawn"):
            deadline = time.monotonic() + self.timeout
            while True:
                response = self.client.request_start()
                if response.status_code != 429:
                    break
                # Over the hub's concurrent spawn limit: a participant clicks Start again a bit later.
                self.throttled += 1
                if time.monotonic() > deadline:
                    raise PhaseFailed("spawn", "the hub kept answering 429 (too many starts at once)")
                time.sleep(2)
            if response.status_code not in (201, 202):
                raise PhaseFailed("spawn", f"the start request answered {response.status_code}: {response.text[:200]}")
            self.client.follow_progress(max(0, deadline - time.monotonic()))

    def run_cell(self, code="print(6 * 7)", expect="42"):
        """Start a kernel (phase kernel: until its websocket is open), then run one cell (phase cell)."""
        with ExitStack() as kernel_open:
            with self._phase("kernel"):
                kernel = kernel_open.enter_context(self.client.kernel(timeout=120))
            with self._phase("cell"):
                output = kernel.run(code, timeout=120)
                if output.strip() != expect:
                    raise PhaseFailed("cell", f"the cell printed {output!r}, not {expect!r}")

    def stop(self):
        with self._phase("stop"):
            self.client.stop_server(timeout=180)

    # --- helpers ---------------------------------------------------------------------------
    def server_model(self):
        return self.client.server_model() or {}

    def _phase(self, phase):
        return _Timed(self, phase)


class _Timed:
    """Records a phase's duration in the participant's times; wraps any error in PhaseFailed."""

    def __init__(self, participant, phase):
        self.participant, self.phase = participant, phase

    def __enter__(self):
        self.started = time.monotonic()

    def __exit__(self, kind, error, _traceback):
        if kind is None:
            self.participant.times[self.phase] = time.monotonic() - self.started
            return False
        if isinstance(error, PhaseFailed):
            return False
        if isinstance(error, HubError):
            raise PhaseFailed(self.phase, str(error)) from error
        if isinstance(error, (OSError, requests.RequestException, websocket.WebSocketException, ValueError)):
            raise PhaseFailed(self.phase, f"{type(error).__name__}: {error}") from error
        return False


def session_flow(hub_url, name, password, cafile, stop=True):
    """A participant's whole session: {phase: seconds}, first_result, and error (None when it all
    worked). first_result is what a participant waits from clicking Start to their first cell's
    result: spawn + kernel + cell."""
    participant = Participant(hub_url, name, cafile)
    error = None
    try:
        participant.login(password)
        participant.spawn()
        participant.run_cell()
        if stop:
            participant.stop()
    except PhaseFailed as failed:
        error = {"phase": failed.phase, "message": str(failed)[:300]}
    times = dict(participant.times)
    if all(phase in times for phase in ("spawn", "kernel", "cell")):
        times["first_result"] = times["spawn"] + times["kernel"] + times["cell"]
    return {"user": name, "times": times, "error": error, "throttled": participant.throttled}
