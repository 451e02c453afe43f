"""The benchmark's smoke run (`--quick`), so it cannot rot: every figure present, none timed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.broker, pytest.mark.any_broker]


def test_quick_benchmark_reports_every_figure(amqp_url: str, tmp_path: Path) -> None:
    """A few hundred events through relays, one and two workers, one `run --processes 2`, latency and a pruning memory run give a full report, with CPU per event for the relays and every worker run."""
    out = tmp_path / "bench.json"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.benchmark",
            "--quick",
            "--amqp-url",
            amqp_url,
            "--json",
            str(out),
            "--workers",
            "1,2",
            "--processes",
            "1,2",
            "--retention-days",
            "0.00002",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "worker (info) / ceiling" in finished.stdout
    assert (
        "2 workers (info) / ceiling" in finished.stdout and "2 workers / 1 worker (info)" in finished.stdout
    )
    assert "worker --processes 2 (info) / ceiling" in finished.stdout
    assert "worker (info) CPU per event" in finished.stdout and "x the ceiling relay's)" in finished.stdout
    result = json.loads(out.read_text())
    assert {
        "meta",
        "ceiling",
        "naive",
        "worker",
        "ratios",
        "latency",
        "relay_latency",
        "memory",
        "startup_s",
        "targets",
    } <= result.keys()
    assert "cpu_us_per_event" in result["targets"]
    for run in (result["ceiling"], result["naive"], *result["worker"].values()):
        assert run["events"] > 0 and run["events_per_s"] > 0
    assert set(result["worker"]) == {"info", "warning", "info_x2", "warning_x2", "info_p2", "warning_p2"}
    assert [run["workers"] for run in result["worker"].values()] == [1, 1, 2, 2, 1, 1]
    assert [run["processes"] for run in result["worker"].values()] == [1, 1, 1, 1, 2, 2]
    assert set(result["scaling"]) == {"info_x2", "warning_x2", "info_p2", "warning_p2"}
    for run in (result["ceiling"], result["naive"], *result["worker"].values()):
        assert run["cpu_s"] > 0 and run["cpu_us_per_event"] == run["cpu_s"] / run["events"] * 1e6
    assert all(run["dead_letters"] == 0 for run in result["worker"].values())
    assert all(ratio > 0 for ratio in result["ratios"].values())
    for latency in (*result["latency"].values(), *result["relay_latency"].values()):
        assert (
            latency["notifications"] > 0 and 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        )
    memory = result["memory"]
    assert memory["peak_rss_mb"] > 0 and memory["store_bytes"] > 0 and len(memory["rss_mb_at"]) == 3
    assert memory["retention_days"] == 0.00002 and len(memory["store_at"]) == 3
    assert all(sample["bytes"] > 0 and sample["inbox"] >= 0 for sample in memory["store_at"].values())
    assert result["startup_s"]["empty_queue"] > 0


def test_dead_letter_benchmark_reports_every_query_on_both_backends(
    postgres_url: str, tmp_path: Path
) -> None:
    """`--dead-letters` on a few hundred letters: every query timed on SQLite and PostgreSQL (none judged)."""
    out = tmp_path / "dead-letters.json"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--dead-letters",
            "300",
            "--store-url",
            postgres_url,
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["backends"]) == {"sqlite", "postgresql"}
    sqlite, postgresql = (result["backends"][name]["ms"] for name in ("sqlite", "postgresql"))
    assert set(sqlite) == set(postgresql) and "groups with 24 h trend" in sqlite
    assert all(ms >= 0 for ms in [*sqlite.values(), *postgresql.values()])
    assert "dead-letter records at 300 letters" in finished.stdout


def test_profiling_without_py_spy_says_how_to_install_it_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--profile` with py-spy missing stops at once with the command that installs it, not with a
    traceback minutes into the run."""
    from bench import benchmark, profiling

    monkeypatch.setattr(profiling, "py_spy", lambda: str(tmp_path / "no-py-spy"))
    with pytest.raises(SystemExit) as stopped:
        benchmark.options(["--profile", str(tmp_path / "profile.txt")])
    assert stopped.value.code == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said.endswith(
        "error: --profile needs py-spy, which is not installed: " + f"{profiling.pip()} install py-spy"
    )
    monkeypatch.setattr(profiling, "py_spy", lambda: sys.executable)  # some file that exists
    assert benchmark.options(["--profile", str(tmp_path / "profile.txt")]).profile


def test_the_batches_bench_reports_cpu_commits_and_wal_pages(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench.batches` in a few batches: CPU, wall and commit time per event, and the
    WAL's pages per table, the tables every reminder writes among them."""
    from bench import batches

    [figures] = batches.main(["--events", "600", "--batch-size", "200", "--repeat", "1", "--wal-pages"])
    assert 0 < figures["commit_us_per_event"] < figures["wall_us_per_event"]
    assert figures["cpu_us_per_event"] > 0
    assert 0 <= figures["gc_us_per_event"] < figures["cpu_us_per_event"]
    pages = figures["wal_pages_per_event"]
    assert all(
        pages.get(name, 0) > 0 for name in ("inbox", "reminders", "decision_makers", "reminder_ledger")
    )
    assert "median of 1:" in capsys.readouterr().out


def test_the_batches_bench_compares_this_tree_with_a_commit(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench.batches --against HEAD`: both trees run in turns, each in a process of
    its own, and the worktree made for the commit is gone afterwards."""
    from bench import batches

    def worktrees() -> str:
        listed = subprocess.run(
            ["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return listed.stdout

    before = worktrees()
    argv = ["--against", "HEAD", "--rounds", "2", "--events", "300", "--batch-size", "100"]
    [figures] = batches.main(argv)
    assert figures["unit"] == "us CPU per event"
    assert [len(runs) for runs in figures["per_event"].values()] == [2, 2]
    assert all(value > 0 for runs in figures["per_event"].values() for value in runs)
    low, high = figures["ratio_middle_half"]
    assert low <= figures["ratio_median"] <= high
    assert "this / HEAD:" in capsys.readouterr().out
    assert worktrees() == before


def test_the_batches_bench_counts_the_same_instructions_run_after_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--instructions`: callgrind counts the batches alone, so two runs of one tree agree to a
    hair where their times would not, and twice the events cost about twice the count."""
    from bench import batches

    small = ["--events", "100", "--batch-size", "50"]
    [first] = batches.main(["--instructions", *small])
    [again] = batches.main(["--instructions", *small])
    per_event = first["instructions_per_event"]
    assert 10_000 < per_event < 100_000_000  # the batches, not nothing, and not the whole process
    assert abs(again["instructions_per_event"] - per_event) < 0.001 * per_event
    assert "instructions per event (100 events, batches of 50)" in capsys.readouterr().out


def test_the_batches_bench_names_a_commit_it_cannot_check_out_in_one_line() -> None:
    """A REF that names no commit is the user's mistake: one line saying so, no traceback."""
    answer = subprocess.run(
        [sys.executable, "-m", "bench.batches", "--against", "no-such-commit-x9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert answer.returncode == 1
    assert answer.stderr.startswith("error: cannot check out 'no-such-commit-x9' to compare with: ")
    assert len(answer.stderr.splitlines()) == 1 and "Traceback" not in answer.stderr
