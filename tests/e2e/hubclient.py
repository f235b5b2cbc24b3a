"""A small JupyterHub client that does what a participant's browser does: log in, start a server,
run code in a kernel. Every request goes through nginx over verified HTTPS."""

import importlib.util
import time
from pathlib import Path
from urllib.parse import quote

import requests

# The kernel protocol helpers of the organizers' post-deploy check (files/pophub-verify).
_VERIFY_PATH = Path(__file__).resolve().parents[2] / "files/pophub-verify"
VERIFY = importlib.util.module_from_spec(importlib.util.spec_from_loader("pophub_verify", loader=None))
exec(compile(_VERIFY_PATH.read_text(), str(_VERIFY_PATH), "exec"), VERIFY.__dict__)


class HubUser:
    def __init__(self, hub_url, name, cafile):
        self.hub_url = hub_url
        self.name = name
        self.cafile = cafile
        self.session = requests.Session()
        self.session.verify = cafile
        # Otherwise REQUESTS_CA_BUNDLE from the environment would override the box's certificate.
        self.session.trust_env = False
        self.token = None

    # --- the hub ---------------------------------------------------------------------------
    def post_login(self, password):
        """Submit the login form as a browser does (with its XSRF token); return the response."""
        form = self.session.get(f"{self.hub_url}/hub/login", timeout=30)
        form.raise_for_status()
        return self.session.post(
            f"{self.hub_url}/hub/login",
            data={"username": self.name, "password": password, "_xsrf": self.session.cookies.get("_xsrf")},
            allow_redirects=False,
            timeout=30,
        )

    def login(self, password):
        response = self.post_login(password)
        assert response.status_code == 302, f"login of {self.name} answered {response.status_code}"
        # A token for API calls, made with the browser session like the token page does.
        made = self.session.post(
            f"{self.hub_url}/hub/api/users/{quote(self.name)}/tokens",
            json={"note": "pophub e2e", "expires_in": 3600},
            headers={"X-XSRFToken": self.session.cookies.get("_xsrf")},
            timeout=30,
        )
        assert made.status_code == 201, made.text
        self.token = made.json()["token"]

    def api(self, method, path, **kwargs):
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(
            method, f"{self.hub_url}/hub/api{path}", headers=headers, verify=self.cafile, timeout=60, **kwargs
        )

    def model(self):
        response = self.api("GET", f"/users/{quote(self.name)}")
        response.raise_for_status()
        return response.json()

    def start_server(self, timeout=300, options=None):
        response = self.api("POST", f"/users/{quote(self.name)}/server", json=options)
        assert response.status_code in (201, 202), f"start answered {response.status_code}: {response.text}"
        self._wait(lambda server: server and server.get("ready"), timeout, "ready")

    def stop_server(self, timeout=120):
        response = self.api("DELETE", f"/users/{quote(self.name)}/server")
        assert response.status_code in (202, 204), f"stop answered {response.status_code}: {response.text}"
        self._wait(lambda server: not server, timeout, "stopped")

    def _wait(self, done, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.model()["servers"].get("")):
                return
            time.sleep(0.5)
        raise AssertionError(f"server of {self.name} not {what} within {timeout} s: {self.model()}")

    # --- the user's server -----------------------------------------------------------------
    def server(self, method, path, **kwargs):
        return self.server_of(self.name, method, path, **kwargs)

    def server_of(self, owner, method, path, **kwargs):
        """A request to the Jupyter API of `owner`'s server, with this user's token."""
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(
            method,
            f"{self.hub_url}/user/{quote(owner)}/api{path}",
            headers=headers,
            verify=self.cafile,
            timeout=60,
            **kwargs,
        )

    def run_code(self, code, timeout=120):
        """Start a kernel, run `code` in it over the websocket, and return what it printed."""
        session = requests.Session()
        session.trust_env = False
        session.headers["Authorization"] = f"token {self.token}"
        return VERIFY.run_code(session, self.hub_url, self.name, self.cafile, code, timeout)
