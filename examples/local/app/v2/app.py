"""Demo app, release v2: needs PAYMENTS_URL in its environment file, or /healthz fails."""

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

VERSION = "v2"


def settings():
    values = {}
    with open("app.env") as handle:  # a link into shared/, made at deploy time
        for line in handle:
            key, _sep, value = line.strip().partition("=")
            values[key] = value
    return values


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/healthz":
            status, body = 404, "not found\n"
        elif settings().get("PAYMENTS_URL"):
            status, body = 200, "ok %s\n" % VERSION
        else:
            status, body = 503, "PAYMENTS_URL is not configured\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
