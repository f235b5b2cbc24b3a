"""The whole box, driven as a participant would: over HTTPS through nginx, with a real login,
a real container spawned by DockerSpawner, and a real query to PostGIS."""

import uuid

from conftest import SETTINGS, box_exec, server_processes, user_containers

from pophub.hubclient import HubClient


def test_https_login_with_the_event_password(hub_user, hub_url, cafile):
    user = hub_user(f"e2e-{uuid.uuid4().hex[:8]}")
    me = user.api("GET", "/user").json()
    assert me["name"] == user.name
    assert me["admin"] is False


def test_a_wrong_password_is_refused(hub_url, cafile):
    user = HubClient(hub_url, "e2e-mallory", cafile)
    response = user.post_login("not-the-event-password")
    assert response.status_code == 403
    logged_in = [cookie for cookie in user.session.cookies if cookie.name.endswith("jupyterhub-hub-login")]
    assert "jupyterhub-session-id" not in response.cookies or not logged_in


def test_admins_need_the_admin_password(hub_user, hub_url, cafile, settings):
    admin = settings["jupyterhub_admin_users"][0]
    refused = HubClient(hub_url, admin, cafile).post_login(settings["jupyterhub_shared_password"])
    assert refused.status_code == 403, "an admin name logged in with the participants' password"
    user = hub_user(admin, settings["jupyterhub_admin_password"])
    assert user.api("GET", "/user").json()["admin"] is True


def test_the_server_is_a_container_on_the_user_network(running_server):
    status = running_server.server("GET", "/status")
    assert status.status_code == 200, status.text
    (inspect,) = user_containers(running_server.name)
    assert inspect["State"]["Running"] is True
    assert list(inspect["NetworkSettings"]["Networks"]) == ["pophub-users"]
    processes = server_processes(inspect["Id"])
    assert processes and all(uids == ["1000"] * 4 and caps == 0 for uids, caps, _ in processes), processes
    assert "no-new-privileges" in inspect["HostConfig"]["SecurityOpt"]


def test_a_kernel_reaches_postgis_with_the_injected_credentials(running_server):
    code = (
        "import os, psycopg\n"
        "assert os.environ['PGPASSWORD'] and os.environ['PGHOST']\n"
        "with psycopg.connect('') as conn:\n"
        "    print(conn.execute('SELECT postgis_full_version()').fetchone()[0])\n"
    )
    output = running_server.run_code(code)
    assert output.startswith('POSTGIS="3'), output


def test_the_home_survives_a_server_restart(running_server):
    token = uuid.uuid4().hex
    saved = running_server.server(
        "PUT", "/contents/persist.txt", json={"type": "file", "format": "text", "content": token}
    )
    assert saved.status_code in (200, 201), saved.text
    running_server.stop_server()
    assert user_containers(running_server.name) == [], "a stopped server's container is removed; its volume stays"
    running_server.start_server()
    read = running_server.server("GET", "/contents/persist.txt")
    assert read.status_code == 200, read.text
    assert read.json()["content"] == token


def test_plain_http_is_sent_to_https():
    headers = box_exec("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "http://localhost/hub/")
    code, location = headers.split(" ", 1)
    assert code == "301"
    assert location.startswith(f"https://{SETTINGS['pophub_domain']}")


def test_the_self_signed_box_sends_no_hsts(hub_url, cafile):
    # A browser must not be pinned to HTTPS for a name whose certificate it was only asked to accept.
    import requests

    response = requests.get(f"{hub_url}/hub/login", verify=cafile, timeout=30)
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["Server"] == "nginx", "nginx must not tell its version"
