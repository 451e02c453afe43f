"""An OTLP/HTTP trace receiver on 127.0.0.1 (protobuf, as opentelemetry-proto defines it): the
tests run one to see what the worker exports, the benchmark one to export to. It needs the
`test` extra (opentelemetry-proto)."""

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from support.polling import wait_until


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids in lowercase hex ("" for no parent), kind as `CONSUMER`..."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    links: list[tuple[str, str]]  # (trace id, span id)
    status: str
    start_ns: int
    end_ns: int


class OtlpReceiver:
    """`with OtlpReceiver() as receiver:` serves `receiver.endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT)
    and keeps what arrives in `receiver.spans`; with `keep=False` it only counts requests and
    bytes, without decoding them (the benchmark's, which should not compete with the worker)."""

    def __init__(self, keep: bool = True) -> None:
        self.spans: list[ReceivedSpan] = []
        self.count = 0
        self.requests = 0
        self.bytes = 0
        self._keep = keep
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "OtlpReceiver":
        self._thread.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, what: str, condition: Any, timeout: float = 20.0) -> list[ReceivedSpan]:
        """Until `condition(spans)` holds; the spans received by then."""
        return wait_until(lambda: condition(spans := self.received()) and spans, what, timeout)

    def _take(self, body: bytes) -> None:
        if not self._keep:
            with self._lock:
                self.requests += 1
                self.bytes += len(body)
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = [
            _span(service, span)
            for resource in request.resource_spans
            for service in [_service(resource.resource.attributes)]
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        with self._lock:
            self.requests += 1
            self.bytes += len(body)
            self.count += len(spans)
            self.spans += spans

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                receiver._take(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        return Handler


def _span(service: str, span: Span) -> ReceivedSpan:
    return ReceivedSpan(
        service=service,
        name=span.name,
        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        attributes=_attributes(span.attributes),
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
        status=span.status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


def _service(attributes: Any) -> str:
    found: list[KeyValue] = [pair for pair in attributes if pair.key == "service.name"]
    return str(_value(found[0].value)) if found else ""
