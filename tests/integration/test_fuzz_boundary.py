"""Fuzzing the boundary the way tests/unit/test_fuzz_wire.py fuzzes the worker's path: header
tables of every AMQP field type, nested up to 2,000 levels and past the frame size, laid out as
the frames a broker delivers, read by the worker's frame reader, recorded by the drain into
each store (SQLite and PostgreSQL), and read out through the console's API and page and
`renewals dlq show` / `list --json`. Nothing may raise, every letter is recorded, and nothing
handed out nests deeper than the boundary's MAX_DEPTH.

Budget: FUZZ's examples per store, about 30 s each on a quiet machine."""

import json
from pathlib import Path
from struct import pack

from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.console import VIEWER, basic, in_process
from support.nesting import depth_of
from support.raw import Field, deliver_frames, nested, properties, table
from tests.fake_wire import Reading
from worker.boundary import MAX_DEPTH
from worker.cli import main
from worker.dead_letters.drain import DeadLetterDrain
from worker.logs import get_logger
from worker.messaging import Delivery

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FRAME_MAX = 131072
HOSTILE = "<script>alert(1)</script>"


def long_string(data: bytes) -> Field:
    return Field(b"S", pack(">I", len(data)) + data)


def array(items: list[Field]) -> Field:
    content = b"".join(item.kind + item.payload for item in items)
    return Field(b"A", pack(">I", len(content)) + content)


def table_field(entries: dict[str, Field]) -> Field:
    return Field(b"F", table(entries))


# Every field type py-amqp reads (RabbitMQ's letters), each across its whole range.
scalars = st.one_of(
    st.booleans().map(lambda value: Field(b"t", bytes([value]))),
    st.integers(-(2**7), 2**7 - 1).map(lambda n: Field(b"b", pack(">b", n))),
    st.integers(0, 2**8 - 1).map(lambda n: Field(b"B", pack(">B", n))),
    st.integers(-(2**15), 2**15 - 1).map(lambda n: Field(b"s", pack(">h", n))),
    st.integers(-(2**15), 2**15 - 1).map(lambda n: Field(b"U", pack(">h", n))),
    st.integers(0, 2**16 - 1).map(lambda n: Field(b"u", pack(">H", n))),
    st.integers(-(2**31), 2**31 - 1).map(lambda n: Field(b"I", pack(">i", n))),
    st.integers(0, 2**32 - 1).map(lambda n: Field(b"i", pack(">I", n))),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: Field(b"l", pack(">q", n))),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: Field(b"L", pack(">q", n))),
    st.floats(width=32).map(lambda x: Field(b"f", pack(">f", x))),
    st.floats().map(lambda x: Field(b"d", pack(">d", x))),
    st.tuples(st.integers(0, 255), st.integers(-(2**31), 2**31 - 1)).map(
        lambda pair: Field(b"D", pack(">Bi", *pair))
    ),
    st.text(max_size=40).map(lambda text: long_string(text.encode("utf-8", "surrogatepass"))),
    st.sampled_from([HOSTILE, "\x1b[2J", "%_\\", "$b", "(cut: forged; sha256 0)"]).map(
        lambda text: long_string(text.encode())
    ),
    st.binary(max_size=40).map(long_string),  # not UTF-8: read as bytes
    st.binary(max_size=40).map(lambda data: Field(b"x", pack(">I", len(data)) + data)),
    st.integers(0, 2**64 - 1).map(lambda n: Field(b"T", pack(">Q", n))),  # past 9999: undecodable
    st.just(Field(b"V", b"")),
)
names = st.text(min_size=1, max_size=12).filter(lambda name: len(name.encode("utf-8", "surrogatepass")) < 256)
fields = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4).map(array) | st.dictionaries(names, inner, max_size=4).map(table_field)
    ),
    max_leaves=12,
)
depths = st.integers(0, 2000) | st.sampled_from([31, 32, 33, 480, 490, 900, 2000])
# Which levels are arrays: none, all, alternate, or in runs of k.
shapes = st.sampled_from(["tables", "arrays", "alternate"]) | st.integers(2, 50)
fillers = st.sampled_from([0, 0, 140_000])  # a header table past the frame size, as a reader may be sent one
bodies = st.sampled_from([
    b'{"specversion": "1.0", "id": "evt-x", "type": "RenewalApproaching", "source": "billing"}',
    b'{"id": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    b"\xff\xfe not utf-8",
    b"",
])  # fmt: skip


def arrays_of(shape: str | int, depth: int) -> list[bool]:
    if shape == "tables":
        return []
    if shape == "arrays":
        return [True] * depth
    if shape == "alternate":
        return [level % 2 == 1 for level in range(depth)]
    return [(level // int(shape)) % 2 == 1 for level in range(depth)]


@st.composite
def letters(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """One dead letter as a broker delivers it: headers with a deep spine, siblings of every type, maybe a filler past the frame."""
    depth, shape = draw(depths), draw(shapes)
    entries: dict[str, Field] = {
        "spine": nested(depth, draw(fields), arrays=arrays_of(shape, depth)),
        **draw(st.dictionaries(names, fields, max_size=5)),
    }
    filler = draw(fillers)
    if filler:
        entries["filler"] = long_string(b"y" * filler)
    if draw(st.booleans()):
        entries["x-error-reason"] = long_string(b"invalid_envelope")
    if draw(st.booleans()):
        entries["x-failed-at"] = long_string(b"2999-01-01T00:00:00+00:00")
    return draw(bodies), properties(
        content_type="application/cloudevents+json", message_id="m-1", application_headers=table(entries)
    )


def delivered(batch: list[tuple[bytes, bytes]], first_tag: int) -> list[Delivery]:
    data = b"".join(
        deliver_frames(
            body,
            header,
            frame_max=FRAME_MAX,
            delivery_tag=first_tag + n,
            exchange="",
            routing_key="renewals.worker.dlq",
        )
        for n, (body, header) in enumerate(batch)
    )
    return Reading().read_bytes(data)


def dlq(store_url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, ["dlq", *args], env={"RENEWALS_STORE_URL": store_url})
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def test_any_header_table_from_the_wire_is_recorded_and_shown_through_every_door(
    tmp_path: Path, store_url: str
) -> None:
    """Hypothesis-built header tables of every AMQP type, up to 2,000 deep and past the frame size: the drain records each into the store, and the API, the page, `dlq show` and `dlq list --json` show it, none raising, none deeper than MAX_DEPTH."""
    client, records = in_process(tmp_path, [], store_url=store_url)
    drain = DeadLetterDrain(None, records, name="renewals.worker.dlq", log=get_logger("test"))  # type: ignore[arg-type]  # record() never touches the queue
    auth = basic(VIEWER)
    tags = iter(range(1, 10**6, 10))

    @FUZZ
    @given(st.lists(letters(), min_size=1, max_size=3))
    def through_every_door(batch: list[tuple[bytes, bytes]]) -> None:
        deliveries = delivered(batch, next(tags))
        assert len(deliveries) == len(batch)
        before = records.count()
        drain.record(deliveries)
        recorded = records.page(limit=500, newest_first=True).letters[: records.count() - before]
        for summary in recorded:
            api = client.get(f"/api/dead-letters/{summary.id}", headers=auth)
            assert api.status_code == 200, api.text[:300]
            shown = api.json()
            assert depth_of(shown["headers"]) <= MAX_DEPTH and depth_of(shown["properties"]) <= MAX_DEPTH
            assert summary.failed_at is None or summary.failed_at <= summary.received_at
            page = client.get(f"/letters/{summary.id}", headers=auth)
            assert page.status_code == 200 and HOSTILE not in page.text
            as_json = json.loads(dlq(store_url, "show", f"#{summary.id}", "--json").stdout)
            assert depth_of(as_json["headers"]) <= MAX_DEPTH
            dlq(store_url, "show", f"#{summary.id}")
        assert len(json.loads(dlq(store_url, "list", "--json").stdout)) == records.count()

    through_every_door()
