"""``tuner serve`` through a database outage: 503 with ``Retry-After`` on reads it cannot serve
and on writes (create, stop), never a traceback, the store unchanged by the writes refused, and
it serves again by itself, reads and writes, once the database is back."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from own_postgres import own_postgres
from server_fixtures import STUDY, create_study, serve

TOKEN = "outage-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
NEW = {"name": "during-outage", "task": "quadratic", "optimizers": ["sgd"], "trials": 1,
       "seeds": 1, "budget": 10}


def ask(url: str, body: dict | None = None, method: str | None = None
        ) -> tuple[int, dict, dict]:
    """GET ``url``, or send ``body`` (JSON) with the token: status, headers (lower-case
    names) and the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers=AUTH if method or body is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, headers, answer = response.status, response.headers, json.load(response)
    except urllib.error.HTTPError as error:
        status, headers, answer = error.code, error.headers, json.load(error)
    return status, {k.lower(): v for k, v in dict(headers).items()}, answer


def studies(base: str) -> dict[str, str]:
    """{name: status} of every study, as the server reads it now."""
    status, _, body = ask(base + "/api/studies")
    assert status == 200, body
    return {study["name"]: study["status"] for study in body["studies"]}


def test_serve_answers_503_while_the_database_is_away_and_recovers(tmp_path):
    with own_postgres() as database:
        create_study(database.url)
        server = serve(database.url, tmp_path / "serve.log", token=TOKEN)
        try:
            before = studies(server.base)
            database.stop()
            time.sleep(1.5)  # past the server's one-second memory of answers
            for path, body, method in (
                ("/api/studies", None, None),
                (f"/api/studies/{STUDY}", None, None),
                ("/api/studies", NEW, "POST"),
                (f"/api/studies/{STUDY}/stop", None, "POST"),
            ):
                status, headers, answer = ask(server.base + path, body, method)
                assert status == 503, (method, path, answer)
                assert headers.get("retry-after") == "5", (method, path, headers)
                text = json.dumps(answer)
                assert "unreachable" in text or "connect" in text, (method, path, answer)
            database.start()
            assert studies(server.base) == before  # nothing refused was written
            status, _, answer = ask(server.base + f"/api/studies/{STUDY}/stop", method="POST")
            assert status == 409, answer  # heard again: nobody runs the study to stop it
            status, _, answer = ask(server.base + "/api/studies", NEW, "POST")
            assert status == 201, answer
            assert studies(server.base) == {**before, NEW["name"]: "created"}
        finally:
            server.stop()
        assert "Traceback" not in server.output(), server.output()
