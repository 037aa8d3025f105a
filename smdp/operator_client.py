"""An ES2+ client for operator scripts (SGP.22 5.3 / 6.5.1): our server or any SM-DP+ with token auth."""

from __future__ import annotations

import json
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from smdp.pki.store import load_certificate
from smdp.pki.tls import client_ssl_context

ES2_PATH = "/gsma/rsp2/es2plus/"


class Es2Error(Exception):
    def __init__(
        self, function: str, subject_code: str | None, reason_code: str | None, message: str, *, unreachable: bool = False
    ) -> None:
        self.function, self.subject_code, self.reason_code, self.message = function, subject_code, reason_code, message
        self.unreachable = unreachable  # the server could not be reached (connection, TLS, timeout)
        code = f"{subject_code}/{reason_code}" if subject_code else ""
        # the SM-DP+ puts the codes at the start of its message already (smdp.web.binding): don't repeat them
        prefix = f"{code} " if code and not message.startswith(code) else ""
        super().__init__(f"{function}: {prefix}{message}")


@dataclass
class Es2Client:
    url: str  # https://host:port
    token: str
    operator: str
    ca_file: Path | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        if not self.token or not all(c.isascii() and (c.isalnum() or c in "-._~+/=") for c in self.token):
            raise ValueError("the API token is empty or has characters no token has (a token is smdp_ and URL-safe base64)")
        context: ssl.SSLContext | bool
        if self.insecure:
            context = False
        elif self.ca_file is not None:
            context = client_ssl_context([load_certificate(self.ca_file)])
        else:
            context = ssl.create_default_context()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context), timeout=aiohttp.ClientTimeout(total=30)
        )

    async def close(self) -> None:
        await self._http.close()

    async def __aenter__(self) -> Es2Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, function: str, **fields: Any) -> dict[str, Any]:
        body = {
            "header": {"functionRequesterIdentifier": self.operator, "functionCallIdentifier": str(uuid.uuid4())},
            **{k: v for k, v in fields.items() if v is not None},
        }
        headers = {
            "Content-Type": "application/json",
            "X-Admin-Protocol": "gsma/rsp/v2.2.0",
            "Authorization": f"Bearer {self.token}",
        }
        try:
            async with self._http.post(self.url.rstrip("/") + ES2_PATH + function, data=json.dumps(body), headers=headers) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise Es2Error(function, None, None, f"cannot reach {self.url}: {reason}", unreachable=True) from None
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            raise Es2Error(function, None, None, f"HTTP {status}: not JSON") from None
        execution = (answer.get("header") or {}).get("functionExecutionStatus") or {}
        if status // 100 != 2 or execution.get("status") not in ("Executed-Success", "Executed-WithWarning"):
            codes = execution.get("statusCodeData") or {}
            raise Es2Error(function, codes.get("subjectCode"), codes.get("reasonCode"), codes.get("message") or f"HTTP {status}")
        return answer
