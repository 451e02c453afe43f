"""No request is a 500: every path, query and form parameter of every console route (the API's,
as its OpenAPI document lists them, and the pages' and forms', which it leaves out), given
hostile values on SQLite and PostgreSQL, is answered with a 4xx or a page, never a server
error; and the replay rate is checked at every door of the console."""

import math
import tracemalloc
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
from support.messages import encode, envelope
from worker.console import actions, shapes
from worker.dead_letters import DeadLetter, Routes, as_dead_letter, cut, plan
from worker.dead_letters.model import LetterFilter, NewLetter
from worker.settings import Settings
from worker.store import open_store

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
        "fields": [
            "reason",
            "type",
            "id",
            "group",
            "letter",
            "text",
            "since",
            "until",
            "status",
            "rate",
            "at",
        ],
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
    client, records = in_process(
        tmp_path, [new_letter(event_id=f"e-{n}") for n in range(3)], store_url=store_url
    )
    client = TestClient(
        client.app, base_url="http://console.test", follow_redirects=False, raise_server_exceptions=False
    )
    [letter, *_] = records.page().letters
    operation = records.start_replay(LetterFilter(), actor="t", rate=5.0)
    records.finish(operation.id, actor="t", cancelled=True)
    return client, {"letter_id": str(letter.id), "operation_id": operation.id, "partner": "acme"}


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
        ("/api/owners/{partner}/history", "partner"),
        ("/api/reminders", "before"),
        ("/reminders", "since"),
    ]:
        assert expected in found


def test_no_hostile_value_of_any_parameter_is_a_server_error(
    console: tuple[TestClient, dict[str, str]],
) -> None:
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


def test_no_drawn_value_of_any_parameter_is_a_server_error(
    console: tuple[TestClient, dict[str, str]],
) -> None:
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
    body = '{"selection": {"all": true}, "rate": %s}' % (
        "Infinity" if rate == math.inf else "-Infinity" if rate == -math.inf else rate
    )
    response = client.post(
        "/api/replays", content=body, headers={**basic(OPERATOR), "Content-Type": "application/json"}
    )
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
        store.execute(
            "UPDATE dead_letter_replays SET rate = ? WHERE id = ?", (math.inf, known["operation_id"])
        )
    store.close()
    response = client.post(f"/api/replays/{known['operation_id']}/resume", headers=basic(OPERATOR))
    assert response.status_code == 422 and "cannot be resumed" in response.json()["detail"]
    shown = client.get(f"/api/replays/{known['operation_id']}", headers=basic(OPERATOR)).json()
    assert shown["status"] == "cancelled"


def recorded(headers: dict[str, Any], body: bytes, **extra: Any) -> NewLetter:
    """A letter as the worker's drain records it: its columns read from its headers and body."""
    properties = {"content_type": "application/json", "message_id": "m-1"}
    dead = DeadLetter.read(0, {**properties, "headers": headers}, body)
    return NewLetter(
        body=body, properties=properties, headers=headers, reason=dead.reason, detail=dead.detail,
        failed_at=dead.failed_at, attempts=dead.attempts, replays=dead.replay_count, event_id=dead.id,
        event_type=dead.type, message_id="m-1", origin=dead.origin, **extra,
    )  # fmt: skip


def test_a_preview_plans_from_the_summary_exactly_what_a_replay_plans_from_the_whole_letter(
    store_url: str, tmp_path: Path
) -> None:
    """For honest, forged, foreign, often replayed, typeless and cut letters, with and without to_original, the preview (no bodies read) says what the plan from the whole letter says."""
    worker = {
        "x-error-reason": "no_recipient",
        "x-original-exchange": "renewals.events",
        "x-original-routing-key": "renewal.approaching",
    }
    renewal = encode(envelope("RenewalApproaching", {"client_id": "c-1"}, id="r-1"))
    letters = [
        recorded(worker, renewal),
        recorded(
            {**worker, "x-original-exchange": "renewals.notifications"},
            encode(envelope("NotificationRequested", {}, id="n-1")),
        ),
        recorded(
            {**worker, "x-original-exchange": "billing.internal", "x-original-routing-key": "k"},
            renewal + b" ",
        ),
        recorded({**worker, "x-replay-count": 3}, renewal + b"  "),
        recorded({"x-error-reason": "invalid_payload"}, b"not json"),
        recorded(worker, renewal[:10], body_size=len(renewal), body_sha256="ab" * 32),
        recorded(
            {
                "x-death": [
                    {
                        "reason": "delivery_limit",
                        "queue": "renewals.worker",
                        "exchange": "renewals.events",
                        "routing-keys": ["renewal.approaching"],
                        "count": 20,
                    }
                ]
            },
            renewal + b"   ",
        ),
    ]
    _, records = in_process(tmp_path, letters, store_url=store_url)
    settings_ = Settings(store_url=store_url)
    for to_original in (False, True):
        routes = Routes.of(settings_, to_original=to_original)
        request = actions.ReplayRequest(selection=actions.Selection(all=True), dry_run=True)
        count, previewed = actions.preview(records, request, routes)
        whole = [
            shapes.plan(plan(as_dead_letter(x), routes, max_replays=actions.DEFAULT_MAX_REPLAYS, cut=cut(x)))
            for x in records.letters(LetterFilter())
        ]
        assert count == len(letters) and [shapes.plan(p) for p in previewed] == whole
        assert {p["action"] for p in whole} == {"replay", "skip"}


def test_a_preview_of_big_letters_reads_no_body_and_its_memory_stays_flat(
    store_url: str, tmp_path: Path
) -> None:
    """A dry run over 24 letters of 4 MiB selects no body (nor properties, headers) and its peak allocation stays under 4 MiB, on both stores."""
    big = [
        new_letter(
            event_id=f"big-{n}", body=b'{"type": "RenewalApproaching", "pad": "' + b"x" * (4 << 20) + b'"}'
        )
        for n in range(24)
    ]
    client, records = in_process(tmp_path, big, store_url=store_url)
    statements: list[str] = []
    store = records._store
    execute = store.execute

    def spy(sql: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(sql)
        return execute(sql, *args, **kwargs)

    store.execute = spy  # type: ignore[method-assign]
    routes = Routes.of(Settings(store_url=store_url))
    request = actions.ReplayRequest(selection=actions.Selection(all=True), dry_run=True)
    actions.preview(records, request, routes)  # warm: the first call imports and compiles
    statements.clear()
    tracemalloc.start()
    try:
        count, plans = actions.preview(records, request, routes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (count, len(plans)) == (24, 24) and {p.action for p in plans} == {"replay"}
    assert statements and not [sql for sql in statements if "properties" in sql or " body," in sql]
    assert peak < 4 << 20, f"peak {peak / 2**20:.1f} MiB"
    reply = client.post(
        "/api/replays", json={"selection": {"all": True}, "dry_run": True}, headers=basic(OPERATOR)
    )
    assert reply.status_code == 200 and reply.json()["selected"] == 24


@pytest.mark.parametrize(
    "selection",
    [
        {"letter": [2**70]},
        {"letter": [0]},
        {"limit": 2**63, "all": True},
        {"text": "a" * 60_000},
        {"id": ["a\x00b"]},
        {"reason": ["r"] * 1_001},
        {"since": "notadate"},
    ],
)
def test_a_json_selection_outside_the_types_is_a_422_for_every_action(
    console: tuple[TestClient, dict[str, str]], selection: dict[str, Any]
) -> None:
    """The selection of a dry run, a replay, an archive and a purge uses the same types as the query: a value past int64, a NUL, 60,000 characters, 1,001 values or a non-time is a 422, never a 500."""
    client, _ = console
    for path, body in [
        ("/api/replays", {"selection": selection, "dry_run": True}),
        ("/api/replays", {"selection": selection}),
        ("/api/archive", selection),
        ("/api/purge", selection),
    ]:
        response = client.post(path, json=body, headers=basic(OPERATOR))
        assert response.status_code == 422, (path, response.status_code, response.text[:200])
