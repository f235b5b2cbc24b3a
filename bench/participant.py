"""One simulated participant: what a browser does, over verified HTTPS through nginx, with each
phase timed. Phases: login (form with its _xsrf), spawn (start request until the hub says ready),
kernel (start one and open its websocket), cell (run one and read its result), stop."""

import importlib.util
import json
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import requests
import websocket

# The kernel protocol helpers of the organizers' post-deploy check (files/pophub-verify).
_VERIFY_PATH = Path(__file__).resolve().parents[1] / "files/pophub-verify"
VERIFY = importlib.util.module_from_spec(importlib.util.spec_from_loader("pophub_verify", loader=None))
exec(compile(_VERIFY_PATH.read_text(), str(_VERIFY_PATH), "exec"), VERIFY.__dict__)

PHASES = ["login", "spawn", "kernel", "cell", "stop"]


class PhaseFailed(Exception):
    def __init__(self, phase, message):
        super().__init__(f"{phase}: {message}")
        self.phase = phase


class Participant:
    def __init__(self, hub_url, name, cafile, timeout=300):
        self.hub_url = hub_url
        self.name = name
        self.cafile = cafile
        self.timeout = timeout
        self.session = requests.Session()
        self.session.verify = cafile
        # REQUESTS_CA_BUNDLE from the environment would otherwise replace the box's certificate.
        self.session.trust_env = False
        self.token = None
        self.times = {}
        self.throttled = 0  # 429 answers to a start request (the hub's concurrent spawn limit)

    # --- phases ----------------------------------------------------------------------------
    def login(self, password):
        with self._phase("login"):
            form = self.session.get(f"{self.hub_url}/hub/login", timeout=60)
            if form.status_code != 200:
                raise PhaseFailed("login", f"the login page answered {form.status_code}")
            response = self.session.post(
                f"{self.hub_url}/hub/login",
                data={"username": self.name, "password": password, "_xsrf": self.session.cookies.get("_xsrf")},
                allow_redirects=False,
                timeout=60,
            )
            if response.status_code != 302:
                raise PhaseFailed("login", f"the login form answered {response.status_code}")
        # A token for the API calls, made with the browser session as the token page does; not
        # part of what a participant waits for, so outside the timed phase.
        made = self.session.post(
            f"{self.hub_url}/hub/api/users/{quote(self.name)}/tokens",
            json={"note": "pophub bench", "expires_in": 7200},
            headers={"X-XSRFToken": self.session.cookies.get("_xsrf")},
            timeout=60,
        )
        if made.status_code != 201:
            raise PhaseFailed("login", f"making a token answered {made.status_code}: {made.text[:200]}")
        self.token = made.json()["token"]
        self.session.headers["Authorization"] = f"token {self.token}"

    def spawn(self):
        with self._phase("spawn"):
            deadline = time.monotonic() + self.timeout
            while True:
                response = self.api("POST", "/server")
                if response.status_code != 429:
                    break
                # Over the hub's concurrent spawn limit: a participant clicks Start again a bit later.
                self.throttled += 1
                if time.monotonic() > deadline:
                    raise PhaseFailed("spawn", "the hub kept answering 429 (too many starts at once)")
                time.sleep(2)
            if response.status_code not in (201, 202):
                raise PhaseFailed("spawn", f"the start request answered {response.status_code}: {response.text[:200]}")
            self._wait_ready(deadline)

    def _wait_ready(self, deadline):
        """Follow the progress event stream, as the spawn page in a browser does."""
        with self.session.get(
            f"{self.hub_url}/hub/api/users/{quote(self.name)}/server/progress",
            stream=True,
            timeout=max(5, deadline - time.monotonic()),
        ) as stream:
            if stream.status_code != 200:
                raise PhaseFailed("spawn", f"the progress stream answered {stream.status_code}")
            for line in stream.iter_lines(decode_unicode=True):
                if time.monotonic() > deadline:
                    break
                if not line or not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("ready"):
                    return
                if event.get("failed"):
                    raise PhaseFailed("spawn", f"the spawn failed: {event.get('message', '')[:200]}")
        # The stream ends without an event when the server was already up; check the model.
        if not self.server_model().get("ready"):
            raise PhaseFailed("spawn", "the server was not ready when the progress stream ended")

    def run_cell(self, code="print(6 * 7)", expect="42"):
        """Start a kernel (phase kernel: until its websocket is open), then run one cell (phase cell)."""
        api = f"{self.hub_url}/user/{quote(self.name)}/api"
        with self._phase("kernel"):
            kernel = self.session.post(f"{api}/kernels", json={"name": "python3"}, timeout=120)
            if kernel.status_code != 201:
                raise PhaseFailed("kernel", f"starting a kernel answered {kernel.status_code}: {kernel.text[:200]}")
            kernel_id = kernel.json()["id"]
            ws_url = self.hub_url.replace("https://", "wss://", 1) + f"/user/{quote(self.name)}/api/kernels/{kernel_id}/channels"
            try:
                ws = websocket.create_connection(
                    ws_url,
                    header=[f"Authorization: token {self.token}"],
                    sslopt={"ca_certs": self.cafile},
                    timeout=120,
                )
            except (OSError, websocket.WebSocketException) as error:
                raise PhaseFailed("kernel", f"the kernel's websocket: {error}") from error
        try:
            with self._phase("cell"):
                msg_id = uuid.uuid4().hex
                ws.send(json.dumps(VERIFY.execute_request(msg_id, code)))
                try:
                    output = VERIFY.collect_output(ws, msg_id, 120)
                except (VERIFY.CheckFailed, OSError, websocket.WebSocketException) as error:
                    raise PhaseFailed("cell", str(error)) from error
                if output.strip() != expect:
                    raise PhaseFailed("cell", f"the cell printed {output!r}, not {expect!r}")
        finally:
            ws.close()
            self.session.delete(f"{api}/kernels/{kernel_id}", timeout=60)

    def stop(self):
        with self._phase("stop"):
            response = self.api("DELETE", "/server")
            if response.status_code not in (202, 204):
                raise PhaseFailed("stop", f"the stop request answered {response.status_code}")
            deadline = time.monotonic() + 180
            while self.server_model():
                if time.monotonic() > deadline:
                    raise PhaseFailed("stop", "the server was still there after 180 s")
                time.sleep(0.5)

    # --- helpers ---------------------------------------------------------------------------
    def api(self, method, path, **kwargs):
        return self.session.request(
            method, f"{self.hub_url}/hub/api/users/{quote(self.name)}{path}", timeout=120, **kwargs
        )

    def server_model(self):
        response = self.api("GET", "")
        response.raise_for_status()
        return response.json()["servers"].get("") or {}

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
