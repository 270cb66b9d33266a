"""Demo app, release v3: answers /healthz with ok, then crashes four seconds after it
starts (say, a worker pool that runs out of memory under the first real load). One smoke
check right after the restart passes it; a bake catches it."""

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

VERSION = "v3"


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


threading.Timer(4, os._exit, (70,)).start()
HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
