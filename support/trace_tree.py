"""One reminder through a real worker with tracing on, and its trace as a tree: what
docs/tracing.md shows. `python -m support.trace_tree` (needs the local RabbitMQ, rabbitmqctl and
the `test` extra); it makes a throw-away vhost and store, and removes them."""

import argparse
import json
import tempfile
from pathlib import Path

from support.client import Client
from support.messages import contact, renewal
from support.otlp_receiver import OtlpReceiver, ReceivedSpan
from support.services import fresh_vhost
from support.worker_process import WorkerProcess

BILLING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SHOWN = ("messaging.message.id", "messaging.batch.message_count", "renewals.outcome", "error.type")


def tree(spans: list[ReceivedSpan]) -> list[str]:
    """Each trace's spans, parents above children, with kind, id, duration, a few attributes
    and links (`trace…/span`); a span whose parent was not exported heads its trace."""
    exported = {span.span_id for span in spans}
    lines: list[str] = []

    def show(span: ReceivedSpan, indent: str, branch: str, last: bool) -> None:
        attributes = "  ".join(f"{key}={span.attributes[key]}" for key in SHOWN if key in span.attributes)
        links = ", ".join(f"{trace[:8]}…/{span_id}" for trace, span_id in span.links)
        duration = (span.end_ns - span.start_ns) / 1e6
        line = (
            f"{indent}{branch}{span.name}  {span.kind}  span {span.span_id}  {duration:.1f} ms  {attributes}"
        )
        lines.append((line + (f"  links: {links}" if links else "")).rstrip())
        children = sorted((s for s in spans if s.parent_span_id == span.span_id), key=lambda s: s.start_ns)
        below = indent + ("" if not branch else ("   " if last else "│  "))
        for n, child in enumerate(children):
            show(child, below, "└─ " if n == len(children) - 1 else "├─ ", n == len(children) - 1)

    heads = [span for span in spans if span.parent_span_id not in exported]
    for head in sorted(heads, key=lambda span: span.parent_span_id == ""):
        remote = f" (parent: {head.parent_span_id}, not exported here)" if head.parent_span_id else ""
        lines.append(f"trace {head.trace_id}{remote}")
        show(head, "", "", True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m support.trace_tree", description=__doc__)
    parser.add_argument(
        "--broker", default="amqp://guest:guest@127.0.0.1:5672/", help="where to make the vhost"
    )
    options = parser.parse_args()
    dora = contact("dora", "client.example")
    with (
        fresh_vhost(options.broker, "renewals-trace") as url,
        OtlpReceiver() as receiver,
        tempfile.TemporaryDirectory() as folder,
    ):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        worker = WorkerProcess(url, Path(folder), env=env).start()
        client = Client(url)
        try:
            out = client.observe()
            reminder = renewal("c-17", "p-acme", decision_maker=dora, id="evt-7f3a")
            client.publish([reminder], headers={"traceparent": BILLING})
            [(_method, properties, body)] = client.take(out, 1)
            receiver.wait_for("the send span", lambda got: any(s.kind == "PRODUCER" for s in got))
            worker.stop()
        finally:
            client.close()
            worker.kill()
        [line] = worker.find("renewal.notification_requested")
    print(f"sent with header traceparent: {BILLING}")
    print(f"notification header traceparent: {properties.headers['traceparent']}")
    print(f"notification envelope traceparent: {json.loads(body)['traceparent']}")
    print(f"canonical log line: trace_id {line['trace_id']}, span_id {line['span_id']}")
    print()
    print("\n".join(tree(receiver.received())))


if __name__ == "__main__":
    main()
