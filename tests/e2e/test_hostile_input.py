"""Hostile input end to end (issue 9): the rows of the issue's table that need the real wire,
through the real broker and the real worker process, with the hostile message written by a raw
client where pika cannot express it (support/raw.py).

Here: properties py-amqp cannot decode as a broker delivers them (row 1), copies the broker must
accept from the worker's user (row 3), replays of forged origins through the broker and back
(row 6), persistence (row 8), the worker's log (row 9) and passwords (row 10). The rules behind
the other rows need no broker and are tested where they live: tests/unit/test_frame_reader.py,
tests/unit/test_hostile_input.py (rows 2, 3, 4, 6, 8) and tests/integration/test_hostile_batches.py
(rows 5, 7, 9, 11).

Each test proves for its row that the worker's process is the one that started (it never died
nor reconnected), every neighbour published around the poison is notified, and the poison is
dead-lettered with the right reason; most also run the `renewals dlq` tools afterwards. Most
rows share one worker on one vhost (each test starts from an empty dead-letter queue); rows
that need another configuration start their own.
"""

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika
import pytest
from click.testing import Result
from pika.exceptions import ChannelClosedByBroker

from support.client import NAMES, Client
from support.messages import contact, encode, envelope, renewal
from support.polling import wait_until
from support.raw import UNDECODABLE_PROPERTIES, RawPublisher, properties
from support.records import as_message, recorded, stored_letters
from support.services import BrokerUnderTest, rabbitmqctl_for
from support.worker_process import WorkerProcess
from tests.e2e.commands import ok, renewals
from tests.e2e.conftest import FAST_RETRIES
from worker.dead_letters.model import LetterFilter
from worker.exits import EX_CONFIG

DORA = contact("dora", "client.example")
JSON = "application/cloudevents+json"
DLQ = NAMES.dead_letter_queue
EVENTS = NAMES.events_exchange
MiB = 1024 * 1024
# What must never reach an operator's terminal: every control character but the line break.
RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def printable_result(result: Result) -> Result:
    """Exit 0, and nothing a terminal could act on in what the command printed."""
    ok(result)
    for stream in (result.stdout, result.stderr):
        found = RAW_CONTROL.search(stream)
        assert found is None, f"raw {found.group()!r} printed:\n{stream[:2000]!r}"
    return result


@dataclass
class DeadLetterTools:
    """`renewals dlq` on a test's vhost and store, which holds `expected` unresolved dead letters."""

    url: str
    client: Client
    folder: Path
    store_url: str
    expected: int = 0

    def expect(self, count: int) -> None:
        """From now on the store holds `count` unresolved letters (and the queue none); wait
        until it does."""
        self.expected = count
        wait_until(
            lambda: self.client.count(DLQ) == 0 and len(self.rows()) == count,
            f"{count} dead letters recorded",
        )

    def __call__(self, *args: str, **env: str) -> Result:
        """`renewals dlq ARGS`: exit 0, and no raw control character printed."""
        return printable_result(renewals(self.url, "dlq", *args, RENEWALS_STORE_URL=self.store_url, **env))

    def rows(self, *filters: str) -> list[dict[str, Any]]:
        # In arrival order: the tables below list the poisons as they were sent.
        listed: list[dict[str, Any]] = json.loads(self("list", "--oldest-first", "--json", *filters).stdout)
        return listed

    def show(self, label: str) -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(self("show", label, "--json").stdout)
        return shown

    def exercise(self) -> list[dict[str, Any]]:
        """Every command on what the queue holds: list, show each, export, replay --dry-run
        (both routings), then purge --yes; each exits 0 and prints no raw control character.
        The listed rows come back."""
        count = self.expected
        rows = self.rows()
        assert len(rows) == count, rows
        self("list")
        self("list", "--since", "1d")
        labels = [row["id"] or f"#{row['position']}" for row in rows]
        for row, label in zip(rows, labels, strict=True):
            self("show", label)
            if labels.count(label) == 1:  # `show` gives the first of letters sharing an id
                assert self.show(label)["reason"] == row["reason"]
        exported = self.folder / f"export-{uuid.uuid4().hex[:6]}.jsonl"
        self("export", "--out", str(exported))
        assert len(exported.read_text().splitlines()) == count
        for routing in ((), ("--to-original",)):
            plans = json.loads(self("replay", "--all", "--dry-run", "--json", *routing).stdout)
            assert len(plans) == count
            assert "nothing was changed" in self("replay", "--all", "--dry-run", *routing).stdout
        purged = self("purge", "--all", "--yes")
        assert purged.stdout.strip() == f"purged {count} dead letters"
        self.expect(0)
        return rows


@dataclass
class Shared:
    """One worker on one vhost for the rows that need nothing else; `begin` gives each test an
    empty dead-letter queue and a fresh look at the notifications and the log."""

    url: str
    folder: Path
    worker: WorkerProcess
    pid: int
    client: Client
    out: str
    dlq: DeadLetterTools
    mark: int = 0
    notified: list[dict[str, Any]] = field(default_factory=list)

    @property
    def store(self) -> dict[str, str]:
        return {"RENEWALS_STORE_URL": self.worker.env["RENEWALS_STORE_URL"]}

    def begin(self) -> None:
        self.client.channel.queue_purge(DLQ)
        if self.dlq.rows():
            self.dlq("purge", "--all", "--yes")
        self.dlq.expect(0)
        self.client.drain(self.out)
        self.notified = []
        self.mark = len(self.worker.lines())

    def lines(self) -> list[dict[str, Any]]:
        """The worker's log lines since this test began."""
        return self.worker.lines()[self.mark :]

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == event]

    def wait_notified(self, event_ids: set[str], timeout: float = 20.0) -> list[str]:
        """Until every one of `event_ids` caused a notification; the causes seen so far."""

        def all_there() -> bool:
            self.worker.check_alive()
            self.notified += [json.loads(body) for _, _, body in self.client.drain(self.out)]
            return event_ids <= set(self.causes())

        wait_until(all_there, f"notifications for {sorted(event_ids)}", timeout)
        return self.causes()

    def causes(self) -> list[str]:
        return [notification["data"]["causation_id"] for notification in self.notified]

    def assert_unshaken(self) -> None:
        """The same process, still running, and its broker connection never lost."""
        assert self.worker.running() and self.worker.pid == self.pid, self.worker.tail()
        assert not self.logged("broker.connection_lost"), self.logged("broker.connection_lost")
        assert not self.logged("worker.starting")


@pytest.fixture(scope="module")
def shared_worker(rabbitmq: BrokerUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    with rabbitmq.vhost("renewals-test") as url:
        yield from _shared_worker(url, tmp_path_factory)


def _shared_worker(url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    folder = tmp_path_factory.mktemp("hostile")
    worker = WorkerProcess(url, folder, env=FAST_RETRIES).start()
    client = Client(url)
    try:
        tools = DeadLetterTools(url, client, folder, worker.env["RENEWALS_STORE_URL"])
        yield Shared(url, folder, worker, worker.pid, client, client.observe(), tools)
    finally:
        client.close()
        worker.kill()


@pytest.fixture
def shared(shared_worker: Shared) -> Shared:
    shared_worker.begin()
    return shared_worker


def neighbours(prefix: str, count: int) -> list[dict[str, Any]]:
    """Good reminders (a direct customer with a decision maker): each must become a notification."""
    return [renewal(f"{prefix}-c{n}", None, decision_maker=DORA, id=f"{prefix}-ok-{n}") for n in range(count)]


def ids_of(events: list[dict[str, Any]]) -> set[str]:
    return {event["id"] for event in events}


def publish_between(shared: Shared, good: list[dict[str, Any]], poisons: list[Any], send: Any) -> None:
    """good[0], poison 0, good[1], poison 1, ..., the rest of good: each publish confirmed
    before the next, so the queue holds them in this order."""
    for index, poison in enumerate(poisons):
        if index < len(good):
            shared.client.publish([good[index]])
        send(poison)
    shared.client.publish(good[len(poisons) :])


# Row 1 -----------------------------------------------------------------------------------------

ROW1_POISONS = {f"r1-{name}": values for name, values in UNDECODABLE_PROPERTIES.items()}
# Properties py-amqp does decode, but not into what a client usually makes of them: a timestamp
# of 2^64 - 1 stays an integer, a UTF-8-encoded surrogate a lone surrogate. These messages are
# dead-lettered for their bodies (nobody to address), and their copies must still be made.
ROW1_ODD = {
    "r1-odd-timestamp": {"timestamp": 2**64 - 1},
    "r1-odd-surrogate": {"message_id": b"\xed\xa0\x80", "application_headers": {"note": "fine"}},
}


def test_row1_a_property_py_amqp_cannot_decode_is_dead_lettered_as_invalid_properties(
    shared: Shared,
) -> None:
    """Non-UTF-8 strings and header names and a timestamp header of 2^63 in the properties: each message is dead-lettered as invalid_properties with its body (odd but decodable properties are copied as they are), the worker runs on, its neighbours are notified, and the dlq tools read even a raw copy of such a message."""
    poisons = {**ROW1_POISONS, **ROW1_ODD}
    good = neighbours("r1", len(poisons) + 1)
    bodies = {
        poison_id: encode(renewal(f"{poison_id}-c", None if poison_id in ROW1_POISONS else "p-nobody",
                                  decision_maker=DORA if poison_id in ROW1_POISONS else None, id=poison_id))
        for poison_id in poisons
    }  # fmt: skip
    with RawPublisher(shared.url) as raw:
        publish_between(
            shared,
            good,
            list(poisons.items()),
            lambda poison: raw.publish(
                EVENTS, "renewal.approaching", bodies[poison[0]], properties(content_type=JSON, **poison[1])
            ),
        )
    causes = shared.wait_notified(ids_of(good))
    shared.dlq.expect(len(poisons))
    rows = shared.dlq.rows()
    # A copy of a message whose properties could not be read has none: no content type, so the
    # tools do not read its body for an id, and name it by its position.
    assert [(row["id"], row["reason"]) for row in rows] == [
        *((None, "invalid_properties") for _ in ROW1_POISONS),
        *((poison_id, "no_recipient") for poison_id in ROW1_ODD),
    ]
    for row, poison_id in zip(rows, poisons, strict=True):
        letter = shared.dlq.show(row["id"] or f"#{row['position']}")
        assert letter["body"] == bodies[poison_id].decode()
        assert letter["properties"]["delivery_mode"] == 2
        assert (letter["exchange"], letter["routing_key"]) == (EVENTS, "renewal.approaching")
        if poison_id in ROW1_POISONS:
            assert "properties could not be decoded" in letter["detail"]
    odd = shared.dlq.show("r1-odd-timestamp")
    assert odd["properties"]["timestamp"] == 2**64 - 1
    assert not set(causes) & set(poisons)
    shared.assert_unshaken()

    # The same messages as a broker would dead-letter them (delivery limit): their raw properties
    # in the dead-letter queue itself. The tools read them, purge included.
    with RawPublisher(shared.url) as raw:
        for poison_id, poison in ROW1_POISONS.items():
            raw.publish("", DLQ, bodies[poison_id], properties(content_type=JSON, **poison))
    shared.dlq.expect(len(poisons) + len(ROW1_POISONS))
    rows = shared.dlq.exercise()
    assert [row["reason"] for row in rows].count("invalid_properties") == 2 * len(ROW1_POISONS)


# Row 3 -----------------------------------------------------------------------------------------


def test_row3_copies_of_a_message_with_a_user_id_leave_it_out(
    client: Client, start_worker: Any, amqp_url: str, store_url: str
) -> None:
    """A message carrying another user's user_id, which the broker refuses from the worker's user: its retry copies and its dead letter leave user_id out (tests/unit/test_hostile_input.py holds the rule), so the broker takes each of them and the worker never loses its connection."""
    worker = start_worker(
        faults={"RenewalApproaching": "fails_for_doomed_clients"}, RENEWALS_MAX_ATTEMPTS="3"
    )
    pid = worker.pid
    out = client.observe()
    user = f"renewals-hostile-{uuid.uuid4().hex[:8]}"
    vhost = unquote(urlsplit(amqp_url).path[1:])
    ctl = rabbitmqctl_for(amqp_url)
    subprocess.run([*ctl, "-q", "add_user", user, "hostile-pw"], check=True, capture_output=True)
    try:
        subprocess.run(
            [*ctl, "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
            check=True,
            capture_output=True,
        )
        parts = urlsplit(amqp_url)
        as_user = parts._replace(netloc=f"{user}:hostile-pw@{parts.hostname}:{parts.port or 5672}").geturl()
        # The premise: the worker's user (guest) may not publish a message naming another user.
        channel = client.connection.channel()
        channel.confirm_delivery()
        with pytest.raises(ChannelClosedByBroker) as refused:
            channel.basic_publish(EVENTS, "renewal.approaching", b"{}", pika.BasicProperties(user_id=user))
        assert refused.value.reply_code == 406

        upstream = Client(as_user)
        doomed = renewal("doomed-r3", None, decision_maker=DORA, id="r3-doomed")
        upstream.publish([doomed], user_id=user)
        upstream.close()
        after = renewal("r3-after-c", None, decision_maker=DORA, id="r3-after")
        client.publish([after])

        [(_, props, _)] = recorded(store_url, 1)
        assert (props.headers["x-error-reason"], props.headers["x-attempts"]) == ("retries_exhausted", 3)
        origin = [props.headers[f"x-original-{part}"] for part in ("exchange", "routing-key")]
        assert origin == [EVENTS, "renewal.approaching"]  # from the worker's own retry copies
        assert props.user_id is None
        notified = {json.loads(body)["data"]["causation_id"] for _, _, body in client.take(out, 1)}
        assert notified == {"r3-after"}
        assert len(worker.find("message.retry_scheduled")) == 2
        assert worker.running() and worker.pid == pid
        assert not worker.find("broker.connection_lost")
    finally:
        subprocess.run([*ctl, "-q", "delete_user", user], capture_output=True)


# Row 6 -----------------------------------------------------------------------------------------


def forged_notification(event_id: str) -> dict[str, Any]:
    """A NotificationRequested as the worker would publish it, addressed to an attacker."""
    attacker = {"role": "decision_maker", "email": "mallory@evil.example", "name": "Mallory", "user_id": None}
    data = {
        "notification_id": str(uuid.uuid4()), "causation_id": event_id, "kind": "renewal_reminder",
        "partner_id": None, "client_id": "r6-c", "client_name": None, "renewal_date": "2026-12-20",
        "days_until_renewal": 30, "subscription": None, "owner": "platform",
        "resolved_from": "system_default", "audience": "decision_maker", "to": [attacker], "cc": [],
        "fallback": None,
    }  # fmt: skip
    return envelope("NotificationRequested", data, id=event_id)


FORGED_HEADERS = {
    "x-original-exchange": NAMES.notifications_exchange,
    "x-original-routing-key": "notification.requested.decision_maker",
    "x-error-reason": "no_recipient",
    "x-attempts": 99,
    "x-failed-at": "2026-01-01T00:00:00.000+00:00",
}


def test_row6_forged_origin_headers_never_route_a_replay_to_the_notifications(shared: Shared) -> None:
    """Events carrying x-original-exchange: renewals.notifications (one a forged NotificationRequested) are dead-lettered with the origin the broker saw; neither `dlq replay` nor `--to-original` ever publishes anything to renewals.notifications, not even letters forged straight into the dead-letter queue."""
    forged = forged_notification("r6-forged")
    lonely = renewal("r6-lonely-c", "p-nobody", id="r6-lonely")
    good = neighbours("r6", 3)
    shared.client.publish([good[0]])
    shared.client.publish(
        [forged], routing_key="renewal.approaching", message_id="forged-msg", app_id="renewal-routing",
        type="NotificationRequested", headers=FORGED_HEADERS,
    )  # fmt: skip
    shared.client.publish([good[1]])
    shared.client.publish([lonely], headers=FORGED_HEADERS)
    shared.client.publish([good[2]])
    shared.wait_notified(ids_of(good))
    shared.dlq.expect(2)
    rows = {row["id"]: row for row in shared.dlq.rows()}
    assert (rows["r6-forged"]["reason"], rows["r6-lonely"]["reason"]) == (
        "unknown_event_type",
        "no_recipient",
    )
    for row in rows.values():
        assert (row["exchange"], row["routing_key"], row["attempts"]) == (EVENTS, "renewal.approaching", 1)
    # Letters forged straight into the dead-letter queue, claiming to come from the output.
    injected = [
        (forged_notification("r6-injected-notification"), FORGED_HEADERS),
        (renewal("r6-inj-c", "p-nobody", id="r6-injected-renewal"), FORGED_HEADERS),
        (
            renewal("r6-unr-c", "p-nobody", id="r6-injected-unrouted"),
            {**FORGED_HEADERS, "x-original-exchange": "", "x-original-routing-key": NAMES.unrouted_queue},
        ),
    ]
    for body, headers in injected:
        shared.client.channel.basic_publish(
            "", DLQ, encode(body),
            pika.BasicProperties(content_type=JSON, delivery_mode=2, message_id="forged-msg",
                                 app_id="renewal-routing", headers=headers),
        )  # fmt: skip
    shared.dlq.expect(2 + len(injected))
    default = json.loads(shared.dlq("replay", "--all", "--dry-run", "--json").stdout)
    trusting = json.loads(shared.dlq("replay", "--all", "--dry-run", "--json", "--to-original").stdout)
    for plans in (default, trusting):
        for step in plans:
            assert step["to"] is None or step["to"]["exchange"] == EVENTS, step
        assert {step["id"] for step in plans if step["action"] == "skip"} >= {
            "r6-injected-notification",
            "r6-injected-unrouted",
        }
    listed = shared.dlq.rows("--to-original")
    assert all(row["replay_to"] is None or row["replay_to"]["exchange"] == EVENTS for row in listed)

    def replays(event_id: str) -> int | None:
        return next((row["replays"] for row in shared.dlq.rows() if row["id"] == event_id), None)

    shared.dlq("replay", "--all", "--force")
    wait_until(lambda: replays("r6-lonely") == 1, "r6-lonely dead-lettered again after the replay")
    shared.dlq("replay", "--all", "--force", "--to-original")
    wait_until(
        lambda: replays("r6-lonely") == 2 and replays("r6-forged") == 1,
        "r6-lonely and r6-forged dead-lettered again after the replay --to-original",
    )
    time.sleep(0.3)  # a notification would have been confirmed with the dead letters of its batch
    assert shared.client.count(shared.out) == 0
    assert shared.client.count(NAMES.unrouted_queue) == 0
    left = {row["id"] for row in shared.dlq.rows()}
    assert {"r6-injected-notification", "r6-injected-unrouted"} <= left
    shared.assert_unshaken()
    shared.dlq.exercise()


# Row 8 -----------------------------------------------------------------------------------------


def test_row8_a_dead_letter_is_persistent_and_never_expires(shared: Shared) -> None:
    """Messages published transient (delivery_mode 1) with an expiration: their dead letters are persistent, carry no expiration, and keep the other properties."""
    good = neighbours("r8", 3)
    transient = {"delivery_mode": 1, "expiration": "60000", "priority": 3, "correlation_id": "r8-corr"}
    poisons = [
        ("r8-bad-json", b"{not json"),
        ("r8-lonely", encode(renewal("r8-lonely-c", "p-nobody", id="r8-lonely"))),
    ]

    def send(poison: tuple[str, bytes]) -> None:
        shared.client.channel.basic_publish(
            EVENTS, "renewal.approaching", poison[1],
            pika.BasicProperties(content_type="application/json", message_id=poison[0], **transient),
            mandatory=True,
        )  # fmt: skip

    publish_between(shared, good, poisons, send)
    shared.wait_notified(ids_of(good))
    shared.dlq.expect(2)
    for poison_id, _ in poisons:
        letter = shared.dlq.show(poison_id)
        assert letter["properties"]["delivery_mode"] == 2 and "expiration" not in letter["properties"]
    shared.assert_unshaken()
    shared.dlq.exercise()
    # The same, published afresh, read from the store by an independent connection.
    publish_between(shared, [], poisons, send)
    shared.dlq.expect(2)
    copies = [as_message(letter) for letter in stored_letters(shared.dlq.store_url, LetterFilter())]
    assert [props.headers["x-error-reason"] for _, props, _ in copies] == ["invalid_json", "no_recipient"]
    for _, props, _ in copies:
        assert (props.delivery_mode, props.expiration) == (2, None)
        assert (props.priority, props.correlation_id) == (3, "r8-corr")


# Row 9 -----------------------------------------------------------------------------------------

ESC_ID = "r9-\x1b[2J\x1b[H-\x07"
ESC_ADDRESS = "dora\x1b]0;pwned\x07@client.example"


def test_row9_control_characters_in_ids_addresses_and_headers_never_reach_the_log(shared: Shared) -> None:
    """Ids and addresses with ESC or BEL are invalid input, a header holding them is copied: the worker dead-letters each and writes no raw control character to its log. (tests/integration/test_hostile_batches.py runs the dlq tools on such letters and on letters with extreme times.)"""
    good = neighbours("r9", 4)
    hostile_events = [
        (renewal("r9-esc-id-c", None, decision_maker=DORA, id=ESC_ID), {}),
        (renewal("r9-esc-mail-c", None, decision_maker={**DORA, "email": ESC_ADDRESS}, id="r9-esc-mail"), {}),
        (renewal("r9-header-c", "p-nobody", id="r9-esc-header"), {"x-note\x1b[8m": "\x1b[31mred\x07\r"}),
    ]
    publish_between(
        shared,
        good,
        hostile_events,
        lambda event: shared.client.publish([event[0]], headers=event[1] or None),
    )
    shared.wait_notified(ids_of(good))
    shared.dlq.expect(3)
    rows = shared.dlq.rows()
    assert [(row["id"], row["reason"]) for row in rows] == [
        (ESC_ID, "invalid_envelope"),
        ("r9-esc-mail", "invalid_payload"),
        ("r9-esc-header", "no_recipient"),
    ]
    assert "control character" in rows[0]["detail"]
    shared.assert_unshaken()
    log = shared.worker.log_path.read_text()
    assert not RAW_CONTROL.search(log.replace("\n", "")), "a raw control character in the worker's log"


# Row 10 ----------------------------------------------------------------------------------------

SECRETS = ["Alpha1", "Bravo2", "Charlie3", "Delta4", "Echo5", "Foxtrot6", "Golf7", "Hotel8", "India9",
           "Juliet0", "Kilo1", "Lima2", "Mike3", "November4", "Oscar5", "Papa6", "Quebec7"]  # fmt: skip


def secret_configurations(amqp_url: str, postgres: str) -> list[dict[str, str]]:
    """Broker and store URLs whose passwords hold `/`, `?`, `#`, `@` or `password=`: a broker
    URL that cannot be read with a store that opens, one that is refused, a list of URLs, and
    store URLs that cannot be read or are refused."""
    parts = urlsplit(amqp_url)
    host, vhost = f"{parts.hostname}:{parts.port or 5672}", parts.path
    store = urlsplit(postgres)
    opens = f"{postgres}{'&' if store.query else '?'}password=Lima2"  # trust: the password is not checked

    def amqp(password: str) -> str:
        return f"amqp://guest:{password}@{host}{vhost}"

    return [
        {"RENEWALS_AMQP_URL": amqp("Alpha1/Bravo2?Charlie3#Delta4"), "RENEWALS_STORE_URL": opens},
        {
            "RENEWALS_AMQP_URL": f"{amqp('India9@Juliet0')};amqp://guest:Kilo1%23x@127.0.0.1:1/",
            "RENEWALS_STORE_URL": opens,
        },
        {
            "RENEWALS_AMQP_URL": amqp(quote("Mike3/November4", safe="")),
            "RENEWALS_STORE_URL": f"postgresql://nobody:Oscar5%2FPapa6@{store.netloc.rpartition('@')[2]}/test",
        },
        {
            "RENEWALS_AMQP_URL": amqp("Quebec7"),
            "RENEWALS_STORE_URL": f"postgresql://postgres:Echo5/Foxtrot6?Golf7#Hotel8@{store.netloc.rpartition('@')[2]}/test",
        },
    ]


def assert_no_secret(text: str, where: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{leaked} in {where}:\n{text[:3000]}"


def test_row10_passwords_with_reserved_characters_never_print(
    amqp_url: str, postgres_url: str, tmp_path: Path
) -> None:
    """Broker and store passwords holding `/`, `?`, `#`, `@` or a `password=` parameter never appear in the worker's log nor in what run, dlq list, send, topology --declare, demo and owners show print, whether or not they connect."""
    configurations = secret_configurations(amqp_url, postgres_url)
    workers = [
        WorkerProcess(config["RENEWALS_AMQP_URL"], tmp_path, store_url=config["RENEWALS_STORE_URL"],
                      name=f"secret-{n}", env={"RENEWALS_RECONNECT_MAX_DELAY": "0.5"}).start(wait=False)
        for n, config in enumerate(configurations)
    ]  # fmt: skip
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(renewal("r10-c", None, decision_maker=DORA, id="r10-evt")) + "\n")
    try:
        for config in configurations:
            env = {**config, "RENEWALS_LOG_FORMAT": "json"}
            for args in (
                ("dlq", "list"),
                ("dlq", "list", "--json"),
                ("send", str(events)),
                ("topology", "--declare"),
                ("demo", "--timeout", "2"),
                ("owners", "show", "--partner", "p1"),
            ):
                result = renewals(config["RENEWALS_AMQP_URL"], *args, **env)
                shown = f"{result.stdout}\n{result.stderr}\n{result.exception!r}"
                assert_no_secret(shown, f"`renewals {' '.join(args)}` with {sorted(config)}")

        def tried(worker: WorkerProcess) -> bool:
            events_seen = {line.get("event") for line in worker.lines()}
            return not worker.running() or bool(
                events_seen & {"store.unavailable", "broker.connection_lost", "worker.consuming"}
            )

        for worker in workers:
            wait_until(lambda worker=worker: tried(worker), "the worker to try its URLs", timeout=20)
    finally:
        for worker in workers:
            worker.kill()
    for worker in workers:
        # A URL that cannot be read at all (a raw `/` in a password) stops the worker before it
        # starts: exit 78 and one line, masked like every other.
        refused = worker.process is not None and worker.process.returncode == EX_CONFIG
        assert worker.find("worker.starting") or refused, worker.tail()
        assert_no_secret(worker.log_path.read_text(), f"the log of {worker.log_path.name}")
