"""Certificates made with openssl for the tls tests, and a loopback TLS server."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1"
DAY = 86400
CA_CONFIG = """\
[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
[any]
commonName = supplied
organizationName = optional
"""


def stamp(when: float) -> str:
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(when))


def openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def make_pki(directory: Path) -> Path:
    """A CA, certificates it signed (valid 90 days, 3 days, expired 10 days ago) and a
    self-signed one, each with its key as NAME.pem and NAME.key, in ``directory``."""
    openssl(directory, "req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "365", "-subj", "/CN=smokegate test CA")  # fmt: skip
    (directory / "san.ext").write_text(SAN + "\n")
    for name in ("valid", "expiring", "expired"):
        openssl(directory, "req", "-new", *EC, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=localhost/O=smokegate tests")  # fmt: skip
    for name, days in (("valid", "90"), ("expiring", "3")):
        openssl(directory, "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey",
                "ca.key", "-CAcreateserial", "-days", days, "-extfile", "san.ext",
                "-out", name + ".pem")  # fmt: skip
    # x509 -days cannot go back in time; the CA command takes the dates themselves.
    (directory / "ca.cnf").write_text(CA_CONFIG)
    (directory / "index.txt").write_text("")
    (directory / "serial").write_text("1000\n")
    now = time.time()
    openssl(directory, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile",
            "ca.key", "-in", "expired.csr", "-out", "expired.pem", "-notext",
            "-extfile", "san.ext", "-startdate", stamp(now - 40 * DAY),
            "-enddate", stamp(now - 10 * DAY))  # fmt: skip
    openssl(directory, "req", "-x509", *EC, "-keyout", "self.key", "-out", "self.pem",
            "-days", "30", "-subj", "/CN=localhost", "-addext", SAN)  # fmt: skip
    return directory


@contextmanager
def tls_server(pki: Path, name: str) -> Iterator[int]:
    """A loopback TLS server presenting the certificate NAME; yields its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / (name + ".pem"), pki / (name + ".key"))
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                sock, _address = listener.accept()
            except OSError:
                continue
            try:
                sock.settimeout(2)
                with context.wrap_socket(sock, server_side=True):
                    pass
            except OSError:
                pass  # the client gave up on an untrusted certificate
            finally:
                sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()
