"""Fuzzing the API from its own OpenAPI schema (hypothesis): no 5xx, every error one JSON line.

Every operation in ``/api/openapi.json`` is called with generated path and query parameters
(values of the declared type, and values of any other) and, for writes, generated bodies (the
declared fields with values of any JSON type, plus unknown ones), with the token. 40 examples
per operation: about 30 s in all.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_fixtures import finished_sqlite
from starlette.testclient import TestClient

from tuner.server import create_app

TOKEN = "fuzz-token"
EXAMPLES_PER_OPERATION = 40  # about 30 s for the whole schema on this machine
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
NUMBERS = st.integers() | st.floats(allow_nan=False, allow_infinity=False)  # what JSON can say
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = finished_sqlite(tmp_path_factory.mktemp("fuzz"))
    with TestClient(create_app(url, token=TOKEN)) as test_client:
        yield test_client


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    from tuner.server.app import openapi_document

    schema = openapi_document()
    found = [
        (path, method, operation)
        for path, methods in sorted(schema["paths"].items())
        for method, operation in sorted(methods.items())
    ]
    return sorted(found, key=lambda item: item[1] == "delete")  # deletes last: reads see data


def value_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value of the declared type, or of another (the server must cope with both)."""
    declared: st.SearchStrategy[Any]
    if schema.get("type") == "integer":
        declared = st.integers(min_value=-(2**70), max_value=2**70) | st.integers(-3, 600)
    elif "enum" in schema:
        declared = st.sampled_from(schema["enum"])
    else:
        declared = TEXT | st.sampled_from(
            ["tiny", "adam", "adam,sgd", "2%", "1n", "quadratic", "1"])
    return declared | TEXT


@st.composite
def requests(draw: st.DrawFn, path: str, operation: dict[str, Any]) -> dict[str, Any]:
    url, query = path, {}
    for parameter in operation.get("parameters", []):
        value = draw(value_for(parameter.get("schema", {})))
        if parameter["in"] == "path":
            text = str(value) if parameter["schema"].get("type") != "integer" else str(
                abs(value) if isinstance(value, int) else value)
            url = url.replace("{" + parameter["name"] + "}",
                              urllib.parse.quote(text, safe="") or "x")
        elif draw(st.booleans()):
            query[parameter["name"]] = str(value)
    body = None
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is not None:
        fields = list(content["schema"].get("properties", {}))
        chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields)))
        body = {name: draw(JSON_VALUES) for name in chosen}
        if draw(st.booleans()):
            body = draw(JSON_VALUES)
    return {"url": url, "params": query, "json": body}


OPERATIONS = operations()


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS,
                         ids=[f"{m.upper()} {p}" for p, m, _ in OPERATIONS])
def test_no_server_errors_and_json_errors(
    client: TestClient, path: str, method: str, operation: dict[str, Any]
) -> None:
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(request=requests(path, operation))
    def check(request: dict[str, Any]) -> None:
        answer = client.request(
            method.upper(), request["url"], params=request["params"], json=request["json"],
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code < 500, (request, answer.text)
        if answer.status_code >= 400:
            body = answer.json()
            assert list(body) == ["error"] and isinstance(body["error"], str), body
            assert "\n" not in body["error"] and "Traceback" not in body["error"]

    check()


def test_the_fuzzed_schema_covers_reads_and_writes() -> None:
    methods = {(path, method) for path, method, _ in OPERATIONS}
    assert ("/api/studies", "post") in methods and ("/api/studies/{name}", "delete") in methods
    assert ("/api/studies/{name}/note", "put") in methods
    assert ("/api/tasks/{task_id}/optimizers/{optimizer}", "get") in methods
    assert len(methods) >= 22
