#!/usr/bin/env python3
"""A tiny branch service for trying swift-dtm by hand (stdlib only), on 127.0.0.1:8081 under /api/busi.

POST /api/busi/TransOut, /TransIn, /TransOutRevert, /TransInRevert answer 200 SUCCESS and log the call;
/TransInFail answers 409 FAILURE, so a saga using it is compensated.
"""
import http.server
import sys


class Busi(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        print(f"{self.command} {self.path} {body.decode(errors='replace')}", flush=True)
        if self.path.startswith("/api/busi/TransInFail"):
            self._answer(409, b'{"error":"reason:insufficient balance. FAILURE"}')
        else:
            self._answer(200, b'{"dtm_result":"SUCCESS"}')

    do_GET = do_POST

    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    print(f"branch service on http://127.0.0.1:{port}/api/busi", flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Busi).serve_forever()
