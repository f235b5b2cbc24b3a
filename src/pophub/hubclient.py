"""A small JupyterHub client that does what a participant's browser does: log in with the form,
start a server and wait for it, run a cell in a kernel over its websocket, stop the server. Every
request goes to the hub's public address over verified HTTPS.

The post-deploy check (pophub.verify), the end-to-end tests and the benchmark all use it. Whatever
the hub answers that a participant would see as a failure raises HubError, with a sentence that
says what was asked and what came back."""

import json
import socket
import time
import uuid
from contextlib import contextmanager
from urllib.parse import quote, urlsplit

import requests
import websocket


def resolve_localhost_names():
    """Resolve every name under .localhost to the loopback, as RFC 6761 asks and as browsers do
    (Chromium, Firefox) but Debian's resolver without nss-myhostname does not. A test box with
    per-user subdomains is reached at alice.pophub.localhost; other names are resolved as before."""
    if getattr(socket.getaddrinfo, "pophub_localhost", False):
        return
    system = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.lower().rstrip(".").endswith(".localhost"):
            host = "localhost"
        return system(host, *args, **kwargs)

    getaddrinfo.pophub_localhost = True
    socket.getaddrinfo = getaddrinfo


class HubError(Exception):
    """The hub or a user's server answered something other than what a participant needs."""


def execute_request(msg_id, code):
    """A Jupyter messaging protocol execute_request for `code`."""
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "pophub",
            "session": uuid.uuid4().hex,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "buffers": [],
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
    }


def collect_output(ws, msg_id, timeout):
    """What the cell printed, once the kernel is idle again; raises HubError if it raised."""
    output = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            output.append(msg["content"]["text"])
        elif kind == "error":
            raise HubError("the cell raised:\n" + "\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(output)
    raise HubError(f"no result within {timeout} s; output so far: {output!r}")


class Kernel:
    """A kernel on a user's server, reached over its websocket."""

    def __init__(self, kernel_id, ws):
        self.id, self.ws = kernel_id, ws

    def run(self, code, timeout=120):
        """Run `code` as one cell and return what it printed."""
        self.ws.settimeout(timeout)
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps(execute_request(msg_id, code)))
        return collect_output(self.ws, msg_id, timeout)


def _session(verify):
    session = requests.Session()
    session.verify = verify
    # Otherwise REQUESTS_CA_BUNDLE from the environment would override `verify`.
    session.trust_env = False
    return session


class HubClient:
    """One hub user, as their browser and their API token see the hub.

    `session` is the browser: it holds the login cookies and sends no token. API calls and calls to
    the user's server go through `token_session`, which sends the token and no cookies. Pass
    `token` to act with an existing one (a service's, say) instead of logging in."""

    def __init__(self, hub_url, name, cafile="", token=None, timeout=60):
        self.hub_url = hub_url.rstrip("/")
        self.name = name
        self.cafile = cafile
        self.verify = cafile or True
        self.timeout = timeout
        self.session = _session(self.verify)
        self.token_session = _session(self.verify)
        self.token = None
        self._server_url = None  # where the user's server answers, learned from the hub's model
        if token:
            self.use_token(token)

    def use_token(self, token):
        self.token = token
        self.token_session.headers["Authorization"] = f"token {token}"

    # --- logging in, as a browser does ------------------------------------------------------
    def post_login(self, password):
        """Submit the login form with its XSRF token; return the hub's answer (302 when it worked)."""
        form = self.session.get(f"{self.hub_url}/hub/login", timeout=self.timeout)
        if form.status_code != 200:
            raise HubError(f"the login page answered {form.status_code}")
        return self.session.post(
            f"{self.hub_url}/hub/login",
            data={"username": self.name, "password": password, "_xsrf": self.hub_xsrf()},
            allow_redirects=False,
            timeout=self.timeout,
        )

    def hub_xsrf(self):
        """The hub's XSRF cookie. With per-user subdomains a browser that opened its server also
        holds that server's, under the same name and another host."""
        host = urlsplit(self.hub_url).hostname
        for cookie in self.session.cookies:
            # http.cookiejar files a host without a dot (localhost) under <host>.local.
            if cookie.name == "_xsrf" and cookie.domain.lstrip(".") in (host, f"{host}.local"):
                return cookie.value
        return None

    def login(self, password, note="pophub", expires_in=3600):
        """Log in, then make an API token with the browser session as the token page does."""
        response = self.post_login(password)
        if response.status_code != 302:
            raise HubError(f"the login of {self.name} answered {response.status_code}")
        self.make_token(note, expires_in)

    def make_token(self, note, expires_in):
        made = self.session.post(
            f"{self.hub_url}/hub/api/users/{quote(self.name)}/tokens",
            json={"note": note, "expires_in": expires_in},
            headers={"X-XSRFToken": self.hub_xsrf()},
            timeout=self.timeout,
        )
        if made.status_code != 201:
            raise HubError(f"making a token for {self.name} answered {made.status_code}: {made.text[:300]}")
        self.use_token(made.json()["token"])

    # --- the hub's API, with the token --------------------------------------------------------
    def api(self, method, path, **kwargs):
        """A request to the hub's REST API at /hub/api`path`."""
        return self.token_session.request(method, f"{self.hub_url}/hub/api{path}", timeout=self.timeout, **kwargs)

    def model(self):
        """The hub's model of this user."""
        response = self.api("GET", f"/users/{quote(self.name)}")
        if response.status_code != 200:
            raise HubError(f"reading the user {self.name} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def server_model(self):
        """The hub's model of the user's default server, None when there is none."""
        return self.model()["servers"].get("")

    def request_start(self, options=None):
        """Ask the hub to start the user's server; the answer as it came (429: too many starts at once)."""
        return self.api("POST", f"/users/{quote(self.name)}/server", json=options)

    def start_server(self, timeout=300, options=None):
        """Start the user's server and wait until the hub says it is ready."""
        response = self.request_start(options)
        if response.status_code not in (201, 202):
            raise HubError(f"starting the server answered {response.status_code}: {response.text[:300]}")
        self.wait(lambda server: server and server.get("ready"), timeout, "ready")

    def follow_progress(self, timeout):
        """Follow the spawn's progress event stream, as the spawn page in a browser does, until the
        server is ready; return the messages the page showed."""
        messages = []
        deadline = time.monotonic() + timeout
        with self.token_session.get(
            f"{self.hub_url}/hub/api/users/{quote(self.name)}/server/progress", stream=True, timeout=max(5, timeout)
        ) as stream:
            if stream.status_code != 200:
                raise HubError(f"the progress stream answered {stream.status_code}")
            for line in stream.iter_lines(decode_unicode=True):
                if time.monotonic() > deadline:
                    break
                if not line or not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                messages.append(event.get("message", ""))
                if event.get("ready"):
                    return messages
                if event.get("failed"):
                    raise HubError(f"the spawn failed: {event.get('message', '')[:200]}")
        # The stream ends without an event when the server was already up; check the model.
        if not (self.server_model() or {}).get("ready"):
            raise HubError("the server was not ready when the progress stream ended")
        return messages

    def stop_server(self, timeout=120):
        """Stop the user's server and wait until the hub no longer lists it."""
        response = self.api("DELETE", f"/users/{quote(self.name)}/server")
        if response.status_code not in (202, 204):
            raise HubError(f"stopping the server answered {response.status_code}")
        self.wait(lambda server: not server, timeout, "stopped")

    def wait(self, done, timeout, what):
        """Poll the user's server model until `done(model)`; `what` names the state in the error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.server_model()):
                return
            time.sleep(0.5)
        raise HubError(f"the server of {self.name} was not {what} within {timeout} s")

    # --- the user's server ------------------------------------------------------------------------
    def server(self, method, path, **kwargs):
        """A request to the Jupyter API of this user's server."""
        return self.server_of(self.name, method, path, **kwargs)

    def server_of(self, owner, method, path, **kwargs):
        """A request to the Jupyter API of `owner`'s server, with this user's token."""
        url = f"{self.server_url(owner)}api{path}"
        return self.token_session.request(method, url, timeout=self.timeout, **kwargs)

    def server_url(self, owner=None):
        """Where `owner`'s server (this user's by default) answers, ending in /: under the hub's
        name, or with per-user subdomains under its own, as the hub's model of this user says."""
        owner = owner or self.name
        if owner == self.name:
            if self._server_url is None:
                url = (self.server_model() or {}).get("url", "")
                if url.startswith("https://"):
                    self._server_url = url
                elif url:
                    self._server_url = f"{self.hub_url}{url}"
            if self._server_url:
                return self._server_url
        return f"{self.hub_url}/user/{quote(owner)}/"

    @contextmanager
    def kernel(self, timeout=60):
        """A new kernel on the user's server with its websocket open; shut down again on exit."""
        started = self.server("POST", "/kernels", json={"name": "python3"})
        if started.status_code != 201:
            raise HubError(f"starting a kernel answered {started.status_code}: {started.text[:300]}")
        kernel_id = started.json()["id"]
        try:
            ws_url = self.server_url().replace("https://", "wss://", 1) + f"api/kernels/{kernel_id}/channels"
            ws = websocket.create_connection(
                ws_url,
                header=[f"Authorization: token {self.token}"],
                sslopt={"ca_certs": self.cafile} if self.cafile else {},
                timeout=timeout,
            )
            try:
                yield Kernel(kernel_id, ws)
            finally:
                ws.close()
        finally:
            self.server("DELETE", f"/kernels/{kernel_id}")

    def run_code(self, code, timeout=120):
        """Start a kernel, run `code` in it over the websocket, and return what it printed."""
        with self.kernel(timeout) as kernel:
            return kernel.run(code, timeout)
