"""Demo app, release v1: answers /healthz with ok."""

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

VERSION = "v1"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = (
            (200, "ok %s\n" % VERSION) if self.path == "/healthz" else (404, "not found\n")
        )
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
