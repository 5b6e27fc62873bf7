"""``tuner serve`` through a database outage: 503 with ``Retry-After`` on reads it cannot serve,
never a traceback, and it serves again by itself once the database is back."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from own_postgres import own_postgres
from server_fixtures import STUDY, create_study, serve


def get(url: str) -> tuple[int, dict, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.load(error)


def test_serve_answers_503_while_the_database_is_away_and_recovers(tmp_path):
    with own_postgres() as database:
        create_study(database.url)
        server = serve(database.url, tmp_path / "serve.log")
        try:
            assert get(server.base + "/api/studies")[0] == 200
            database.stop()
            time.sleep(1.5)  # past the server's one-second memory of answers
            for path in ("/api/studies", f"/api/studies/{STUDY}"):
                status, headers, body = get(server.base + path)
                assert status == 503, (path, body)
                assert {k.lower(): v for k, v in headers.items()}.get("retry-after") == "5"
                assert "unreachable" in json.dumps(body) or "connect" in json.dumps(body)
            database.start()
            status, _, body = get(server.base + "/api/studies")
            assert status == 200 and body["studies"][0]["name"] == STUDY
        finally:
            server.stop()
        assert "Traceback" not in server.output(), server.output()
