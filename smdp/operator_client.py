"""An ES2+ client for operator scripts (SGP.22 5.3 / 6.5.1): our server or any SM-DP+ with token auth.

The exchange itself (headers, TLS, reading the answer, errors) is the binding's one client,
:class:`smdp.web.client.JsonClient`; this adds the ES2+ request header and the bearer token.
"""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smdp.pki.store import load_certificate
from smdp.pki.tls import client_ssl_context
from smdp.web.client import JsonCallError, JsonClient, system_ssl_context

ES2_PATH = "/gsma/rsp2/es2plus/"


class Es2Error(JsonCallError):
    """An ES2+ function failed: SGP.22 status codes when the server sent them, and ``unreachable`` when the
    server could not be reached (connection, TLS, timeout; the CLI's exit status 3)."""


@dataclass
class Es2Client:
    url: str  # https://host:port
    token: str
    operator: str
    ca_file: Path | None = None
    insecure: bool = False
    # A TLS client certificate and its key (PEM), for an SM-DP+ that authenticates operators by mutual TLS
    # (SGP.22 2.6.6; `smdp serve --config` with client_auth "mtls", where the token may be "", or "both").
    client_cert: Path | None = None
    client_key: Path | None = None

    def __post_init__(self) -> None:
        if not self.token and self.client_cert is None:
            raise ValueError("an API token or a TLS client certificate is needed")
        if self.token and not all(c.isascii() and (c.isalnum() or c in "-._~+/=") for c in self.token):
            raise ValueError("the API token is empty or has characters no token has (a token is smdp_ and URL-safe base64)")
        self._json = JsonClient(ca_file=self.ca_file, insecure=self.insecure, timeout=30.0, error=Es2Error)
        self._ssl_context = None if self.client_cert is None else self._client_cert_context(self.client_cert)

    def _client_cert_context(self, client_cert: Path) -> ssl.SSLContext:
        """The context of every call: the server trusted as JsonClient trusts it, plus our certificate."""
        if self.ca_file is not None:
            context = client_ssl_context([load_certificate(Path(self.ca_file))])
        elif self.insecure:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        else:
            context = system_ssl_context()
        context.load_cert_chain(client_cert, self.client_key)
        return context

    async def close(self) -> None:
        await self._json.close()

    async def __aenter__(self) -> Es2Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, function: str, **fields: Any) -> dict[str, Any]:
        """Call ES2+ ``function`` with ``fields`` (None values left out); the answer, or Es2Error."""
        body = {
            "header": {"functionRequesterIdentifier": self.operator, "functionCallIdentifier": str(uuid.uuid4())},
            **{k: v for k, v in fields.items() if v is not None},
        }
        answer = await self._json.post(
            self.url.rstrip("/") + ES2_PATH + function,
            function,
            body,
            headers={"Authorization": f"Bearer {self.token}"} if self.token else {},
            ssl_context=self._ssl_context,
            allow_empty=False,  # every ES2+ answer of an SM-DP+ has a header at least
        )
        assert answer is not None  # allow_empty=False
        return answer
