"""What a run reports: the seed, the stream, what billing and the workers saw, the faults with
their times, the checker's table and its verdict."""

from dataclasses import dataclass
from pathlib import Path

from support.chaos.checker import Verdict
from support.chaos.deployment import Incident
from support.chaos.options import Options
from support.chaos.stream import Stream


@dataclass
class Report:
    options: Options
    stream: Stream
    incidents: list[Incident]
    verdict: Verdict
    billing: dict[str, object]
    seen: dict[str, int]
    """How often the workers logged what shows a fault took effect (store.lost, retries...)."""
    seconds: float
    folder: Path | None
    """The workers' logs, kept when the run failed."""
    rabbitmq: str
    """The version the RabbitMQ nodes said they run."""

    def render(self) -> str:
        """The seed, the stream, the faults with their times, the table and the verdict."""
        o = self.options
        lines = [
            f"seed {o.seed}: {self.stream.size} messages through {o.workers} worker(s) on {o.store},"
            f" {'a 3-node cluster' if o.cluster else 'one node'} of RabbitMQ {self.rabbitmq},"
            f" in {self.seconds:.0f}s",
            "",
            "stream:",
            *(f"  {count:7d}  {what}" for what, count in sorted(self.stream.census.items())),
            "billing:",
            *(f"  {value!s:>7}  {what}" for what, value in self.billing.items()),
            "the workers logged:",
            *(f"  {count:7d}  {event}" for event, count in self.seen.items()),
            "faults:",
            *(f"  {i.at:7.1f}s  {i.fault:<16} {i.detail}" for i in self.incidents),
            "",
            self.verdict.table(),
            "",
        ]
        if self.verdict.examples:
            lines += ["examples:", *(f"  {example}" for example in self.verdict.examples), ""]
        if self.folder is not None:
            lines.append(f"worker logs kept in {self.folder}")
        lost, duplicated, unexpected = (
            sum(getattr(r, c) for r in self.verdict.rows) for c in ("lost", "duplicated", "unexpected")
        )
        verdict = "OK" if self.verdict.ok else "FAILED"
        lines.append(
            f"{verdict}: lost {lost}, duplicated {duplicated}, unexpected {unexpected} (seed {o.seed})"
        )
        return "\n".join(lines)
