"""A local stand-in for GitHub's OAuth and REST endpoints, for end-to-end login tests.

GitHub itself is out of reach of the test machines, so this speaks the part of its protocol that
OAuthenticator's GitHubOAuthenticator uses when `github_url` points at a GitHub Enterprise address:
the authorization page, the code-for-token exchange, /api/v3/user, /api/v3/user/teams, and the
organization and team membership checks (204 for a member, 404 otherwise). Standard library only,
so it runs with the box's own python3.

    python3 fake_github.py --port 19401 --directory directory.json

directory.json: {"users": {"alice": {"orgs": ["school"], "teams": ["school:tas"]}, ...}}
"""

import argparse
import html
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse


class Directory:
    def __init__(self, users):
        self.users = users
        self.codes = {}  # authorization code -> login
        self.tokens = {}  # access token -> login
        self.lock = threading.Lock()

    def issue_code(self, login):
        code = secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = login
        return code

    def redeem(self, code):
        with self.lock:
            login = self.codes.pop(code, None)  # codes are single-use, as on GitHub
            if login is None:
                return None
            token = secrets.token_urlsafe(24)
            self.tokens[token] = login
            return token

    def login_for(self, authorization):
        scheme, _, token = (authorization or "").partition(" ")
        return self.tokens.get(token) if scheme.lower() in ("bearer", "token") else None


class Handler(BaseHTTPRequestHandler):
    directory: Directory

    # --- the browser's side ------------------------------------------------------------------
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/login/oauth/authorize":
            return self.authorize_page(parse_qs(url.query))
        if url.path.startswith("/api/v3/"):
            return self.api(url.path[len("/api/v3") :])
        self.reply(404, {"message": "Not Found"})

    def do_POST(self):
        url = urlparse(self.path)
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        if url.path == "/login/oauth/authorize":
            return self.sign_in(parse_qs(url.query), form)
        if url.path == "/login/oauth/access_token":
            return self.access_token(form)
        self.reply(404, {"message": "Not Found"})

    def authorize_page(self, query):
        action = html.escape(self.path, quote=True)
        page = (
            f"<form method='post' action='{action}'>Sign in to GitHub to continue to "
            f"{html.escape(query.get('client_id', ['?'])[0])}: <input name='login'>"
            "<button>Authorize</button></form>"
        )
        self.reply(200, page, "text/html")

    def sign_in(self, query, form):
        login = form.get("login", [""])[0]
        if login not in self.directory.users:
            return self.reply(200, "Incorrect username or password.", "text/html")
        target = query["redirect_uri"][0]
        params = urlencode({"code": self.directory.issue_code(login), "state": query.get("state", [""])[0]})
        self.send_response(302)
        self.send_header("Location", f"{target}{'&' if '?' in target else '?'}{params}")
        self.end_headers()

    # --- the hub's side ----------------------------------------------------------------------
    def access_token(self, form):
        token = self.directory.redeem(form.get("code", [""])[0])
        if token is None:
            return self.reply(200, {"error": "bad_verification_code", "error_description": "The code is incorrect."})
        self.reply(200, {"access_token": token, "token_type": "bearer", "scope": "read:org,user:email"})

    def api(self, path):
        login = self.directory.login_for(self.headers.get("Authorization"))
        if login is None:
            return self.reply(401, {"message": "Requires authentication"})
        me = self.directory.users[login]
        parts = path.strip("/").split("/")
        if parts == ["user"]:
            return self.reply(200, {"login": login, "id": abs(hash(login)) % 10**8, "name": login, "email": None})
        if parts == ["user", "teams"]:
            teams = [team.split(":", 1) for team in me.get("teams", [])]
            return self.reply(200, [{"slug": slug, "organization": {"login": org}} for org, slug in teams])
        if len(parts) == 4 and parts[0] == "orgs" and parts[2] == "members":
            member = self.directory.users.get(parts[3], {})
            return self.reply(204 if parts[1] in member.get("orgs", []) else 404, None)
        if len(parts) == 6 and parts[0] == "orgs" and parts[2] == "teams" and parts[4] == "members":
            member = self.directory.users.get(parts[5], {})
            return self.reply(204 if f"{parts[1]}:{parts[3]}" in member.get("teams", []) else 404, None)
        self.reply(404, {"message": "Not Found"})

    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        if body is None:
            self.end_headers()
            return
        data = (json.dumps(body) if content_type == "application/json" else body).encode()
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=19401)
    parser.add_argument("--directory", required=True, help="JSON file of users, orgs and teams")
    args = parser.parse_args()
    with open(args.directory) as f:
        Handler.directory = Directory(json.load(f)["users"])
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
