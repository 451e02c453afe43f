"""Hostile input on real stores, no broker (issue 9's rows 5, 7, 9 and 11): batches through
BatchProcessor, dead letters through the drain's record into the store, and the `renewals`
commands that read them. tests/e2e/test_hostile_input.py keeps what needs the real wire."""

import json
import re
import time
from pathlib import Path
from struct import pack
from typing import Any

import pytest
from amqp.serialization import decode_properties_basic
from click.testing import CliRunner, Result

from support.messages import contact, encode, owner_changed, renewal
from support.raw import Field, deliver_frames, properties, table
from tests.fake_wire import Reading
from worker.broker.publisher import encode_properties, encoded_size
from worker.cli import main
from worker.dead_letters.drain import new_letter
from worker.dead_letters.records import DeadLetterRecords
from worker.messaging import Delivery, Outgoing
from worker.service.outbox import Outbox
from worker.service.processing import BatchProcessor
from worker.service.processing import Result as Handled
from worker.settings import Settings
from worker.store import SqlStore, open_store

SETTINGS = Settings()
EVENTS = SETTINGS.events_exchange
JSON = "application/cloudevents+json"
ALICE = contact("alice")
BOB = contact("bob")
DORA = contact("dora", "client.example")
# What must never reach an operator's terminal: every control character but the line break.
RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


@pytest.fixture
def store_url(store_url: str) -> str:
    """The folder's fresh store of each backend, migrated: the `dlq` commands expect one."""
    store = open_store(store_url)
    store.migrate()
    store.close()
    return store_url


def processor(url: str) -> BatchProcessor:
    store: SqlStore = open_store(url)
    store.migrate()
    outbox = Outbox(store, grace_s=SETTINGS.outbox_grace, sweep_every_s=SETTINGS.outbox_sweep_interval)
    return BatchProcessor(SETTINGS, store, outbox=outbox, encoded_size=encoded_size)


def delivery(message: dict[str, Any] | bytes, tag: int) -> Delivery:
    body = message if isinstance(message, bytes) else encode(message)
    key = "owner.changed" if b'"OwnerChanged"' in body else "renewal.approaching"
    return Delivery(body, {"content_type": "application/json"}, EVENTS, key, tag)


def dead(result: Handled) -> tuple[str, int]:
    """A dead letter's reason and attempts, as its headers say."""
    assert result.outcome == "message.dead_lettered" and result.outgoing is not None, result
    headers = result.outgoing.properties["application_headers"]
    return headers["x-error-reason"], headers["x-attempts"]


def neighbours(prefix: str, count: int) -> list[dict[str, Any]]:
    """Good reminders (a direct customer with a decision maker): each must become a notification."""
    return [renewal(f"{prefix}-c{n}", None, decision_maker=DORA, id=f"{prefix}-ok-{n}") for n in range(count)]


def renewals(url: str, *args: str) -> Result:
    """`renewals ARGS` on the store: exit 0, and no raw control character printed."""
    result = CliRunner().invoke(
        main, list(args), env={"RENEWALS_STORE_URL": url, "RENEWALS_LOG_FORMAT": "json"}
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    for stream in (result.stdout, result.stderr):
        found = RAW_CONTROL.search(stream)
        assert found is None, f"raw {found.group()!r} printed:\n{stream[:2000]!r}"
    return result


# Row 5 ---------------------------------------------------------------------------------------


def test_row5_json_nested_a_thousand_deep_fails_alone_in_its_batch(tmp_path: Path) -> None:
    """30 bodies nested 1,000 levels deep among 300 good events in one batch: each is dead-lettered invalid_json on its first attempt, nothing is retried, every good event is notified."""
    deep_array = b"[" * 1000 + b"]" * 1000
    deep_data = encode(renewal("r5-deep", None, id="r5-deep-envelope")).replace(
        b'"data": {', b'"data": {"x": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b", ", 1
    )
    good = neighbours("r5", 300)
    mixed: list[dict[str, Any] | bytes] = []
    for index, event in enumerate(good):
        mixed.append(event)
        if index % 10 == 9:
            mixed.append(deep_array if index % 20 == 9 else deep_data)
    results = processor(f"sqlite:///{tmp_path / 'r.db'}").process(
        [delivery(message, tag) for tag, message in enumerate(mixed, 1)]
    )
    assert [dead(r) for r in results if isinstance(mixed[r.delivery.delivery_tag - 1], bytes)] == [
        ("invalid_json", 1)
    ] * 30
    notified = [r.fields["event_id"] for r in results if r.outcome == "renewal.notification_requested"]
    assert notified == [event["id"] for event in good]


# Row 7 ---------------------------------------------------------------------------------------


def test_row7_an_owner_change_dated_9999_is_refused_and_a_later_change_applies(tmp_path: Path) -> None:
    """OwnerChanged dated 9999-12-31 (at +00:00 and -23:59) is invalid_envelope; the correct change after it applies, a reminder follows it, and `owners show` reads the stamps, year 1 at +14:00 included."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    batch = [
        owner_changed("partner", "p7", partner_contact=ALICE, id="r7-future", time="9999-12-31T23:59:59+00:00"),
        owner_changed("partner", "p7", partner_contact=ALICE, id="r7-future-west", time="9999-12-31T23:59:59-23:59"),
        owner_changed("partner", "p7", partner_contact=BOB, id="r7-correct", time=now),
        owner_changed("platform", "p7-ancient", partner_contact=BOB, id="r7-ancient", time="0001-01-01T00:00:00+14:00"),
    ]  # fmt: skip
    worker = processor(url)
    results = worker.process([delivery(message, tag) for tag, message in enumerate(batch, 1)])
    assert [dead(r) for r in results[:2]] == [("invalid_envelope", 1)] * 2
    assert all("ahead of this worker's clock" in r.fields["detail"] for r in results[:2])
    assert [r.outcome for r in results[2:]] == ["owner.changed", "owner.changed"]
    (reminder,) = worker.process([delivery(renewal("r7-c", "p7", id="r7-reminder"), 5)])
    assert reminder.notification is not None
    assert [to.email for to in reminder.notification.to] == [BOB["email"]]
    shown = json.loads(renewals(url, "owners", "show", "--partner", "p7", "--json").stdout)
    assert (shown["owner"], shown["partner_contact"]["email"], shown["changed_by_event"]) == (
        "partner", BOB["email"], "r7-correct",
    )  # fmt: skip
    for args in (("--partner", "p7"), ("--partner", "p7-ancient"), ("--partner", "p7-ancient", "--json")):
        renewals(url, "owners", "show", *args)


# Row 9 ---------------------------------------------------------------------------------------

ESC_ID = "r9-\x1b[2J\x1b[H-\x07"
ESC_ADDRESS = "dora\x1b]0;pwned\x07@client.example"
# Letters as anyone who can publish to the dead-letter queue may shape them: header values
# written as raw AMQP fields where no client library would write them.
INJECTED: list[dict[str, Any]] = [
    {"x-failed-at": "9999-12-31T23:59:59.999-23:59", "x-error-reason": "no_recipient"},
    {"x-failed-at": "0001-01-01T00:00:00+23:59", "x-error-detail": "\r\x1b[2Kall fine\x07"},
    {"x-failed-at": Field(b"T", pack(">Q", 2**64 - 1))},
    {"x-failed-at": Field(b"l", pack(">q", -(2**63))), "x-attempts": Field(b"l", pack(">q", 2**63 - 1))},
    {"x-death": [{"time": Field(b"T", pack(">Q", 2**63)), "reason": "\x1b[5mexpired"}]},
    {"x-error-reason": "\x1b[0m\x07", "x-replay-count": -1},
]


def table_with_nested_fields(headers: dict[str, Any]) -> bytes:
    """`table`, where an array of tables may hold `Field`s too (x-death as a hostile broker would
    write it)."""
    encoded: dict[str | bytes, Any] = {}
    for name, value in headers.items():
        if isinstance(value, list):
            items = b"".join(b"F" + table(item) for item in value)
            encoded[name] = Field(b"A", pack(">I", len(items)) + items)
        else:
            encoded[name] = value
    return table(encoded)


def in_the_dead_letter_queue(copy: Outgoing, tag: int) -> Delivery:
    """The worker's dead letter as the drain reads it back: its properties encoded and decoded."""
    decoded = decode_properties_basic(b"\0" * 12 + encode_properties(copy.properties), 12)[0]
    return Delivery(copy.body, decoded, "", SETTINGS.dead_letter_queue, tag)


def test_row9_dlq_tools_read_extreme_times_and_never_print_control_characters(
    store_url: str, tmp_path: Path
) -> None:
    """The worker's dead letters of ids, addresses and headers holding ESC or BEL, and letters injected with far-offset, out-of-range and negative x-failed-at, a huge x-attempts and control characters: recorded, then listed (with --since and --until at the calendar's edges), shown, exported, dry-run replayed both ways and purged, exit 0 and no raw control character printed."""
    hostile = [
        (renewal("r9-esc-id-c", None, decision_maker=DORA, id=ESC_ID), {}),
        (renewal("r9-esc-mail-c", None, decision_maker={**DORA, "email": ESC_ADDRESS}, id="r9-esc-mail"), {}),
        (renewal("r9-header-c", "p-nobody", id="r9-esc-header"), {"x-note\x1b[8m": "\x1b[31mred\x07\r"}),
    ]
    results = processor(store_url).process(
        [Delivery(encode(event), {"content_type": JSON, "application_headers": headers}, EVENTS,
                  "renewal.approaching", tag) for tag, (event, headers) in enumerate(hostile, 1)]
    )  # fmt: skip
    assert [dead(r)[0] for r in results] == ["invalid_envelope", "invalid_payload", "no_recipient"]
    assert "control character" in results[0].fields["detail"]
    letters = [in_the_dead_letter_queue(r.outgoing, tag) for tag, r in enumerate(results, 1) if r.outgoing]
    for number, headers in enumerate(INJECTED):
        body = encode(renewal(f"r9-inj-{number}", None, id=f"r9-inj\x1b{number}\x07"))
        property_bytes = properties(content_type=JSON, delivery_mode=2, message_id=f"\x1b[8m{number}",
                                    type="\x07Renewal", application_headers=table_with_nested_fields(headers))  # fmt: skip
        frames = deliver_frames(body, property_bytes, exchange="", routing_key=SETTINGS.dead_letter_queue)
        letters += Reading().read_bytes(frames)
    # A timestamp field py-amqp cannot decode: the drain records that letter as invalid_properties.
    undecodable = [number for number, letter in enumerate(letters) if letter.problem is not None]
    assert undecodable == [len(hostile) + 2, len(hostile) + 4]
    store = open_store(store_url)
    try:
        assert DeadLetterRecords(store).insert([new_letter(letter) for letter in letters]) == len(letters)
    finally:
        store.close()

    listed = json.loads(renewals(store_url, "dlq", "list", "--json").stdout)
    assert len(listed) == len(letters)
    assert [row["reason"] for row in listed].count("invalid_properties") == len(undecodable)
    for when in ("--since", "--until"):
        for value in ("1h", "0001-01-02", "9999-12-30"):
            if (when, value) != ("--since", "9999-12-30"):
                renewals(store_url, "dlq", "list", when, value)
    # A failure time ahead of its recording counts as that moment: none failed after 9999-12-30.
    late = CliRunner().invoke(
        main, ["dlq", "list", "--since", "9999-12-30"], env={"RENEWALS_STORE_URL": store_url}
    )
    assert late.exit_code == 1 and late.stderr.startswith("Error: no dead letter matches --since 9999-12-30")
    for row in listed:
        renewals(store_url, "dlq", "show", row["id"] or f"#{row['position']}")
    exported = tmp_path / "export.jsonl"
    renewals(store_url, "dlq", "export", "--out", str(exported))
    assert len(exported.read_text().splitlines()) == len(letters)
    for routing in ((), ("--to-original",)):
        assert len(
            json.loads(renewals(store_url, "dlq", "replay", "--all", "--dry-run", "--json", *routing).stdout)
        ) == len(letters)
        assert (
            "nothing was changed"
            in renewals(store_url, "dlq", "replay", "--all", "--dry-run", *routing).stdout
        )
    assert (
        renewals(store_url, "dlq", "purge", "--all", "--yes").stdout.strip()
        == f"purged {len(letters)} dead letters"
    )


# Row 11 --------------------------------------------------------------------------------------


def out_of_store_range() -> list[tuple[dict[str, Any], str]]:
    """Events whose values a model without bounds would let through to the store, with the
    reason each must get at once."""
    with_nul_name = {**DORA, "name": "Dora\x00"}
    return [
        (renewal("r11-c1", None, decision_maker=DORA, days=2**63, id="r11-days-2-63"), "invalid_payload"),
        (renewal("r11-c2", None, decision_maker=DORA, days=2**31, id="r11-days-2-31"), "invalid_payload"),
        (renewal("r11-c3\x00", None, decision_maker=DORA, id="r11-nul-client"), "invalid_payload"),
        (renewal("r11-c4", "p\x00", decision_maker=DORA, id="r11-nul-partner"), "invalid_payload"),
        (renewal("r11-c5", None, decision_maker=with_nul_name, id="r11-nul-name"), "invalid_payload"),
        (
            owner_changed("partner", "p11", partner_contact=with_nul_name, id="r11-nul-contact"),
            "invalid_payload",
        ),
        (renewal("r11-c6", None, decision_maker=DORA, id="r11-nul-\x00-id"), "invalid_envelope"),
    ]


def test_row11_values_beyond_the_store_are_invalid_at_once(store_url: str) -> None:
    """days_until_renewal of 2^63 and 2^31 and NUL in ids and names, among good events in one batch, on SQLite and PostgreSQL (32-bit INTEGER, text without NUL): each dead-lettered with its reason on its first attempt, never retried, every good event notified."""
    cases = out_of_store_range()
    good = neighbours("r11", len(cases) + 1)
    batch = [message for pair in zip(good, [event for event, _ in cases], strict=False) for message in pair]
    batch += good[len(cases) :]
    results = processor(store_url).process([delivery(message, tag) for tag, message in enumerate(batch, 1)])
    assert [dead(r) for r in results[1::2][: len(cases)]] == [(reason, 1) for _, reason in cases]
    notified = [r.fields["event_id"] for r in results if r.outcome == "renewal.notification_requested"]
    assert notified == [event["id"] for event in good]
