"""The benchmark's one table, and the targets of issue 5 it is read against."""

from typing import Any

TARGETS = {
    "worker_over_ceiling": 0.7,
    "worker_over_naive": 3.0,
    "p99_ms_at_300": 25.0,
    "peak_rss_mb": 150.0,
    "startup_s": 1.0,
    "cpu_us_per_event": 110.0,
}


def verdicts(result: dict[str, Any]) -> dict[str, bool | None]:
    """Each target met or not, for the worker at its default log level (info)."""
    ratios = result["ratios"]
    latency_300 = result["latency"].get("300")
    memory = result["memory"]
    over_ceiling = ratios.get("worker_info_over_ceiling")  # absent when no run had one worker
    over_naive = ratios.get("worker_info_over_naive")
    one = result["worker"].get("info", {}).get("cpu_us_per_event")
    return {
        "worker_over_ceiling": None
        if over_ceiling is None
        else over_ceiling >= TARGETS["worker_over_ceiling"],
        "worker_over_naive": None if over_naive is None else over_naive >= TARGETS["worker_over_naive"],
        "p99_ms_at_300": None if latency_300 is None else latency_300["p99_ms"] <= TARGETS["p99_ms_at_300"],
        "peak_rss_mb": memory["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
        "startup_s": result["startup_s"]["empty_queue"] < TARGETS["startup_s"],
        "cpu_us_per_event": None if one is None else one <= TARGETS["cpu_us_per_event"],
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
    for name, run in result["worker"].items():
        rows.append(
            (f"{_who(run)}, log level {_level(name)}", f"{run['events_per_s']:,.0f} ev/s", "", _cpu(run))
        )
    ratios = result["ratios"]
    for name, run in result["worker"].items():
        judged = name == "info"
        rows.append(
            (
                f"{_who(run)} ({_level(name)}) / ceiling",
                f"{ratios[f'worker_{name}_over_ceiling']:.2f}",
                ">= 0.7" if _one(run) else ">= 0.9" if run.get("processes", 1) > 1 else "",
                _verdict(ok["worker_over_ceiling"]) if judged else "",
            )
        )
        rows.append(
            (
                f"{_who(run)} ({_level(name)}) / naive",
                f"{ratios[f'worker_{name}_over_naive']:.2f}",
                ">= 3" if _one(run) else "",
                _verdict(ok["worker_over_naive"]) if judged else "",
            )
        )
    for name, factor in result.get("scaling", {}).items():
        run = result["worker"][name]
        rows.append((f"{_who(run)} / 1 worker ({_level(name)})", f"{factor:.2f}x", "", ""))
    relay_us = result["ceiling"]["cpu_us_per_event"]
    for name, run in result["worker"].items():
        judged, us = name == "info", run["cpu_us_per_event"]
        rows.append(
            (
                f"{_who(run)} ({_level(name)}) CPU per event",
                f"{us:.0f} us ({us / relay_us:.2f}x the ceiling relay's)",
                "<= 110 us" if judged else "",
                _verdict(ok.get("cpu_us_per_event")) if judged else "",
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
    retention = memory.get("retention_days")
    kept = "" if retention is None else f", retention {retention:g} d"
    rows.append(
        (
            f"long run throughput ({memory['events']:,} events, info{kept})",
            f"{memory['events_per_s']:,.0f} ev/s",
            "",
            "",
        )
    )
    store_at = memory.get("store_at", {})
    if store_at:
        sizes = [sample["bytes"] for sample in store_at.values()]
        if None not in sizes:
            rows.append(
                (
                    f"store size at {marks} notifications",
                    " / ".join(f"{size / 2**20:.0f}" for size in sizes) + " MB",
                    "level" if retention is not None else "",
                    f"+{(sizes[-1] - sizes[0]) / 2**20:.0f} MB",
                )
            )
        for table, rows_of in (("inbox", "inbox entries"), ("reminders", "reminder keys")):
            counts = [sample[table] for sample in store_at.values()]
            rows.append(
                (
                    f"{rows_of} at {marks} notifications",
                    " / ".join(f"{count / 1000:.0f}k" for count in counts),
                    "level" if retention is not None else "",
                    f"{counts[-1] - counts[0]:+,}",
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
    server = meta.get("store_server")
    if server and server.get("autovacuum") == "off":
        lines.append("")
        lines.append(
            f"PostgreSQL {server.get('server_version')} runs with autovacuum off: pruned rows are never"
            " vacuumed, so the store's size on disk grows even where its row counts level off."
        )
    lines.append("")
    lines.append(
        f"commit {meta['commit']}, RabbitMQ {meta['broker_version']}, {meta['cpus']} CPUs, "
        f"store {meta['store']}, "
        f"{meta['events']:,} events per throughput run (x{meta['repeat']}, median), "
        f"workers {', '.join(str(count) for count in meta.get('workers', [1]))}, "
        f"processes {', '.join(str(count) for count in meta.get('processes', [1]))}, "
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
        parts.append(f"self {100 * own / run['seconds']:.0f}%, {own / run['events'] * 1e6:.0f} us/ev")
    if broker is not None:
        parts.append(f"broker {100 * broker / run['seconds']:.0f}%")
    return ", ".join(parts)


def _who(run: dict[str, Any]) -> str:
    count, processes = run.get("workers", 1), run.get("processes", 1)
    if processes > 1:
        return f"worker --processes {processes}"
    return "worker" if count == 1 else f"{count} workers"


def _one(run: dict[str, Any]) -> bool:
    """One worker process (no supervisor): the run the single-process targets judge."""
    return bool(run.get("workers", 1) == 1 and run.get("processes", 1) == 1)


def _level(name: str) -> str:
    """The log level in a run's name (`info`, `info_x3`, `info_p2`; `metrics` is info with the
    endpoint on)."""
    level = name.split("_x", 1)[0].split("_p", 1)[0]
    described = {
        "metrics": "info + metrics endpoint",
        "traced": "info + tracing, always_on",
        "traced-1pct": "info + tracing, parentbased_traceidratio 0.01",
    }
    return described.get(level, level)


def _verdict(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")
