"""The 24-hour trend of a group as the geometry of an inline SVG bar chart: one bar per hour,
oldest first, scaled to the busiest hour, each with the hour and its count for a `<title>`
(the browser shows it on hover). No script and no inline style: the CSP allows neither."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

BAR_WIDTH = 8
GAP = 2
HEIGHT = 40  # pixels of the tallest bar
AXIS = 14  # pixels under the bars for the axis and its labels
LEFT = 22  # pixels left of the bars for the scale's top value


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    y: int
    height: int
    count: int
    title: str  # "13:00-14:00 UTC: 3 letters"


@dataclass(frozen=True, slots=True)
class Trend:
    bars: list[Bar]
    top: int  # the scale's top value (the busiest hour's count)
    width: int
    height: int
    axis_y: int
    first_label: str  # the oldest hour, under the first bar
    last_label: str  # "now", under the last bar
    total: int


def trend(counts: list[int], *, now: datetime | None = None) -> Trend:
    """The chart of `counts` (letters per hour, oldest first, the last one the current hour)."""
    hour = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    top = max(counts, default=0)
    bars = []
    for index, count in enumerate(counts):
        start = hour - timedelta(hours=len(counts) - 1 - index)
        height = 0 if top == 0 else max(1, round(count * HEIGHT / top)) if count else 0
        letters = "letter" if count == 1 else "letters"
        bars.append(
            Bar(
                x=LEFT + index * (BAR_WIDTH + GAP),
                y=HEIGHT - height,
                height=height,
                count=count,
                title=f"{start:%H:%M}-{start + timedelta(hours=1):%H:%M} UTC: {count} {letters}",
            )
        )
    first = hour - timedelta(hours=max(len(counts) - 1, 0))
    return Trend(
        bars=bars,
        top=top,
        width=LEFT + len(counts) * (BAR_WIDTH + GAP),
        height=HEIGHT + AXIS,
        axis_y=HEIGHT,
        first_label=f"{first:%H:%M}",
        last_label="now",
        total=sum(counts),
    )
