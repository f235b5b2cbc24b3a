"""A small JupyterHub client that does what a participant's browser does: log in, start a server,
run code in a kernel. Every request goes through nginx over verified HTTPS."""

import json
import time
import uuid
from urllib.parse import quote

import requests
import websocket


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
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(
            method,
            f"{self.hub_url}/user/{quote(self.name)}/api{path}",
            headers=headers,
            verify=self.cafile,
            timeout=60,
            **kwargs,
        )

    def run_code(self, code, timeout=120):
        """Start a kernel, run `code` in it over the websocket, and return what it printed."""
        kernel = self.server("POST", "/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        kernel_id = kernel.json()["id"]
        ws_url = self.hub_url.replace("https://", "wss://") + f"/user/{quote(self.name)}/api/kernels/{kernel_id}/channels"
        ws = websocket.create_connection(
            ws_url,
            header=[f"Authorization: token {self.token}"],
            sslopt={"ca_certs": self.cafile},
            timeout=timeout,
        )
        try:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps(_execute_request(msg_id, code)))
            return _collect_output(ws, msg_id, timeout)
        finally:
            ws.close()
            self.server("DELETE", f"/kernels/{kernel_id}")


def _execute_request(msg_id, code):
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "pophub-e2e",
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


def _collect_output(ws, msg_id, timeout):
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
            raise AssertionError("kernel raised:\n" + "\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(output)
    raise AssertionError(f"no result within {timeout} s; output so far: {output!r}")
