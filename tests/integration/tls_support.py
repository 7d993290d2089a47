"""TLS helpers for the integration tests: a test CA and certificates made with the openssl
CLI, `openssl s_client -starttls smtp` runs, and STARTTLS over a raw SMTPConn.

Certificates are made once per test module (Certs(dir)); every openssl run is bounded by a
timeout and only ever connects to 127.0.0.1.
"""

from __future__ import annotations

import re
import ssl
import subprocess
from pathlib import Path

from ringmail_harness import HOSTNAME, IO_TIMEOUT, Reply, SMTPConn

OPENSSL_TIMEOUT = 20.0

# openssl's key generation arguments by name; the names are those the server logs in cert=.
KEYS = {
    "ECDSA-P256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ECDSA-P384": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "ECDSA-P521": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
    "RSA-2048": ["-newkey", "rsa:2048"],
}


def openssl(*args: str, input: bytes | None = None, timeout: float = OPENSSL_TIMEOUT):
    return subprocess.run(["openssl", *args], input=input, capture_output=True,
                          timeout=timeout)


def _check(run, what: str):
    if run.returncode != 0:
        raise RuntimeError(f"openssl {what} failed: {run.stderr.decode(errors='replace')}")


class Certs:
    """A test CA, server certificates for HOSTNAME of each KEYS type signed by it, a client
    certificate it signed and a foreign (self-signed) one."""

    def __init__(self, d: Path):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_key, self.ca = self._self_signed("ca", "ECDSA-P256", "ringmail test CA",
                                                 ["-addext", "basicConstraints=critical,CA:TRUE",
                                                  "-addext", "keyUsage=keyCertSign,cRLSign"])
        self.server = {kind: self.issue(f"server-{kind}", kind, HOSTNAME,
                                        f"subjectAltName=DNS:{HOSTNAME}")
                       for kind in KEYS}
        self.client = self.issue("client", "ECDSA-P256", "client.example",
                                 "extendedKeyUsage=clientAuth")
        self.foreign = self._self_signed("foreign", "ECDSA-P256", "client.example", [])

    def _self_signed(self, name: str, kind: str, cn: str, ext: list[str]) -> tuple[Path, Path]:
        key, cert = self.dir / f"{name}.key", self.dir / f"{name}.pem"
        _check(openssl("req", "-x509", *KEYS[kind], "-nodes", "-keyout", str(key),
                       "-out", str(cert), "-days", "30", "-subj", f"/CN={cn}", *ext),
               f"req {name}")
        return key, cert

    def issue(self, name: str, kind: str, cn: str, ext: str) -> tuple[Path, Path]:
        """(key, cert) signed by the CA."""
        key, csr, cert = (self.dir / f"{name}.{x}" for x in ("key", "csr", "pem"))
        extfile = self.dir / f"{name}.ext"
        extfile.write_text(ext + "\n")
        _check(openssl("req", "-new", *KEYS[kind], "-nodes", "-keyout", str(key),
                       "-out", str(csr), "-subj", f"/CN={cn}"), f"req {name}")
        _check(openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey",
                       str(self.ca_key), "-CAcreateserial", "-days", "30", "-out", str(cert),
                       "-extfile", str(extfile)), f"x509 {name}")
        return key, cert

    def pairs(self, *kinds: str) -> list[dict]:
        """tls.certificates items for these server certificate kinds."""
        return [{"cert": str(self.server[k][1]), "key": str(self.server[k][0])} for k in kinds]


def fingerprint(pem: bytes | str) -> str:
    if isinstance(pem, str):
        pem = pem.encode()
    run = openssl("x509", "-noout", "-fingerprint", "-sha256", input=pem)
    _check(run, "x509 -fingerprint")
    return run.stdout.decode().strip().split("=", 1)[1]


class SClient:
    """One `openssl s_client -starttls smtp` run: ok, its output, the server certificate."""

    def __init__(self, port: int, *args: str, send: bytes = b"QUIT\r\n"):
        run = openssl("s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{port}",
                      "-name", "client.example", "-servername", HOSTNAME, *args,
                      input=send)
        self.out = run.stdout.decode(errors="replace")
        self.err = run.stderr.decode(errors="replace")
        m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", self.out,
                      re.S)
        self.cert = m.group(0) if m else None
        # a completed handshake prints the session; a failed one "Cipher is (NONE)"
        self.ok = bool(re.search(r"^New, TLSv1\.[23], Cipher is (?!\(NONE\))", self.out, re.M))

    def __repr__(self):
        return f"SClient(ok={self.ok}, err={self.err[-400:]!r})"


def client_context(verify: bool = False, cafile: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile=str(cafile))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def starttls(conn: SMTPConn, ctx: ssl.SSLContext | None = None,
             server_hostname: str = HOSTNAME) -> Reply:
    """STARTTLS on a raw SMTPConn (after EHLO): the 220, then the handshake; the connection
    then speaks through the TLS socket."""
    r = conn.cmd("STARTTLS")
    if r.code == 220:
        wrap_tls(conn, ctx, server_hostname)
    return r


def wrap_tls(conn: SMTPConn, ctx: ssl.SSLContext | None = None,
             server_hostname: str = HOSTNAME) -> None:
    if conn.buf:
        raise AssertionError(f"bytes after the 220 in plaintext: {conn.buf!r}")
    conn.sock.settimeout(IO_TIMEOUT)
    conn.sock = (ctx or client_context()).wrap_socket(conn.sock,
                                                      server_hostname=server_hostname)


def tls_config(certs: Certs, *kinds: str, **extra) -> dict:
    return {"tls": {"certificates": certs.pairs(*kinds), **extra}}

