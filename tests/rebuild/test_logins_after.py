"""Box B: the participant from box A logs in with the same password, finds their file and their
table, and the token they made on box A still works."""

import json

import requests
from conftest import HUB_URL, MARKER_USER, STATE

READ = """
import os, psycopg
with open(os.path.expanduser("~/rebuild-notes.txt")) as notes:
    print(notes.read())
with psycopg.connect() as connection:
    print(connection.execute("SELECT note FROM findings WHERE id = 1").fetchone()[0])
"""


def test_the_participant_finds_their_work(login):
    marker = json.loads((STATE / "marker.json").read_text())
    user = login(MARKER_USER)
    user.start_server()
    try:
        assert user.run_code(READ).split() == [marker["content"], marker["content"]]
    finally:
        user.stop_server()


def test_a_token_made_on_box_a_still_works(cafile):
    marker = json.loads((STATE / "marker.json").read_text())
    response = requests.get(
        f"{HUB_URL}/hub/api/user", headers={"Authorization": f"token {marker['token']}"},
        verify=cafile, timeout=30,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["name"] == MARKER_USER
