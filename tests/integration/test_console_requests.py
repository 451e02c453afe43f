"""No request is a 500: every path, query and form parameter of every console route (the API's,
as its OpenAPI document lists them, and the pages' and forms', which it leaves out), given
hostile values on SQLite and PostgreSQL, is answered with a 4xx or a page, never a server
error; and the replay rate is checked at every door of the console."""

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.params import Form
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from support.console import OPERATOR, basic, in_process
from support.letters import new_letter
from worker.store import open_store
from worker.store.letters import LetterFilter

# Values the red team sent, and their kin: past int64, unicode digits, NUL, too long, not dates.
HOSTILE = [
    "99999999999999999999",
    str(2**63),
    str(2**63 - 1),
    "-1",
    "0",
    "²",
    "١٢٣",
    "①",
    "\x00",
    "a\x00b",
    "a" * 60_000,
    "%" * 5_000,
    "notadate",
    "2026-13-45",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+14:00",
    "1e30",
    "inf",
    "nan",
    "",
    " ",
]
# Forms the console parses by hand (POST /actions/preview): each field is probed like the others.
HAND_READ_FORMS = {
    "/actions/preview": {
        "fields": ["reason", "type", "id", "group", "letter", "text", "since", "until", "status", "rate"],
        "base": {"action": "replay", "scope": "matching", "all": "true"},
    },
}


def targets(app: FastAPI) -> list[tuple[str, str, str, str]]:
    """(method, path, where, name) for every parameter of every route, schema or not."""
    found = []
    for path, route in _routes(app):
        for method in sorted(route.methods or ()):
            for dependant in _every(route.dependant):
                found += [(method, path, "path", p.name) for p in dependant.path_params]
                found += [(method, path, "query", p.name) for p in dependant.query_params]
                found += [
                    (method, path, "form", p.name)
                    for p in dependant.body_params
                    if isinstance(p.field_info, Form) and path != "/login"
                ]
    for path, form in HAND_READ_FORMS.items():
        found += [("POST", path, "form", name) for name in form["fields"]]
    return found


def _routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """Every route of the app with its full path, through included routers (FastAPI 0.16x keeps
    them as one entry each in app.routes; iter_route_contexts is how its OpenAPI walks them)."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # older FastAPI: app.routes holds every route itself
        yield from ((route.path, route) for route in app.routes if isinstance(route, APIRoute))
        return
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.path is not None:
            yield context.path, context.original_route


def _every(dependant: Dependant) -> list[Dependant]:
    """The route's own parameters and those of every dependency it uses."""
    return [dependant, *(inner for sub in dependant.dependencies for inner in _every(sub))]


def ask(client: TestClient, target: tuple[str, str, str, str], value: str, known: dict[str, str]) -> int:
    """Send `value` as the target parameter (every other path parameter a known good one)."""
    method, path, where, name = target
    filled = path
    for parameter, good in known.items():
        chosen = value if (where, name) == ("path", parameter) else good
        filled = filled.replace("{" + parameter + "}", quote(chosen, safe=""))
    query = {name: value} if where == "query" else None
    form: dict[str, Any] | None = None
    if method == "POST":
        form = {**HAND_READ_FORMS.get(path, {}).get("base", {}), "text": "a note"}
        if where == "form":
            form[name] = value
    response = client.request(method, filled, params=query, data=form, headers=basic(OPERATOR))
    return response.status_code


@pytest.fixture
def console(store_url: str, tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    """The console over a store holding a few letters and one replay operation, as an operator
    sees it, with server errors answered as responses (so a 500 is seen, not raised)."""
    client, records = in_process(tmp_path, [new_letter(event_id=f"e-{n}") for n in range(3)], store_url=store_url)
    client = TestClient(client.app, base_url="http://console.test", follow_redirects=False, raise_server_exceptions=False)
    [letter, *_] = records.page().letters
    operation = records.start_replay(LetterFilter(), actor="t", rate=5.0)
    records.finish(operation.id, actor="t", cancelled=True)
    return client, {"letter_id": str(letter.id), "operation_id": operation.id}


def test_the_probe_reaches_every_route_the_red_team_named(console: tuple[TestClient, dict[str, str]]) -> None:
    """The enumeration covers the pages left out of the OpenAPI document as well as the API's parameters."""
    client, _ = console
    found = {(path, name) for _, path, _, name in targets(client.app)}
    openapi = client.app.openapi()
    for path, methods in openapi["paths"].items():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                assert (path, parameter["name"]) in found
    for expected in [
        ("/letters", "after"),
        ("/letters", "text"),
        ("/letters/{letter_id}", "letter_id"),
        ("/owners", "partner"),
        ("/api/replays/{operation_id}", "operation_id"),
        ("/api/dead-letters", "since"),
        ("/api/owners", "partner"),
    ]:
        assert expected in found


def test_no_hostile_value_of_any_parameter_is_a_server_error(console: tuple[TestClient, dict[str, str]]) -> None:
    """Each named hostile value in each parameter of each route: a 4xx or a page, never 5xx."""
    client, known = console
    failures = []
    for target in targets(client.app):
        for value in HOSTILE:
            status = ask(client, target, value, known)
            if status >= 500:
                failures.append((target, value[:40], status))
    assert failures == []


# Any text (no lone surrogates: they cannot be sent), numbers past every bound, digits of other
# scripts, NULs, long runs, and time-like strings, some of them not times.
HOSTILE_VALUES = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=50),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats().map(str),
    st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=8),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8).map(lambda s: s + "\x00" + s),
    st.integers(min_value=900, max_value=10_000).map(lambda n: "é" * n),
    st.integers(min_value=900, max_value=60_000).map(lambda n: "a" * n),
    st.tuples(st.datetimes(), st.sampled_from(["", "Z", "+14:00", "-23:59", "x", ":61"])).map(
        lambda pair: pair[0].isoformat() + pair[1]
    ),
)


def test_no_drawn_value_of_any_parameter_is_a_server_error(console: tuple[TestClient, dict[str, str]]) -> None:
    """Hypothesis draws a route's parameter and a hostile value for it: never a 5xx."""
    client, known = console
    every = targets(client.app)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(every), HOSTILE_VALUES)
    def check(target: tuple[str, str, str, str], value: str) -> None:
        assert ask(client, target, value, known) < 500, (target, value[:60])

    check()


@pytest.mark.parametrize("rate", [math.inf, -math.inf, 0, -1, 100_001])
def test_the_api_refuses_a_rate_a_replay_cannot_hold_and_starts_nothing(
    console: tuple[TestClient, dict[str, str]], rate: float
) -> None:
    """POST /api/replays with rate Infinity (sent as JSON allows it), zero, negative or too large: a 422, no operation."""
    client, _ = console
    before = client.get("/api/replays", headers=basic(OPERATOR)).json()["replays"]
    body = '{"selection": {"all": true}, "rate": %s}' % ("Infinity" if rate == math.inf else "-Infinity" if rate == -math.inf else rate)
    response = client.post("/api/replays", content=body, headers={**basic(OPERATOR), "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert client.get("/api/replays", headers=basic(OPERATOR)).json()["replays"] == before


def test_the_api_refuses_nan_as_a_rate(console: tuple[TestClient, dict[str, str]]) -> None:
    """POST /api/replays with rate NaN: a 422, no operation."""
    client, _ = console
    response = client.post(
        "/api/replays",
        content='{"selection": {"all": true}, "rate": NaN}',
        headers={**basic(OPERATOR), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert len(client.get("/api/replays", headers=basic(OPERATOR)).json()["replays"]) == 1


@pytest.mark.parametrize("rate", ["inf", "nan", "-2", "0", "1e400", "fast"])
def test_the_confirmation_form_refuses_a_rate_a_replay_cannot_hold(
    console: tuple[TestClient, dict[str, str]], rate: str
) -> None:
    """The page's confirmation with rate inf, nan, zero, negative or not a number: a 422 page saying so, no operation."""
    client, _ = console
    form = {"action": "replay", "scope": "matching", "all": "true", "rate": rate}
    response = client.post("/actions/confirm", data=form, headers=basic(OPERATOR))
    assert response.status_code == 422 and "letters per second" in response.text
    assert len(client.get("/api/replays", headers=basic(OPERATOR)).json()["replays"]) == 1


def test_resuming_a_replay_stored_with_an_infinite_rate_is_a_422_and_leaves_it_cancelled(
    console: tuple[TestClient, dict[str, str]], store_url: str
) -> None:
    """A replay recorded with rate inf before rates were checked: resume says why in a 422 and the operation stays cancelled."""
    client, known = console
    store = open_store(store_url)
    with store.transaction():
        store.execute("UPDATE dead_letter_replays SET rate = ? WHERE id = ?", (math.inf, known["operation_id"]))
    store.close()
    response = client.post(f"/api/replays/{known['operation_id']}/resume", headers=basic(OPERATOR))
    assert response.status_code == 422 and "cannot be resumed" in response.json()["detail"]
    shown = client.get(f"/api/replays/{known['operation_id']}", headers=basic(OPERATOR)).json()
    assert shown["status"] == "cancelled"
