"""The one boundary for what a broker hands us (worker/boundary.py): AMQP values bounded in depth
and size without recursion, cut parts marked and told apart by their digest, and the guard that
sets one message aside alone. Here with values and frames in memory; the stores, the console
and the CLI in tests/integration/test_fuzz_boundary.py, the real broker in
tests/e2e/test_deep_headers.py."""

import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from struct import pack
from typing import Any, TypeVar

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from support.letters import stored
from support.nesting import depth_of
from support.raw import Field, deliver_frames, nested, properties, table
from tests.fake_wire import Reading
from worker.boundary import MARK, MAX_DEPTH, MAX_TEXT, MAX_VALUES, bounded, guarded
from worker.console import shapes
from worker.dead_letters import DeadLetter, Routes, as_dead_letter, plan
from worker.dead_letters.drain import DeadLetterDrain, new_letter
from worker.dead_letters.records import DeadLetterRecords
from worker.logs import get_logger
from worker.messaging import Delivery
from worker.settings import Settings
from worker.store import amqp_json, open_store
from worker.tools.peek import read_letter as peek_letter

T = TypeVar("T")
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHORT = Field(b"s", pack(">h", 7))

amqp_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.decimals(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.datetimes(timezones=st.none() | st.just(UTC)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def deep(levels: int, leaf: Any = "leaf", name: str = "n") -> Any:
    """`leaf` inside `levels` tables, built without recursion."""
    value = leaf
    for _ in range(levels):
        value = {name: value}
    return value


class Hostile(Mapping[str, Any]):
    """A header table whose entries cannot be read."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("a table that cannot be walked")

    def __len__(self) -> int:
        return 1


def with_frames_below(frames: int, call: Callable[[], T]) -> T:
    """`call()` with `frames` more Python frames beneath it, as deep as a worker's session calls
    the drain (the tests' own stack is shallower)."""
    if frames == 0:
        return call()
    return with_frames_below(frames - 1, call)


def wire_delivery(headers: bytes, body: bytes = b"{}", tag: int = 1) -> Delivery:
    """A delivery from the dead-letter queue as the worker's frame reader assembles it."""
    frames = deliver_frames(
        body,
        properties(content_type="application/json", application_headers=headers),
        delivery_tag=tag,
        exchange="",
        routing_key="renewals.worker.dlq",
    )
    (delivery,) = Reading().read_bytes(frames)
    return delivery


def test_a_header_table_ten_thousand_tables_deep_is_kept_to_max_depth_and_marked() -> None:
    """Bounding a table nested 10,000 deep raises nothing and keeps MAX_DEPTH levels, the rest one marked string."""
    kept = bounded({"h": deep(10_000)})
    assert depth_of(kept) == MAX_DEPTH
    inner = kept
    for _ in range(MAX_DEPTH - 1):
        inner = inner["h" if "h" in inner else "n"]
    assert inner["n"].startswith(MARK + f"a table nested deeper than {MAX_DEPTH} levels; sha256 ")


def test_too_many_values_and_too_much_text_are_cut_and_marked() -> None:
    """Past MAX_VALUES values or MAX_TEXT characters the rest is one marked string per table or array."""
    kept = bounded({"many": list(range(MAX_VALUES + 50)), "long": "x" * (MAX_TEXT + 1)})
    # the two tables count too: MAX_VALUES - 2 numbers kept, then the marker for the other 52
    assert kept["many"][:-1] == list(range(MAX_VALUES - 2))
    assert kept["many"][-1].startswith(MARK + "52 more values past")
    assert kept["long"].startswith(MARK + "1 more value past")
    text_only = bounded({"long": "x" * (MAX_TEXT + 1), "short": "y"})
    assert (
        text_only["long"].startswith(MARK + f"{MAX_TEXT + 1} characters of text")
        and text_only["short"] == "y"
    )


@FUZZ
@given(amqp_values)
def test_values_within_the_bounds_come_back_equal_and_bounding_twice_is_bounding_once(value: Any) -> None:
    """A value within the bounds is kept as it is (tuples as lists), and a bounded value bounds to itself."""
    kept = bounded(value)
    assert kept == value or (kept != kept and value != value)  # NaN is never equal to itself
    assert json.loads(amqp_json.dumps(bounded(kept))) == json.loads(amqp_json.dumps(kept))


@FUZZ
@given(st.integers(0, 3000), amqp_values, st.lists(st.booleans(), max_size=3000))
def test_any_depth_is_bounded_idempotently(levels: int, leaf: Any, arrays: list[bool]) -> None:
    """Tables and arrays of any depth around any value: bounded to MAX_DEPTH, stored and read back as the same bounded value."""
    value: Any = leaf
    for level in range(levels):
        value = [value] if level < len(arrays) and arrays[level] else {"n": value}
    kept = bounded({"h": value})
    assert depth_of(kept) <= MAX_DEPTH
    assert bounded(kept) == kept or amqp_json.dumps(bounded(kept)) == amqp_json.dumps(kept)
    assert amqp_json.dumps(amqp_json.loads(amqp_json.dumps({"h": value}))) == amqp_json.dumps(kept)


def test_letters_that_differ_only_past_the_bound_stay_two_letters() -> None:
    """Two headers equal for their first MAX_DEPTH levels and different below give two letter keys, not one row."""
    first = new_letter(Delivery(b"{}", {"application_headers": {"h": deep(600, "a")}}, "", "dlq", 1))
    second = new_letter(Delivery(b"{}", {"application_headers": {"h": deep(600, "b")}}, "", "dlq", 2))
    assert first.headers != second.headers and first.key != second.key
    assert first.problem is None and second.problem is None


def test_a_header_900_tables_deep_from_the_wire_is_recorded_by_the_drain() -> None:
    """A dead letter whose header table nests 900 deep (py-amqp still decodes it) becomes a record with its headers bounded and marked, not a RecursionError."""
    delivery = wire_delivery(table({"deep": nested(900, SHORT), "x-error-reason": "invalid_json"}))
    assert delivery.problem is None
    letter = new_letter(delivery)
    assert letter.problem is None and letter.reason == "invalid_json"
    assert depth_of(letter.headers) == MAX_DEPTH and MARK in amqp_json.dumps(letter.headers)
    assert len(letter.key) == 64


def test_a_header_490_tables_deep_is_recorded_as_deep_in_the_stack_as_the_worker_runs_the_drain() -> None:
    """The red team's letter (490 levels, 3.4 KB) read with 300 frames beneath, as in the worker: recorded, never a RecursionError."""
    delivery = wire_delivery(table({"h": nested(490, SHORT)}))
    letter = with_frames_below(300, lambda: new_letter(delivery))
    assert with_frames_below(300, lambda: letter.key) == letter.key
    assert sys.getrecursionlimit() == 1000  # the default: the worker runs with it too


def test_a_letter_that_cannot_be_read_is_set_aside_alone_and_its_neighbours_are_recorded(
    tmp_path: Path,
) -> None:
    """A letter whose reading raises is recorded with its body and why; the letters around it are recorded as usual."""

    store = open_store(f"sqlite:///{tmp_path / 'renewals.db'}")
    store.migrate()
    records = DeadLetterRecords(store)
    drain = DeadLetterDrain(None, records, name="renewals.worker.dlq", log=get_logger("test"))  # type: ignore[arg-type]  # record() never touches the queue
    letters = [
        Delivery(
            b'{"id": "before"}', {"application_headers": {"x-error-reason": "invalid_json"}}, "", "q", 1
        ),
        Delivery(b'{"id": "hostile"}', {"application_headers": {"h": Hostile()}}, "", "q", 2),
        Delivery(b'{"id": "after"}', {"application_headers": {"x-error-reason": "too_large"}}, "", "q", 3),
    ]
    with structlog.testing.capture_logs() as lines:
        assert drain.record(letters) == 3
    [logged] = [line for line in lines if line["event"] == "dead_letter.set_aside"]
    assert logged["problem"].endswith("RuntimeError: a table that cannot be walked")
    first, hostile, after = (records.get(summary.id) for summary in records.page().letters)
    assert first is not None and hostile is not None and after is not None
    assert (first.summary.reason, after.summary.reason) == ("invalid_json", "too_large")
    assert hostile.body == b'{"id": "hostile"}' and hostile.headers == {}
    assert hostile.problem == "set aside, could not be read: RuntimeError: a table that cannot be walked"
    assert hostile.summary.reason == "invalid_properties"


def test_the_guard_passes_interrupts_on_and_sets_any_other_failure_aside() -> None:
    """guarded() turns an Exception into the aside record and lets KeyboardInterrupt through."""
    assert guarded(lambda: 1 // 0, lambda why: why) == "ZeroDivisionError: integer division or modulo by zero"

    def interrupted() -> str:
        raise KeyboardInterrupt

    try:
        guarded(interrupted, lambda why: why)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("an interrupt was swallowed")


def test_the_tools_read_a_deep_letter_with_every_field_bounded() -> None:
    """DeadLetter.read (peek, replay, show) bounds headers and properties: its record is strict JSON and its replay headers bounded."""
    letter = DeadLetter.read(
        1,
        {"headers": {"h": deep(5000)}, "message_id": "m-1", "type": deep(100)},
        b"{}",
    )
    record = letter.as_record()
    json.dumps(record, allow_nan=False)
    assert depth_of(letter.replay_properties()["headers"]) <= MAX_DEPTH
    assert depth_of(letter.properties) <= MAX_DEPTH and letter.properties["message_id"] == "m-1"


@settings(FUZZ, max_examples=60)  # a store per example
@given(
    st.dictionaries(
        st.text(max_size=10),
        amqp_values
        | st.sampled_from([10**5000, -(2**70), Decimal("NaN"), Decimal("1E+999999"), float("nan")]),
        max_size=6,
    ),
    st.integers(0, 1500),
)
def test_any_header_table_a_client_library_hands_over_is_recorded_and_shown(
    headers: dict[str, Any], levels: int
) -> None:
    """Headers of any Python value another client may decode (integers past AMQP's, NaN decimals), any depth: the drain records the letter, set aside if need be, and the API's shape of it serialises as the API does."""
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/renewals.db")
        store.migrate()
        records = DeadLetterRecords(store)
        drain = DeadLetterDrain(None, records, name="dlq", log=get_logger("test"))  # type: ignore[arg-type]  # record() never touches the queue
        delivery = Delivery(b"{}", {"application_headers": {**headers, "deep": deep(levels)}}, "", "dlq", 1)
        assert drain.record([delivery]) == 1
        [summary] = records.page().letters
        stored = records.get(summary.id)
        assert stored is not None and depth_of(stored.headers) <= MAX_DEPTH
        json.loads(TypeAdapter(dict[str, Any]).dump_json(shapes.letter(stored)))  # as the API writes it
        store.close()


def test_decimals_and_times_within_the_bounds_are_kept_exactly() -> None:
    """Bounding changes no AMQP value it keeps: Decimal, datetime and bytes stay themselves."""
    value = {"d": Decimal("1.50"), "t": datetime(2026, 1, 2, tzinfo=UTC), "b": b"\xff", "a": (1, 2)}
    assert bounded(value) == {**value, "a": [1, 2]}


def test_peek_and_replay_reading_set_an_unreadable_message_aside_alone() -> None:
    """`renewals notifications` (peek) and a replay read a message whose headers cannot be read as its body and why, never raising."""
    delivery = Delivery(b'{"id": "n-1"}', {"application_headers": {"h": Hostile()}}, "", "unrouted", 1)
    peeked = peek_letter(3, delivery)
    assert (peeked.position, peeked.body, peeked.headers) == (3, b'{"id": "n-1"}', {})
    assert peeked.problem == "set aside, could not be read: RuntimeError: a table that cannot be walked"
    assert peeked.summary()["reason"] == "invalid_properties"
    letter = stored(b"{}", {}, {"h": Hostile()})
    read = as_dead_letter(letter)
    assert read.headers == {} and (read.problem or "").startswith(
        "set aside, could not be read: RuntimeError"
    )
    assert plan(read, Routes.of(Settings()), force=True).action in ("replay", "skip")


def test_peek_reads_a_header_900_deep_from_the_wire_bounded() -> None:
    """A message 900 tables deep in the unrouted queue is read by peek with its headers bounded and marked."""
    peeked = peek_letter(1, wire_delivery(table({"deep": nested(900, SHORT)})))
    assert peeked.problem is None and depth_of(peeked.headers) == MAX_DEPTH
    json.dumps(peeked.as_record(), allow_nan=False)
