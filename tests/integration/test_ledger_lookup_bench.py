"""The ledger lookup measurement (`python -m bench.ledger_lookup`): at a million rows a client's
reminders, and the Reminders page of every client, come back in under 10 ms on both stores (slow),
and a small run reports every figure (so the measurement cannot rot)."""

import pytest

from bench.ledger_lookup import SHAPES, main

LIMIT_MS = 10.0


def check_figures(report: dict, rows: int) -> None:
    for kind in ("sqlite", "postgresql"):
        figures = report[kind]
        assert set(figures["shapes"]) == set(SHAPES)
        assert all(shape["rows_found"] > 0 and shape["plan"] for shape in figures["shapes"].values())
        assert figures["storage_bytes"] > rows * 100, (
            "a ledger row takes more than 100 bytes with its indexes"
        )
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
        assert 0 < figures["best_of_3_p50_ms"] <= figures["best_of_3_p99_ms"] <= figures["p99_ms"]
        assert set(figures["pages"]) == {"newest", "next", "since"}
        for page in figures["pages"].values():
            assert page["rows_found"] > 0 and 0 < page["p50_ms"] <= page["p99_ms"] <= page["max_ms"]


def test_a_small_run_reports_every_figure_on_both_stores(postgres: str) -> None:
    """20,000 rows: each shape finds rows, and sizes, plans and percentiles are all reported."""
    report = main(["--rows", "20000", "--lookups", "20", "--postgres-url", postgres])
    check_figures(report, 20_000)


@pytest.mark.slow
def test_a_clients_reminders_come_back_in_under_10_ms_at_a_million_rows(postgres: str) -> None:
    """A million rows per store: in every lookup shape the 99th percentile of each lookup's best
    of three runs, and the median of the first runs, are under 10 ms; so is the median Reminders
    page of every client (newest, next, since a moment), as the product asks for it."""
    report = main(["--rows", "1000000", "--postgres-url", postgres])
    check_figures(report, 1_000_000)
    for kind in ("sqlite", "postgresql"):
        shapes = report[kind]["shapes"].items()
        slowest = {shape: figures["best_of_3_p99_ms"] for shape, figures in shapes}
        assert max(slowest.values()) < LIMIT_MS, (kind, slowest)
        assert max(figures["p50_ms"] for _shape, figures in shapes) < LIMIT_MS, (kind, report[kind])
        pages = {name: page["p50_ms"] for name, page in report[kind]["pages"].items()}
        assert max(pages.values()) < LIMIT_MS, (kind, report[kind]["pages"])
