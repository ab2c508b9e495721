"""The TLS trust that every outbound HTTP client of this process shares.

httpx2 builds a fresh `ssl.SSLContext` for each client it makes, and building one reads the
system CA store: about 50 ms of CPU, on the event loop. Paid per client, that stalled the whole
gateway each time it opened an upstream connection (a 2026 caller's first call with a new set of
client capabilities, a per-client upstream session, a reconnect) and each time it exchanged a
token, and it made those first calls late: 70 ms to open a connection whose two round trips take
12 ms. One context, built on first use, serves every connection (an `SSLContext` is made to be
shared). It honours `SSL_CERT_FILE`/`SSL_CERT_DIR` as httpx2 does, read when it is built.
"""

from __future__ import annotations

import functools
import ssl

import httpx2


@functools.cache
def tls_trust() -> ssl.SSLContext:
    """The process's verifying client context: the system CAs, hostname checks on."""
    return httpx2.create_ssl_context()
