"""The benchmark's phases, in one vhost and one process: relays, worker runs, latency, memory."""

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from bench import latency, relays
from bench.broker import Watcher, prefill
from bench.mix import Mix
from bench.profiling import Profiler
from bench.stores import RunStores, store_bytes, store_rows
from bench.worker_runs import OBSERVED, WorkerRun, broker_pid, cpu_seconds, timed_run, wait_consuming
from support.client import NAMES
from support.services import free_port
from support.worker_process import WorkerProcess, stop_all

RELAY_EVENTS, RELAY_IN, RELAY_OUT = "bench.relay.events", "bench.relay.in", "bench.relay.out"
ROOT = Path(__file__).resolve().parent.parent
METRICS = "metrics"  # the pseudo log level of a worker run at info with its metrics endpoint on
# Pseudo log levels of worker runs at info with tracing on, exporting over OTLP/HTTP to a receiver
# the benchmark runs (it answers without decoding): every span sampled, or 1% of the traces.
TRACED = {
    "traced": {"OTEL_TRACES_SAMPLER": "always_on"},
    "traced-1pct": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
}
# With --retention-days, the long run's reminders are for renewals already past (as most are,
# once a deployment has run for a while), so their keys expire as well as the inbox entries.
PAST_RENEWALS = date(2020, 1, 6)


class Phases:
    """Everything one run measures; `results` is what the table and the JSON are made of."""

    def __init__(self, options: Any, url: str, folder: Path) -> None:
        self.o = options
        self.url = url
        self.folder = folder
        self.mix = Mix(seed=options.seed)
        self.watcher = Watcher(url)
        self.workers: list[WorkerProcess] = []
        self.output_bytes = 0.0
        self.input_bytes = 0.0
        self.batching = relays.worker_batching(options.worker_env)
        self.stores = RunStores(options.store_url, folder)
        self.receiver: Any = None  # an OtlpReceiver, once a traced run needs one

    def worker(
        self, name: str, level: str, store: str | None = None, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        """A worker process (not started) on `store`, or on a new store of its own."""
        store = store or self.stores.new(name)
        env = {"RENEWALS_LOG_LEVEL": level, **(env or {}), **self.o.worker_env}
        if level == METRICS:  # info, with the metrics and health endpoints served
            env |= {"RENEWALS_LOG_LEVEL": "info", "RENEWALS_METRICS_PORT": str(free_port())}
        if level in TRACED:
            env |= {"RENEWALS_LOG_LEVEL": "info", **TRACED[level], "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp()}
        process = WorkerProcess(self.url, self.folder, store_url=store, name=name, env=env)
        self.workers.append(process)
        return process

    def otlp(self) -> str:
        """The endpoint of the benchmark's OTLP receiver (started on first use)."""
        if self.receiver is None:
            from support.otlp_receiver import OtlpReceiver  # needs opentelemetry-proto: traced runs only

            self.receiver = OtlpReceiver(keep=False).__enter__()
        endpoint: str = self.receiver.endpoint
        return endpoint

    def stop_all(self) -> None:
        stop_all(self.workers)
        self.watcher.close()
        if self.receiver is not None:
            self.receiver.__exit__(None, None, None)
        if not self.o.keep:
            self.stores.drop_all()

    def declare_and_sample(self) -> float:
        """Start the worker once on an empty queue: its topology, its start-up time, and the
        size of its notifications (the relays publish bodies of that size)."""
        worker = self.worker("declare", "info").start(wait=False)
        startup_s = wait_consuming(worker, self.watcher)
        self.watcher.quorum_queue(OBSERVED, {"x-queue-type": "quorum"}, NAMES.notifications_exchange, "#")
        sample = self.mix.take(200)
        self.input_bytes = sum(len(m.body) for m in sample) / len(sample)
        expected = prefill(self.url, NAMES.events_exchange, sample).notifications
        self.watcher.wait_until(
            lambda: self.watcher.depth(OBSERVED)[0] >= expected, timeout=30, what="the sample"
        )
        sizes = []
        while (message := self.watcher.channel.basic_get(OBSERVED, no_ack=True)) is not None:
            sizes.append(len(message.body))
        self.output_bytes = sum(sizes) / len(sizes)
        worker.stop()
        return startup_s

    def relays(self) -> dict[str, dict[str, Any]]:
        """Ceiling and naive relay over the same pre-filled messages."""
        from worker.broker.topology import BrokerVersion, topology
        from worker.settings import Settings

        # pydantic-settings fills the other fields from defaults and the environment
        settings = Settings(queue=RELAY_IN, dead_letter_queue=f"{RELAY_IN}.dlq")  # type: ignore[call-arg]
        plan = topology(settings, BrokerVersion.of(self.watcher.connection))
        arguments = next(q.arguments for q in plan.queues if q.name == RELAY_IN)
        self.watcher.topic_exchange(RELAY_EVENTS)
        self.watcher.topic_exchange(RELAY_OUT)
        self.watcher.quorum_queue(RELAY_IN, arguments, RELAY_EVENTS, "#")
        self.watcher.quorum_queue(RELAY_OUT, {"x-queue-type": "quorum"}, RELAY_OUT, "#")
        messages = self.mix.take(self.o.events)
        results = {}
        for name, batched in (("ceiling", True), ("naive", False)):
            prefill(self.url, RELAY_EVENTS, messages)
            own, broker = time.process_time(), cpu_seconds(broker_pid())
            run = relays.relay(
                self.url,
                RELAY_IN,
                RELAY_OUT,
                len(messages),
                batched=batched,
                output_bytes=int(self.output_bytes),
                **self.batching,
            )
            broker_after = cpu_seconds(broker_pid())
            cpu_s = time.process_time() - own
            results[name] = {
                "events": run.events,
                "seconds": run.seconds,
                "events_per_s": run.events_per_s,
                "cpu_s": cpu_s,
                "cpu_us_per_event": cpu_s / run.events * 1e6,
                "broker_cpu_s": None if broker is None or broker_after is None else broker_after - broker,
            }
            self.watcher.wait_until(
                lambda: self.watcher.depth(RELAY_OUT)[0] >= len(messages),
                timeout=30,
                what="relay output",
            )
            self.watcher.purge(RELAY_OUT)
        return results

    def worker_throughput(
        self,
        level: str,
        round_: int,
        count: int = 1,
        then: Callable[[WorkerProcess], None] | None = None,
        *,
        processes: int = 1,
    ) -> dict[str, Any]:
        """`count` workers (each `renewals run --processes <processes>`) on one new store, from a
        pre-filled queue of the mix, until every notification is counted."""
        name = f"worker-{level}-{round_}" if count == 1 else f"workers{count}-{level}-{round_}"
        if processes > 1:
            name = f"processes{processes}-{level}-{round_}"
        store = self.stores.new(name)
        env = {"RENEWALS_PROCESSES": str(processes)}
        workers = [self.worker(f"{name}-{n}" if count > 1 else name, level, store, env) for n in range(count)]
        profiler = (
            Profiler(self.o.profile, self.o.profile_idle)
            if self.o.profile
            and level == "info"
            and round_ == 0
            and (count, processes) == (self.o.workers[0], 1)
            else None
        )
        run = timed_run(
            workers,
            self.watcher,
            self.url,
            self.mix.take(self.o.events),
            timeout=self.o.events / 100 + 60,
            on_consuming=profiler.attach if profiler else None,
        )
        if profiler:
            profiler.detach()
        _check(run, workers[0])
        if then is not None:
            then(workers[0])
        stop_all(workers)
        return _plain(run)

    def latencies(self, worker: WorkerProcess) -> dict[str, dict[str, Any]]:
        """At each offered rate, p50/p99 from publish to notification; a warm, idle worker."""
        results = {}
        for rate in self.o.rates:
            messages = self.mix.take(max(50, int(rate * self.o.latency_seconds)))
            run = latency.measure(self.url, OBSERVED, messages, rate)
            results[f"{rate:g}"] = asdict(run)
            worker.check_alive()
        return results

    def relay_latencies(self) -> dict[str, dict[str, Any]]:
        """The same offered rates through the ceiling relay in a process of its own, consuming
        the worker's queue (the worker is stopped): what the broker path alone costs."""
        results = {}
        for rate in self.o.rates:
            messages = self.mix.take(max(50, int(rate * self.o.latency_seconds)))
            command = [
                sys.executable,
                "-m",
                "bench.relays",
                self.url,
                NAMES.queue,
                NAMES.notifications_exchange,
                str(len(messages)),
                "--output-bytes",
                str(int(self.output_bytes)),
                *(f"--{name.replace('_', '-')}={value}" for name, value in self.batching.items()),
            ]
            relay = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
            try:
                self.watcher.wait_until(
                    lambda: self.watcher.depth(NAMES.queue)[1] > 0, timeout=30, what="the relay"
                )
                results[f"{rate:g}"] = asdict(latency.measure(self.url, OBSERVED, messages, rate))
                relay.wait(30)
            finally:
                relay.kill()
        return results

    def long_run(self) -> dict[str, Any]:
        """At least `long_events` through one worker: RSS and the store's size as the count
        grows, peak RSS, final store size. With --retention-days the worker prunes as it goes."""
        retention = self.o.retention_days
        env, mix = {}, self.mix
        if retention is not None:
            env = {
                "RENEWALS_INBOX_RETENTION_DAYS": str(retention),
                "RENEWALS_REMINDER_RETENTION_DAYS": str(retention),
                "RENEWALS_PRUNE_INTERVAL": str(max(1.0, min(60.0, retention * 86400 / 4))),
            }
            mix = Mix(seed=self.o.seed + 1, first_renewal=PAST_RENEWALS)
        store = self.stores.new("long")
        worker = self.worker("long", "info", store, env)
        count = self.o.long_events
        run = timed_run(
            [worker],
            self.watcher,
            self.url,
            mix.stream(count),
            timeout=count / 100 + 120,
            rss_every=max(1, count // 8),
            sample=lambda: {"bytes": store_bytes(store), **store_rows(store)},
        )
        _check(run, worker)
        worker.stop()
        marks = [run.notifications // 4, run.notifications // 2, run.notifications]
        at = {str(mark): run.rss_mb[min(k for k in run.rss_mb if k >= mark)] for mark in marks}
        return {
            **_plain(run),
            "rss_samples_mb": {str(k): v for k, v in sorted(run.rss_mb.items())},
            "rss_mb_at": at,
            "rss_growth_mb": at[str(marks[-1])] - at[str(marks[0])],
            "retention_days": retention,
            "store_samples": {str(k): v for k, v in sorted(run.samples.items())},
            "store_at": {str(mark): run.samples[min(k for k in run.samples if k >= mark)] for mark in marks},
            "store_bytes": store_bytes(store),
        }


def _check(run: WorkerRun, worker: WorkerProcess) -> None:
    if run.dead_letters:
        raise RuntimeError(f"{run.dead_letters} dead or unrouted messages: see {worker.log_path}")


def _plain(run: WorkerRun) -> dict[str, Any]:
    fields = asdict(run)
    fields.pop("rss_mb")
    fields.pop("samples")
    return {**fields, "events_per_s": run.events_per_s, "cpu_us_per_event": run.cpu_us_per_event}
