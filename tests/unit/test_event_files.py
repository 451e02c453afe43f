"""`renewals send` reads what billing exports: JSON, JSON arrays, NDJSON."""

import io

import pytest

from worker.tools.event_files import check, complete, read_events


def test_reads_an_object_an_array_and_ndjson() -> None:
    """The three shapes give the same list of events."""
    one = '{"type": "OwnerChanged"}'
    assert read_events(io.StringIO(one)) == [{"type": "OwnerChanged"}]
    assert read_events(io.StringIO(f"[{one}, {one}]")) == [{"type": "OwnerChanged"}] * 2
    assert read_events(io.StringIO(f"{one}\n\n{one}\n")) == [{"type": "OwnerChanged"}] * 2


def test_a_bad_ndjson_line_is_named() -> None:
    """The error says which line is broken."""
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_events(io.StringIO('{"a": 1}\n{oops\n'))


def test_missing_attributes_are_filled_and_bad_events_reported() -> None:
    """A trial file may hold only type and data; what the worker would reject is listed."""
    good = complete({"type": "OwnerChanged", "data": {"partner_id": "p", "owner": "platform"}}, "urn:test")
    bad = complete({"type": "OwnerChanged", "data": {"partner_id": "p", "owner": "partner"}}, "urn:test")
    assert {"specversion", "id", "source", "time"} <= set(good)
    problems = check([good, bad])
    assert len(problems) == 1 and problems[0].startswith("event 2") and "invalid_payload" in problems[0]
