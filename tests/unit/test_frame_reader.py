"""The worker's reading path fed raw AMQP 0-9-1 bytes, no broker: the buffered transport cuts the
byte stream into frames (`_Buffered.read_frame`) and the `DeliveryReader` assembles basic.deliver,
its content header and body frames into a `Delivery`. What a broker could send (bodies in many
frames, heartbeats between them, properties py-amqp cannot decode, garbled frames) and what
becomes of it, pinned here rather than only end to end."""

from datetime import UTC, datetime, timedelta
from struct import pack

import pytest
from amqp.exceptions import FrameSyntaxError, UnexpectedFrame

from events import InvalidInput
from support.raw import UNDECODABLE_PROPERTIES, Field, deliver_frames, frame, properties, table
from tests.fake_wire import ByteSource, Reading, frames_of
from worker.broker.links import LOSSES
from worker.messaging import Delivery
from worker.service.intake import read

JSON = "application/cloudevents+json"
HEARTBEAT = frame(8, 0, b"")
CHANNEL_CLOSE_OK = frame(1, 1, pack(">HH", 20, 41))


def delivered(data: bytes) -> Delivery:
    (delivery,) = Reading().read_bytes(data)
    return delivery


# The delivery as it arrives ------------------------------------------------------------------


def test_every_field_of_a_delivery_comes_out_as_the_broker_sent_it() -> None:
    """Delivery tag (up to 2^64 - 1), redelivered, exchange, routing key, the properties and a headers table of every common type: the Delivery holds them exactly."""
    headers = {"n": 7, "big": -(2**40), "ratio": 2.5, "yes": True, "nothing": None, "list": [1, "x", {"c": True}],
               "nested": {"inner": {"deep": "€"}}, "text": "é" * 100}  # fmt: skip
    data = deliver_frames(
        b'{"id": "e1"}',
        properties(content_type=JSON, delivery_mode=2, priority=9, correlation_id="c-1", message_id="m-1",
                   timestamp=1_700_000_000, type="RenewalApproaching", app_id="upstream",
                   application_headers=headers),
        delivery_tag=2**64 - 1, redelivered=True, exchange="renewals.events", routing_key="owner.changed",
    )  # fmt: skip
    assert delivered(data) == Delivery(
        b'{"id": "e1"}',
        {"content_type": JSON, "delivery_mode": 2, "priority": 9, "correlation_id": "c-1", "message_id": "m-1",
         "timestamp": 1_700_000_000, "type": "RenewalApproaching", "app_id": "upstream",
         "application_headers": headers},
        "renewals.events", "owner.changed", 2**64 - 1, True, None,
    )  # fmt: skip


def test_the_redelivered_flag_is_read_from_its_bit() -> None:
    """A fresh delivery reads as not redelivered, a redelivery as redelivered, whatever its tag."""
    fresh = delivered(deliver_frames(b"{}", properties(), delivery_tag=256, redelivered=False))
    again = delivered(deliver_frames(b"{}", properties(), delivery_tag=257, redelivered=True))
    assert (fresh.redelivered, fresh.delivery_tag) == (False, 256)
    assert (again.redelivered, again.delivery_tag) == (True, 257)


def test_an_empty_body_is_complete_with_its_header() -> None:
    """A body size of 0 ends the delivery at the content header: no body frame is awaited."""
    reading = Reading()
    method, header = frames_of(deliver_frames(b"", properties(content_type=JSON)))
    assert reading.feed([method, header]) == [False, True]
    assert reading.reader.arrived == [
        Delivery(b"", {"content_type": JSON}, "renewals.events", "renewal.approaching", 1)
    ]


@pytest.mark.parametrize(
    ("size", "frame_max"),
    [(1, 4096), (4088, 4096), (4089, 4096), (3 * 4088 - 5, 4096), (100, 9), (1000, 108)],
    ids=["one-byte", "exactly-one-frame", "one-byte-over", "three-frames", "one-byte-frames", "ten-frames"],
)
def test_a_body_split_over_frames_is_assembled_byte_for_byte(size: int, frame_max: int) -> None:
    """Bodies in one frame, one byte over, several frames, frames of one byte: the body comes out exactly; one frame's body is kept as it came, several are assembled in one bytearray."""
    body = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    data = deliver_frames(body, properties(content_type=JSON), frame_max=frame_max)
    frames = frames_of(data)
    assert len(frames) == 2 + -(-size // (frame_max - 8))
    delivery = delivered(data)
    assert delivery.body == body
    assert type(delivery.body) is (bytes if len(frames) == 3 else bytearray)


@pytest.mark.parametrize("chunk", [1, 2, 7, 8, 13, 4096])
def test_the_byte_stream_cut_anywhere_gives_the_same_deliveries(chunk: int) -> None:
    """The socket hands over the stream in pieces of any size, frames and deliveries cut across them: the deliveries are the same as from one read."""
    data = b"".join(
        deliver_frames(bytes([tag]) * 300, properties(message_id=f"m{tag}"), delivery_tag=tag, frame_max=108)
        for tag in range(1, 4)
    )
    pieces = [data[start : start + chunk] for start in range(0, len(data), chunk)]
    assert Reading().read_bytes(*pieces) == Reading().read_bytes(data)
    assert [(d.delivery_tag, bytes(d.body)) for d in Reading().read_bytes(*pieces)] == [
        (tag, bytes([tag]) * 300) for tag in range(1, 4)
    ]


def test_heartbeats_between_the_frames_of_a_delivery_are_read_and_skipped() -> None:
    """Heartbeats after the method, after the header and between body frames: the delivery is the one sent without them, and every frame counts as read for py-amqp's heartbeat check."""
    method, header, *body = frames_of(deliver_frames(b"abcdefghij", properties(), frame_max=11))
    reading = Reading()
    (beat,) = frames_of(HEARTBEAT)
    stream = [beat, method, beat, header, beat, body[0], beat, beat, *body[1:]]
    assert reading.feed(stream) == [False] * (len(stream) - 1) + [True]
    assert [bytes(d.body) for d in reading.reader.arrived] == [b"abcdefghij"]
    assert reading.connection.bytes_recv == len(stream)
    assert reading.others == []


def test_deliveries_on_two_channels_are_assembled_apart() -> None:
    """Frames of deliveries on channels 1 and 2 interleaved: each channel's delivery gets its own header and body."""
    one = frames_of(deliver_frames(b"1" * 30, properties(message_id="one"), channel=1, frame_max=18))
    two = frames_of(deliver_frames(b"2" * 30, properties(message_id="two"), channel=2, frame_max=18))
    reading = Reading()
    reading.feed(each for pair in zip(one, two, strict=True) for each in pair)
    assert [(d.properties["message_id"], bytes(d.body)) for d in reading.reader.arrived] == [
        ("one", b"1" * 30),
        ("two", b"2" * 30),
    ]


def test_frames_that_are_not_deliveries_go_to_py_amqp() -> None:
    """A method other than basic.deliver reaches py-amqp's handler (its channel, method and arguments), as a heartbeat outside a delivery does."""
    reading = Reading()
    assert reading.feed(frames_of(CHANNEL_CLOSE_OK + HEARTBEAT)) == [True, False]
    assert reading.others == [(1, (20, 41), pack(">HH", 20, 41), None)]
    assert reading.reader.arrived == [] and reading.connection.bytes_recv == 2


# Properties py-amqp cannot decode ------------------------------------------------------------

UNDECODABLE_PROBLEMS = {
    "message-id": "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
    "type": "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xc3 in position 7: invalid continuation byte",
    "timestamp-header": "OverflowError: timestamp out of range for platform time_t",
    "header-name": "ValueError: header name b'\\xffname' is not UTF-8",
    "nested-name": "ValueError: header name b'in\\xfe' is not UTF-8",
}


@pytest.mark.parametrize("case", sorted(UNDECODABLE_PROPERTIES))
def test_properties_py_amqp_cannot_decode_mark_that_delivery_alone(case: str) -> None:
    """A string or header name that is not UTF-8 (at any depth) or a timestamp header of 2^63: that delivery comes out with its body, no properties and the problem named, and read() dead-letters it as invalid_properties; the next delivery on the channel is whole."""
    poison = deliver_frames(b'{"id": "p"}', properties(content_type=JSON, **UNDECODABLE_PROPERTIES[case]))
    fine = deliver_frames(b'{"id": "f"}', properties(content_type=JSON), delivery_tag=2)
    broken, after = Reading().read_bytes(poison + fine)
    assert broken == Delivery(
        b'{"id": "p"}', {}, "renewals.events", "renewal.approaching", 1, problem=UNDECODABLE_PROBLEMS[case]
    )
    assert (after.problem, after.content_type, after.body) == (None, JSON, b'{"id": "f"}')
    with pytest.raises(InvalidInput) as refused:
        read(broken, now=datetime.now(UTC), max_future=timedelta(minutes=5))
    assert refused.value.reason == "invalid_properties"
    assert refused.value.detail == f"properties could not be decoded: {UNDECODABLE_PROBLEMS[case]}"


@pytest.mark.parametrize(
    ("header_table", "problem"),
    [
        (table({"x": Field(b"Z", b"")}), "FrameSyntaxError: Unknown value in table: 'Z' (<class 'str'>)"),
        (pack(">I", 1000) + b"\x01a", "IndexError: index out of range"),
        (table({"outer": Field(b"A", pack(">I", 6) + b"F" + table({b"\x80": Field(b"V", b"")})[:5])}),
         "IndexError: index out of range"),
    ],
    ids=["unknown-field-type", "table-longer-than-the-frame", "array-with-a-cut-table"],
)  # fmt: skip
def test_a_malformed_header_table_is_that_delivery_s_problem(header_table: bytes, problem: str) -> None:
    """A field type py-amqp does not know, a table that claims more bytes than the frame holds, a table cut inside an array: the delivery's problem, never an exception out of the reader."""
    delivery = delivered(
        deliver_frames(b"{}", properties(content_type=JSON, application_headers=header_table))
    )
    assert (delivery.properties, delivery.problem, delivery.body) == ({}, problem, b"{}")


def test_property_flags_promising_more_than_the_header_holds_are_that_delivery_s_problem() -> None:
    """A content header whose flags announce a content type that is not there: the delivery's problem."""
    delivery = delivered(deliver_frames(b"{}", pack(">H", 1 << 15)))
    assert delivery.problem is not None and delivery.problem.startswith(
        "error: unpack_from requires a buffer"
    )
    assert delivery.properties == {}


def test_a_long_problem_is_cut_to_300_characters() -> None:
    """The problem names the undecodable value, but never more than 300 characters of it."""
    name = b"\xff" * 200
    delivery = delivered(
        deliver_frames(b"{}", properties(application_headers=table({name: Field(b"V", b"")})))
    )
    assert delivery.problem is not None and len(delivery.problem) == 300
    assert delivery.problem.startswith("ValueError: header name b'\\xff\\xff")


def test_odd_but_utf8_header_names_and_values_pass_as_they_are() -> None:
    """Empty, 255-byte, emoji and control-character names, a lone surrogate and a timestamp of 2^64 - 1: py-amqp decodes them, so they are the handlers' and the copy's to judge, not a problem."""
    names = {"": 1, "n" * 255: 2, "😀": 3, "x-note\x1b[8m": "\x1b[31mred\x07\r", "with space": 4}
    delivery = delivered(
        deliver_frames(
            b"{}", properties(message_id=b"\xed\xa0\x80", timestamp=2**64 - 1, application_headers=names)
        )
    )
    assert delivery.problem is None
    assert delivery.properties == {
        "message_id": "\ud800",
        "timestamp": 2**64 - 1,
        "application_headers": names,
    }


# Truncated and garbled frames ----------------------------------------------------------------


def test_a_frame_without_its_frame_end_is_refused_and_the_connection_counts_as_lost() -> None:
    """A frame whose end byte is not 0xCE raises UnexpectedFrame from the transport, which the links raise as BrokerLost: the runtime reconnects."""
    garbled = HEARTBEAT[:-1] + b"\x00"
    with pytest.raises(UnexpectedFrame, match="frame_end 0x00"):
        ByteSource(garbled).read_frame()
    assert isinstance(UnexpectedFrame(), LOSSES)


def test_a_frame_cut_off_by_the_socket_closing_is_a_lost_connection() -> None:
    """The socket closes in the middle of a frame: OSError (broker trouble), never a short frame."""
    with pytest.raises(OSError, match="Server unexpectedly closed connection"):
        ByteSource(CHANNEL_CLOSE_OK[:5], b"").read_frame()
    assert isinstance(OSError(), LOSSES)


@pytest.mark.parametrize(
    "nothing_yet", [BlockingIOError(), InterruptedError()], ids=["timeout", "interrupted"]
)
def test_a_read_that_finds_half_a_frame_consumes_nothing_and_the_next_resumes(nothing_yet: OSError) -> None:
    """Half a frame, then nothing to read: TimeoutError and nothing consumed; the rest arrives and the whole frame is read. An interrupted read is simply retried."""
    source = ByteSource(CHANNEL_CLOSE_OK[:9], nothing_yet)
    if isinstance(nothing_yet, BlockingIOError):
        with pytest.raises(TimeoutError):
            source.read_frame()
        assert not source.frame_ready() and bytes(source._buffer) == CHANNEL_CLOSE_OK[:9]
    source._reads.append(CHANNEL_CLOSE_OK[9:])
    assert source.read_frame() == (1, 1, pack(">HH", 20, 41))
    assert not source._buffer


def test_a_body_frame_where_the_header_belongs_is_unexpected() -> None:
    """basic.deliver followed by a body frame: UnexpectedFrame, the broker's fault, the connection is dropped."""
    method, _, body = frames_of(deliver_frames(b"{}", properties()))
    reading = Reading()
    reading.feed([method])
    with pytest.raises(UnexpectedFrame, match="Received frame 3 while expecting type: 2"):
        reading.feed([body])


def test_a_method_frame_in_the_middle_of_a_body_is_unexpected() -> None:
    """A method arriving on a channel whose body is still incomplete: UnexpectedFrame."""
    method, header, first, _ = frames_of(deliver_frames(b"abcd", properties(), frame_max=10))
    reading = Reading()
    reading.feed([method, header, first])
    with pytest.raises(UnexpectedFrame, match="Received frame 1 while expecting type: 3"):
        reading.feed(frames_of(CHANNEL_CLOSE_OK))


@pytest.mark.parametrize(
    "cut", [4, 12, 20], ids=["in-the-consumer-tag", "in-the-delivery-tag", "in-the-exchange"]
)
def test_a_truncated_basic_deliver_ends_the_connection_as_broker_trouble(cut: int) -> None:
    """A basic.deliver cut short (only a broker breaking AMQP could send it) raises
    FrameSyntaxError out of the frame handler: the runtime counts it as a lost connection and
    reconnects, instead of the worker dying of an IndexError."""
    method, *_ = frames_of(deliver_frames(b"{}", properties()))
    with pytest.raises(FrameSyntaxError, match=r"malformed basic\.deliver frame"):
        Reading().feed([(1, 1, method[2][:cut])])
    assert issubclass(FrameSyntaxError, LOSSES)


def test_a_content_header_cut_before_its_body_size_is_broker_trouble_and_one_cut_in_a_property_is_read_as_it_is() -> (
    None
):
    """A content header shorter than class, weight and body size: FrameSyntaxError, as above.
    Pinned as it is today: one cut inside a string property reads that string as far as it
    goes (py-amqp does not check), so the message is judged on what is left."""
    method, header, _ = frames_of(deliver_frames(b"{}", properties(content_type=JSON)))
    with pytest.raises(FrameSyntaxError, match="malformed content header frame"):
        Reading().feed([method, (2, 1, header[2][:11])])
    reading = Reading()
    reading.feed([method, (2, 1, header[2][:16]), (3, 1, b"{}")])
    (delivery,) = reading.reader.arrived
    assert (delivery.problem, delivery.properties, delivery.body) == (None, {"content_type": "a"}, b"{}")
    with pytest.raises(InvalidInput, match="content type"):
        read(delivery, now=datetime.now(UTC), max_future=timedelta(minutes=5))


def test_a_body_longer_than_its_header_said_is_kept_whole_as_it_is() -> None:
    """Pinned as it is today: a body frame longer than the declared size completes the delivery with all its bytes, one frame or several (the declared size is not enforced; the broker never sends more)."""
    method, header, _ = frames_of(deliver_frames(b"ab", properties()))
    reading = Reading()
    reading.feed([method, header, (3, 1, b"abcdef")])
    reading.feed([method, header, (3, 1, b"a"), (3, 1, b"bcdef")])
    assert [bytes(d.body) for d in reading.reader.arrived] == [b"abcdef", b"abcdef"]
