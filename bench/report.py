"""The benchmark's one table, and the targets of issue 5 it is read against."""

from typing import Any

TARGETS = {
    "worker_over_ceiling": 0.7,
    "worker_over_naive": 3.0,
    "p99_ms_at_300": 25.0,
    "peak_rss_mb": 150.0,
    "startup_s": 1.0,
}


def verdicts(result: dict[str, Any]) -> dict[str, bool | None]:
    """Each target met or not, for the worker at its default log level (info)."""
    ratios = result["ratios"]
    latency_300 = result["latency"].get("300")
    memory = result["memory"]
    return {
        "worker_over_ceiling": ratios["worker_info_over_ceiling"] >= TARGETS["worker_over_ceiling"],
        "worker_over_naive": ratios["worker_info_over_naive"] >= TARGETS["worker_over_naive"],
        "p99_ms_at_300": None if latency_300 is None else latency_300["p99_ms"] <= TARGETS["p99_ms_at_300"],
        "peak_rss_mb": memory["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
        "startup_s": result["startup_s"]["empty_queue"] < TARGETS["startup_s"],
    }


def table(result: dict[str, Any]) -> str:
    """One table: throughput and ratios, latencies, memory, start-up; target and verdict beside."""
    ok = result["targets"]
    rows: list[tuple[str, str, str, str]] = []
    for name, label in (
        ("ceiling", "ceiling relay (batched confirms, multiple-ack)"),
        ("naive", "naive relay (confirm per message)"),
    ):
        run = result[name]
        rows.append((label, f"{run['events_per_s']:,.0f} ev/s", "", _cpu(run)))
    for level, run in result["worker"].items():
        label = "worker, info + metrics endpoint" if level == "metrics" else f"worker, log level {level}"
        rows.append((label, f"{run['events_per_s']:,.0f} ev/s", "", _cpu(run)))
    ratios = result["ratios"]
    for level in result["worker"]:
        rows.append(
            (
                f"worker ({level}) / ceiling",
                f"{ratios[f'worker_{level}_over_ceiling']:.2f}",
                ">= 0.7",
                _mark(ok, "worker_over_ceiling", level),
            )
        )
        rows.append(
            (
                f"worker ({level}) / naive",
                f"{ratios[f'worker_{level}_over_naive']:.2f}",
                ">= 3",
                _mark(ok, "worker_over_naive", level),
            )
        )
    for rate, run in result["latency"].items():
        target, mark = ("p99 <= 25 ms", _verdict(ok["p99_ms_at_300"])) if rate == "300" else ("", "")
        rows.append((f"worker latency at {rate}/s (p50 / p99 / max)", _latency(run), target, mark))
        relay = result["relay_latency"].get(rate)
        if relay:
            rows.append((f"ceiling relay latency at {rate}/s, same path", _latency(relay), "", ""))
    memory = result["memory"]
    rows.append(
        (
            f"peak RSS over {memory['events']:,} events (VmHWM)",
            f"{memory['peak_rss_mb']:.0f} MB",
            "<= 150 MB",
            _verdict(ok["peak_rss_mb"]),
        )
    )
    at = " / ".join(f"{mb:.0f}" for mb in memory["rss_mb_at"].values())
    marks = " / ".join(f"{int(count) // 1000}k" for count in memory["rss_mb_at"])
    rows.append((f"RSS at {marks} notifications", f"{at} MB", "flat", f"+{memory['rss_growth_mb']:.0f} MB"))
    rows.append(
        (
            f"long run throughput ({memory['events']:,} events, info)",
            f"{memory['events_per_s']:,.0f} ev/s",
            "",
            "",
        )
    )
    size = memory["store_bytes"]
    rows.append(("store size after the long run", "-" if size is None else f"{size / 2**20:.0f} MB", "", ""))
    startup = result["startup_s"]
    rows.append(
        (
            "startup to consuming (empty queue)",
            f"{startup['empty_queue']:.2f} s",
            "< 1 s",
            _verdict(ok["startup_s"]),
        )
    )
    rows.append(("startup to consuming (backlog, median)", f"{startup['backlog']:.2f} s", "", ""))
    widths = [max(len(row[i]) for row in [*rows, _HEADER]) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(_HEADER, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    meta = result["meta"]
    lines.append("")
    lines.append(
        f"commit {meta['commit']}, RabbitMQ {meta['broker_version']}, {meta['cpus']} CPUs, "
        f"store {meta['store']}, "
        f"{meta['events']:,} events per throughput run (x{meta['repeat']}, median), "
        f"bodies {meta['input_bytes']:.0f} B in / {meta['output_bytes']:.0f} B out"
    )
    return "\n".join(lines)


_HEADER = ("measurement", "value", "target", "met / CPU")


def _latency(run: dict[str, Any]) -> str:
    text = f"{run['p50_ms']:.1f} / {run['p99_ms']:.1f} / {run['max_ms']:.1f} ms"
    if run["achieved_per_s"] < 0.95 * run["offered_per_s"]:
        text += f" (offered only {run['achieved_per_s']:,.0f}/s)"
    return text


def _cpu(run: dict[str, Any]) -> str:
    """CPU share of one core used by the measured process and by the broker, during the run."""
    own = run.get("cpu_s")
    broker = run.get("broker_cpu_s")
    parts = []
    if own is not None:
        parts.append(f"self {100 * own / run['seconds']:.0f}%")
    if broker is not None:
        parts.append(f"broker {100 * broker / run['seconds']:.0f}%")
    return ", ".join(parts)


def _mark(ok: dict[str, bool | None], key: str, level: str) -> str:
    return _verdict(ok[key]) if level == "info" else ""


def _verdict(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")
