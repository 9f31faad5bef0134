#!/usr/bin/env python3
"""A do-nothing OTLP/HTTP collector for benchmarks (scripts/bench.sh --tracing): answers every POST (/v1/traces) with
200 and an empty body without decoding it, so that the coordinator's exports cost the machine as little as they can,
and writes how many exports and bytes it took to the file given, when stopped (SIGTERM).
Usage: otlp-sink.py PORT_FILE COUNTS_FILE   (listens on 127.0.0.1, a free port, written to PORT_FILE)"""
import http.server
import signal
import sys
import threading

exports = 0
received = 0
lock = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global exports, received
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        with lock:
            exports += 1
            received += length
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    port_file, counts_file = sys.argv[1], sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))

    def stop(*_):
        with open(counts_file, "w") as f:
            f.write("%d %d\n" % (exports, received))
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
