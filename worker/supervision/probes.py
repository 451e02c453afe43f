"""The supervisor's one `/metrics`, `/healthz` and `/readyz`, made of its children's.

Each child serves its own endpoints on a private loopback port; the supervisor asks them when it
is asked. `/metrics` is every child's samples summed by name and labels (counters, gauges and
histograms alike: a gauge such as `renewals_ready` becomes the number of ready children,
`renewals_outbox_pending` the rows of all of them), plus the supervisor's own two metrics.

Why scrape and merge rather than prometheus_client's multiprocess mode: that mode must be set up
before the first import (an environment variable and a directory of mmap files the supervisor
must clean after every death), cannot hold the worker's callback gauges (`renewals_ready`,
`renewals_store_up`), and would make one process differ from N. Scraping keeps each child the
very worker `renewals run` is, and costs one loopback request per child per scrape.
"""

import json
import math
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from worker.service.endpoint import ProbeServer, Response

ASK_TIMEOUT = 2.0
"""Seconds a child's endpoint has to answer one request of the supervisor's."""


@dataclass(frozen=True, slots=True)
class ChildView:
    """What the supervisor knows of one child slot when it is asked."""

    index: int
    pid: int | None  # None while the slot waits out a restart's backoff
    port: int


def ask(port: int, path: str, timeout: float = ASK_TIMEOUT) -> tuple[int, bytes]:
    """A child's answer on 127.0.0.1:`port` (status, body); (0, reason) if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
            return int(reply.status), bytes(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, ValueError) as exc:
        return 0, str(getattr(exc, "reason", exc)).encode()


def merged_metrics(texts: Sequence[str]) -> str:
    """The children's Prometheus texts as one: each sample summed by name and labels (the
    earliest of the `_created` timestamps), HELP and TYPE once, in the order first seen."""
    heads: dict[str, list[str]] = {}  # metric family -> its HELP and TYPE lines
    samples: dict[str, dict[str, float]] = {}  # family -> sample key -> value
    for text in texts:
        family = ""
        for line in text.splitlines():
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = parts[2]
                    lines = heads.setdefault(family, [])
                    if len(lines) < 2 and line not in lines:
                        lines.append(line)
                    samples.setdefault(family, {})
                continue
            key, _, value = line.rpartition(" ")
            if not key:
                continue
            number = float(value)
            into = samples.setdefault(family, {})
            if key in into:
                created = key.split("{", 1)[0].endswith("_created")
                into[key] = min(into[key], number) if created else into[key] + number
            else:
                into[key] = number
    out: list[str] = []
    for family, values in samples.items():
        out.extend(heads.get(family, []))
        out.extend(f"{key} {_number(value)}" for key, value in values.items())
    return "\n".join(out) + "\n"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not value.is_integer() else f"{value:.1f}"


def serve_combined(
    children: Callable[[], Sequence[ChildView]],
    own_metrics: Callable[[], str],
    alive: Callable[[], bool],
    host: str,
    port: int,
) -> ProbeServer:
    """The supervisor's endpoints (OSError at once if the address cannot be bound):

    - `/metrics`: the children's merged, and the supervisor's own;
    - `/healthz`: 200 while the supervisor's loop is alive and no running child says it is not
      (a child waiting to be restarted is the supervisor at work, not a failure);
    - `/readyz`: 200 when every child is running and ready."""

    def metrics() -> Response:
        texts = [own_metrics()]
        for child in children():
            status, body = ask(child.port, "/metrics") if child.pid is not None else (0, b"")
            if status == 200:
                texts.append(body.decode())
        return Response(200, CONTENT_TYPE_LATEST, merged_metrics(texts).encode())

    def probe(path: str) -> Response:
        facts: list[dict[str, Any]] = []
        for child in children():
            status, body = ask(child.port, path) if child.pid is not None else (0, b"restarting")
            facts.append({"index": child.index, "pid": child.pid, "status": status, **_facts(body)})
        if path == "/healthz":
            ok = alive() and all(fact["status"] == 200 or fact["pid"] is None for fact in facts)
        else:
            ok = alive() and all(fact["status"] == 200 for fact in facts)
        answer = {"status": "ok" if ok else "unavailable", "processes": facts}
        return Response(200 if ok else 503, "application/json", json.dumps(answer).encode())

    return ProbeServer(
        {"/metrics": metrics, "/healthz": lambda: probe("/healthz"), "/readyz": lambda: probe("/readyz")},
        host,
        port,
        timeout=max(5.0, ASK_TIMEOUT * 3),
    ).start()


def _facts(body: bytes) -> dict[str, Any]:
    """A child's probe answer without its own `status` (ours says the whole), or why it is missing."""
    try:
        facts = json.loads(body)
    except ValueError:
        return {"error": body.decode(errors="replace")[:200]}
    if not isinstance(facts, dict):
        return {}
    facts.pop("status", None)
    return facts
