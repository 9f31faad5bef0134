"""An OTLP trace receiver for the interop tests: what an OpenTelemetry collector is to dtm-server.

It listens on two free loopback ports:

* OTLP/HTTP: ``POST /v1/traces`` with an ``application/x-protobuf`` ``ExportTraceServiceRequest`` (optionally
  ``Content-Encoding: gzip``/``deflate``; chunked or sized bodies; HTTP/1.1 keep-alive). It answers 200 with an empty
  ``ExportTraceServiceResponse``; another path → 404, a JSON body → 415, undecodable protobuf → 400 (all recorded in
  ``rejected()``).
* OTLP/gRPC: a grpcio server implementing ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` (the
  servicer that PyPI ``opentelemetry-proto`` ships, over HTTP/2 cleartext); any other method → UNIMPLEMENTED,
  recorded in ``rejected()``.

Every span received is kept as a plain dict (see ``span_dict``): ``trace_id``, ``span_id``, ``parent_span_id`` (lower
hex, "" when absent), ``name``, ``kind`` (``SERVER``/``CLIENT``/``INTERNAL``/…), ``attributes``, ``events``,
``status_code`` (``UNSET``/``OK``/``ERROR``), ``status_message``, ``start_ns``/``end_ns``, ``resource`` (e.g.
``service.name``), ``scope`` and the ``protocol`` it came by. Each export request is recorded too (``exports()``:
protocol, path, headers/metadata, number of spans). Everything is thread-safe; ``wait_for(predicate, timeout)`` polls.

Use: the ``otlp_receiver`` fixture (a receiver per test), or ``with OtlpReceiver() as r: ...`` for a module-scoped
one; ``r.server_env(protocol)`` is the environment that points an OpenTelemetry SDK (dtm-server) at it.
``r.dump(path)`` writes the spans as JSON lines (the input of ``scripts/trace-waterfall.py``).

Run on its own (``python otlp_receiver.py --out spans.jsonl``) it serves until SIGINT/SIGTERM, prints its endpoints
as one JSON line on stdout and appends every span to ``--out`` as it arrives (``scripts/trace-demo.sh`` does that).

Needs ``opentelemetry-proto`` (Tests/Interop/requirements.txt); only 127.0.0.1 is used; every wait is bounded.
"""

import argparse
import gzip
import json
import signal
import socket
import sys
import threading
import time
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

try:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
    from opentelemetry.proto.trace.v1 import trace_pb2
except ImportError as _e:  # reported when a receiver is made, so collecting other tests does not break
    trace_service_pb2 = trace_service_pb2_grpc = trace_pb2 = None
    _IMPORT_ERROR = _e
else:
    _IMPORT_ERROR = None

LOOPBACK = "127.0.0.1"
TRACES_PATH = "/v1/traces"
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
HTTP_PROTOBUF = "http/protobuf"
GRPC = "grpc"
PROTOCOLS = (HTTP_PROTOBUF, GRPC)
MAX_BODY = 64 * 1024 * 1024


# ----------------------------------------------------------------------------------------------------------------
# protobuf → plain dicts
# ----------------------------------------------------------------------------------------------------------------


def any_value(v):
    """An OTLP AnyValue as a Python value (bytes as hex, arrays as lists, kvlists as dicts, unset as None)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)


def attributes(key_values):
    return {kv.key: any_value(kv.value) for kv in key_values}


def _enum_name(enum, number, prefix):
    try:
        return enum.Name(number)[len(prefix):]
    except ValueError:
        return str(number)


def span_dict(span, resource=None, scope=None, protocol=None):
    """One trace_pb2.Span as a JSON-able dict."""
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "trace_state": span.trace_state,
        "flags": span.flags,
        "name": span.name,
        "kind": _enum_name(trace_pb2.Span.SpanKind, span.kind, "SPAN_KIND_"),
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "attributes": attributes(span.attributes),
        "events": [{"name": e.name, "time_ns": e.time_unix_nano, "attributes": attributes(e.attributes)}
                   for e in span.events],
        "links": [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                   "attributes": attributes(link.attributes)} for link in span.links],
        "status_code": _enum_name(trace_pb2.Status.StatusCode, span.status.code, "STATUS_CODE_"),
        "status_message": span.status.message,
        "resource": dict(resource or {}),
        "scope": dict(scope or {}),
        "protocol": protocol,
    }


def request_spans(request, protocol=None):
    """Every span of an ExportTraceServiceRequest, as dicts carrying their resource's and scope's attributes."""
    out = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = {"name": ss.scope.name, "version": ss.scope.version}
            out.extend(span_dict(s, resource, scope, protocol) for s in ss.spans)
    return out


def format_tree(spans):
    """The spans as an indented tree per trace (children under their parent, by start time), for messages."""
    spans = sorted(spans, key=lambda s: (s["trace_id"], s["start_ns"]))
    ids = {(s["trace_id"], s["span_id"]) for s in spans}
    children = {}
    for s in spans:
        parent = (s["trace_id"], s["parent_span_id"])
        children.setdefault(parent if parent in ids else (s["trace_id"], None), []).append(s)
    lines = []

    def walk(span, depth):
        attrs = " ".join("%s=%s" % kv for kv in sorted(span["attributes"].items()))
        status = "" if span["status_code"] == "UNSET" else " status=%s%s" % (
            span["status_code"], (":" + span["status_message"]) if span["status_message"] else "")
        lines.append("%s%s [%s] span=%s parent=%s%s %s" % (
            "  " * depth, span["name"], span["kind"], span["span_id"], span["parent_span_id"] or "-", status, attrs))
        for e in span["events"]:
            lines.append("%s  * event %s %s" % ("  " * depth, e["name"], json.dumps(e["attributes"], sort_keys=True)))
        for child in children.get((span["trace_id"], span["span_id"]), []):
            walk(child, depth + 1)

    for trace_id in sorted({s["trace_id"] for s in spans}):
        lines.append("trace %s" % trace_id)
        for root in children.get((trace_id, None), []):
            walk(root, 1)
    return "\n".join(lines) if lines else "(no spans)"


def load(path):
    """The spans of a file written by OtlpReceiver.dump (JSON lines)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ----------------------------------------------------------------------------------------------------------------
# The receiver
# ----------------------------------------------------------------------------------------------------------------


class OtlpReceiver:
    """OTLP/HTTP (protobuf) and OTLP/gRPC trace receiver on free loopback ports; keeps what it receives."""

    def __init__(self, stream_path=None, http_port=0, grpc_port=0):
        if _IMPORT_ERROR is not None:
            raise RuntimeError("the OTLP receiver needs PyPI opentelemetry-proto (pip install -r "
                               "Tests/Interop/requirements.txt): %s" % _IMPORT_ERROR)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._spans = []
        self._exports = []
        self._rejected = []
        self._stream = open(stream_path, "a", encoding="utf-8") if stream_path else None
        self._connections = set()
        self.httpd = ThreadingHTTPServer((LOOPBACK, http_port), self._make_handler())
        self.httpd.daemon_threads = True
        self.http_port = self.httpd.server_address[1]
        self._http_thread = threading.Thread(target=self.httpd.serve_forever, name="otlp-http", daemon=True)
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="otlp-grpc"),
                                       options=[("grpc.so_reuseport", 0)])
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self.grpc_server)
        self.grpc_server.add_generic_rpc_handlers((_OtherMethods(self),))  # consulted after the servicer
        self.grpc_port = self.grpc_server.add_insecure_port("%s:%d" % (LOOPBACK, grpc_port))
        if not self.grpc_port:
            self.httpd.server_close()
            raise RuntimeError("could not bind the OTLP/gRPC receiver on %s" % LOOPBACK)
        self.http_endpoint = "http://%s:%d" % (LOOPBACK, self.http_port)
        self.grpc_endpoint = "http://%s:%d" % (LOOPBACK, self.grpc_port)
        self.traces_url = self.http_endpoint + TRACES_PATH
        self.paths = {TRACES_PATH}  # OTLP/HTTP paths accepted (add one to test a custom *_TRACES_ENDPOINT)
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self):
        self._http_thread.start()
        self.grpc_server.start()
        self._started = True
        return self

    def stop(self):
        if not self._started:
            return
        self._started = False
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:  # keep-alive connections of the exporter: end them, do not wait for them
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._http_thread.join(timeout=5)
        self.grpc_server.stop(grace=None).wait(timeout=5)
        if self._stream is not None:
            self._stream.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- configuration for the exporting process ------------------------------------------------------------

    def endpoint(self, protocol=HTTP_PROTOBUF):
        """The base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) for `protocol`."""
        if protocol not in PROTOCOLS:
            raise ValueError("unknown OTLP protocol %r (want one of %s)" % (protocol, PROTOCOLS))
        return self.grpc_endpoint if protocol == GRPC else self.http_endpoint

    def server_env(self, protocol=HTTP_PROTOBUF, schedule_delay_ms=100, **extra):
        """The OTEL_* environment pointing an SDK at this receiver, spans sent every `schedule_delay_ms`."""
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint(protocol),
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_BSP_SCHEDULE_DELAY": str(schedule_delay_ms),
        }
        env.update({k: str(v) for k, v in extra.items()})
        return env

    # -- what was received -----------------------------------------------------------------------------------

    def spans(self, trace_id=None, name=None, kind=None, attrs=None):
        """The spans received so far (in arrival order), optionally only those of one trace / name / kind, or whose
        attributes include every item of `attrs`."""
        with self._lock:
            snapshot = list(self._spans)
        return [s for s in snapshot
                if (trace_id is None or s["trace_id"] == trace_id)
                and (name is None or s["name"] == name)
                and (kind is None or s["kind"] == kind)
                and all(s["attributes"].get(k) == v for k, v in (attrs or {}).items())]

    def span(self, span_id, trace_id=None):
        """The span with this id (None if it has not arrived)."""
        return next((s for s in self.spans(trace_id) if s["span_id"] == span_id), None)

    def exports(self):
        """One record per export request accepted: protocol, path, headers (lower-case names), span count."""
        with self._lock:
            return list(self._exports)

    def rejected(self):
        """Requests the receiver refused (wrong path, JSON, undecodable body), with the reason."""
        with self._lock:
            return list(self._rejected)

    def clear(self):
        with self._lock:
            self._spans.clear()
            self._exports.clear()
            self._rejected.clear()

    def wait_for(self, predicate, timeout=10.0):
        """Call predicate(spans) whenever spans arrive (and at least every 50 ms) until it returns something truthy;
        return that, or None when `timeout` seconds passed first."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self.spans())
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with self._changed:
                self._changed.wait(min(remaining, 0.05))

    def wait_for_spans(self, count, timeout=10.0, **filters):
        """Wait until at least `count` spans match `filters` (as for spans()); return the matching spans (fewer on
        timeout)."""
        def enough(_):
            matching = self.spans(**filters)
            return matching if len(matching) >= count else None

        return self.wait_for(enough, timeout) or self.spans(**filters)

    def dump(self, path, trace_id=None):
        """Write the spans (of one trace, or all) to `path` as JSON lines; returns how many."""
        spans = self.spans(trace_id)
        Path(path).write_text("".join(json.dumps(s, sort_keys=True) + "\n" for s in spans), encoding="utf-8")
        return len(spans)

    def render(self, trace_id=None):
        """The received spans as a tree (for failure messages), plus any rejected request."""
        text = format_tree(self.spans(trace_id))
        rejected = self.rejected()
        if rejected:
            text += "\nrejected requests:\n" + "\n".join(json.dumps(r, sort_keys=True) for r in rejected)
        return text

    # -- recording -------------------------------------------------------------------------------------------

    def _record(self, protocol, path, headers, request):
        spans = request_spans(request, protocol)
        with self._changed:
            self._spans.extend(spans)
            self._exports.append({"protocol": protocol, "path": path, "headers": headers, "spans": len(spans),
                                  "time": time.time()})
            if self._stream is not None:
                self._stream.write("".join(json.dumps(s, sort_keys=True) + "\n" for s in spans))
                self._stream.flush()
            self._changed.notify_all()

    def _reject(self, protocol, path, headers, reason):
        with self._changed:
            self._rejected.append({"protocol": protocol, "path": path, "headers": headers, "reason": reason})
            self._changed.notify_all()

    def _make_handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's HTTP client expects
            server_version = "otlp-interop-receiver/1.0"

            def log_message(self, fmt, *args):  # keep pytest output clean
                pass

            def setup(self):
                super().setup()
                with owner._lock:
                    owner._connections.add(self.connection)

            def finish(self):
                with owner._lock:
                    owner._connections.discard(self.connection)
                super().finish()

            def _read_body(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks, total = [], 0
                    while True:
                        size = int(self.rfile.readline().strip().split(b";", 1)[0] or b"0", 16)
                        if size == 0:
                            while self.rfile.readline().strip():  # trailers up to the empty line
                                pass
                            return b"".join(chunks)
                        total += size
                        if total > MAX_BODY:
                            raise ValueError("body larger than %d bytes" % MAX_BODY)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()  # CRLF after each chunk
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    raise ValueError("body larger than %d bytes" % MAX_BODY)
                return self.rfile.read(length) if length > 0 else b""

            def _answer(self, status, body=b"", content_type="application/x-protobuf"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                path = self.path.split("?", 1)[0]
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    raw = self._read_body()
                except ValueError as e:
                    owner._reject(HTTP_PROTOBUF, path, headers, str(e))
                    self.close_connection = True
                    return self._answer(413, b"too large", "text/plain")
                if path not in owner.paths:
                    owner._reject(HTTP_PROTOBUF, path, headers, "unknown path")
                    return self._answer(404, b"not found", "text/plain")
                content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
                if content_type not in ("application/x-protobuf", "application/protobuf"):
                    owner._reject(HTTP_PROTOBUF, path, headers, "content type %r" % content_type)
                    return self._answer(415, b"only application/x-protobuf", "text/plain")
                try:
                    encoding = headers.get("content-encoding", "identity").lower()
                    if encoding == "gzip":
                        raw = gzip.decompress(raw)
                    elif encoding == "deflate":
                        raw = zlib.decompress(raw)
                    elif encoding not in ("", "identity"):
                        raise ValueError("content encoding %r" % encoding)
                    request = trace_service_pb2.ExportTraceServiceRequest.FromString(raw)
                except Exception as e:  # noqa: BLE001 (any decoding problem is the client's)
                    owner._reject(HTTP_PROTOBUF, path, headers, "undecodable: %r" % (e,))
                    return self._answer(400, b"bad request", "text/plain")
                owner._record(HTTP_PROTOBUF, path, headers, request)
                self._answer(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

            def _not_allowed(self):
                self._read_body()
                self._answer(405, b"POST only", "text/plain")

            do_GET = do_PUT = do_DELETE = do_PATCH = _not_allowed

        return Handler


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer if trace_service_pb2_grpc else object):
    """opentelemetry.proto.collector.trace.v1.TraceService, recording into an OtlpReceiver."""

    def __init__(self, owner):
        self.owner = owner

    def Export(self, request, context):  # noqa: N802 (the RPC's name)
        headers = {k.lower(): v for k, v in context.invocation_metadata()}
        self.owner._record(GRPC, EXPORT_METHOD, headers, request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _OtherMethods(grpc.GenericRpcHandler):
    """Any other gRPC method (e.g. the metrics or logs service): recorded as rejected, answered UNIMPLEMENTED."""

    def __init__(self, owner):
        self.owner = owner

    def service(self, handler_call_details):
        method, owner = handler_call_details.method, self.owner
        if method == EXPORT_METHOD:
            return None  # the servicer's

        def refuse(request, context):
            headers = {k.lower(): v for k, v in context.invocation_metadata()}
            owner._reject(GRPC, method, headers, "unknown method")
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this receiver only implements %s" % EXPORT_METHOD)

        return grpc.unary_unary_rpc_method_handler(refuse, request_deserializer=None, response_serializer=None)


@pytest.fixture
def otlp_receiver():
    """A started OtlpReceiver for one test (stopped afterwards)."""
    with OtlpReceiver() as receiver:
        yield receiver


# ----------------------------------------------------------------------------------------------------------------
# Stand-alone
# ----------------------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description="OTLP trace receiver on 127.0.0.1 (HTTP/protobuf and gRPC)")
    parser.add_argument("--http-port", type=int, default=0, help="OTLP/HTTP port (default: a free one)")
    parser.add_argument("--grpc-port", type=int, default=0, help="OTLP/gRPC port (default: a free one)")
    parser.add_argument("--out", help="append every span received to this file as a JSON line")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with OtlpReceiver(stream_path=args.out, http_port=args.http_port, grpc_port=args.grpc_port) as receiver:
        print(json.dumps({"http": receiver.http_endpoint, "grpc": receiver.grpc_endpoint}), flush=True)
        while not stop.wait(0.2):
            pass
        print("received %d spans" % len(receiver.spans()), file=sys.stderr)


if __name__ == "__main__":
    main()
