"""ES9+ client of the test LPA: the HTTPS/JSON binding of SGP.22 section 6.5 (functions in 5.6).

Each call is a POST of a JSON object to ``https://{address}/gsma/rsp2/es9plus/{function}`` with
``X-Admin-Protocol`` and ``Content-Type: application/json``. The answer's
``header.functionExecutionStatus`` says whether the function executed; a ``Failed`` status becomes
:class:`Es9Error` with the SGP.22 subjectCode/reasonCode. Functions without output data may answer
204 No Content (handleNotification, cancelSession), returned as None.

TLS trust: the CI certificate that issued CERT.DP.TLS (a PEM or DER file, or certificates), or
``insecure=True`` for a test server whose certificate cannot be checked.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509

from smdp.pki.store import load_certificate
from smdp.pki.tls import client_ssl_context

__all__ = ["ADMIN_PROTOCOL", "Es9Client", "Es9Error"]

ADMIN_PROTOCOL = "gsma/rsp/v2.2.0"
ES9_PATH = "/gsma/rsp2/es9plus/"


class Es9Error(Exception):
    """An ES9+ function failed. ``subject_code``/``reason_code`` are SGP.22 status codes when the
    server sent them; both are None for a transport or format failure."""

    def __init__(
        self, subject_code: str | None, reason_code: str | None, message: str, function: str
    ) -> None:
        self.subject_code = subject_code
        self.reason_code = reason_code
        self.message = message
        self.function = function
        codes = f"{subject_code}/{reason_code}" if subject_code or reason_code else ""
        # the SM-DP+ puts the codes at the start of its message already (smdp.web.binding): don't repeat them
        prefix = f"{codes} " if codes and not message.startswith(codes) else ""
        super().__init__(f"{function}: {prefix}{message}")


class Es9Client:
    """An ES9+ client; not bound to one SM-DP+, since Notifications may go to other addresses.

    Use as ``async with Es9Client(ca_file=...) as client: ...`` (or call :meth:`close`).
    """

    def __init__(
        self,
        *,
        ca_file: Path | None = None,
        ca_certs: Sequence[x509.Certificate] = (),
        insecure: bool = False,
        timeout: float = 30.0,
        protocol: str = ADMIN_PROTOCOL,
    ) -> None:
        if insecure and (ca_file is not None or ca_certs):
            raise ValueError("insecure=True cannot be combined with a CA certificate")
        cas = list(ca_certs) + ([load_certificate(Path(ca_file))] if ca_file is not None else [])
        self._ssl: ssl.SSLContext | bool
        if insecure:
            self._ssl = False
        elif cas:
            self._ssl = client_ssl_context(cas)
        else:
            self._ssl = ssl.create_default_context()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._protocol = protocol
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Es9Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(ssl=self._ssl)
            )
        return self._session

    async def call(self, address: str, function: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """POST ``body`` to ES9+ ``function`` at ``address`` (host[:port]); the JSON answer or None."""
        url = f"https://{address}{ES9_PATH}{function}"
        headers = {"X-Admin-Protocol": self._protocol, "Content-Type": "application/json"}
        data = json.dumps(body, separators=(",", ":")).encode()
        try:
            async with self._http().post(url, data=data, headers=headers) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            raise Es9Error(None, None, f"HTTP transport failed: {str(exc) or type(exc).__name__}", function) from exc
        if status == 204 or (status // 100 == 2 and not raw.strip()):
            return None  # no output data (SGP.22 6.5.1: 204; some servers send an empty 200)
        if status // 100 != 2:
            raise Es9Error(None, None, f"HTTP status {status}", function)
        try:
            answer = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise Es9Error(None, None, "response body is not JSON", function) from None
        if not isinstance(answer, dict):
            raise Es9Error(None, None, "response body is not a JSON object", function)
        execution = (answer.get("header") or {}).get("functionExecutionStatus") or {}
        state = execution.get("status")
        if state == "Failed":
            codes = execution.get("statusCodeData") or {}
            raise Es9Error(
                codes.get("subjectCode"), codes.get("reasonCode"), codes.get("message") or "Failed", function
            )
        if state not in ("Executed-Success", "Executed-WithWarning"):
            raise Es9Error(None, None, f"unexpected functionExecutionStatus {state!r}", function)
        return answer

    async def _require(
        self, address: str, function: str, body: dict[str, Any], fields: tuple[str, ...]
    ) -> dict[str, Any]:
        answer = await self.call(address, function, body)
        missing = [f for f in fields if not isinstance((answer or {}).get(f), str)]
        if answer is None or missing:
            raise Es9Error(None, None, f"response lacks {', '.join(missing) or 'a body'}", function)
        return answer

    # --- the ES9+ functions (SGP.22 5.6.1 - 5.6.5) -------------------------------------------------

    async def initiate_authentication(
        self, address: str, *, euicc_challenge: str, euicc_info1: str, smdp_address: str
    ) -> dict[str, Any]:
        """Arguments base64; returns transactionId, serverSigned1, serverSignature1,
        euiccCiPKIdToBeUsed, serverCertificate."""
        body = {"euiccChallenge": euicc_challenge, "euiccInfo1": euicc_info1, "smdpAddress": smdp_address}
        fields = ("transactionId", "serverSigned1", "serverSignature1", "euiccCiPKIdToBeUsed", "serverCertificate")
        return await self._require(address, "initiateAuthentication", body, fields)

    async def authenticate_client(
        self, address: str, *, transaction_id: str, authenticate_server_response: str
    ) -> dict[str, Any]:
        """Returns profileMetadata, smdpSigned2, smdpSignature2, smdpCertificate (base64)."""
        body = {"transactionId": transaction_id, "authenticateServerResponse": authenticate_server_response}
        fields = ("profileMetadata", "smdpSigned2", "smdpSignature2", "smdpCertificate")
        return await self._require(address, "authenticateClient", body, fields)

    async def get_bound_profile_package(
        self, address: str, *, transaction_id: str, prepare_download_response: str
    ) -> dict[str, Any]:
        """Returns boundProfilePackage (base64)."""
        body = {"transactionId": transaction_id, "prepareDownloadResponse": prepare_download_response}
        return await self._require(address, "getBoundProfilePackage", body, ("boundProfilePackage",))

    async def handle_notification(self, address: str, *, pending_notification: str) -> None:
        await self.call(address, "handleNotification", {"pendingNotification": pending_notification})

    async def cancel_session(
        self, address: str, *, transaction_id: str, cancel_session_response: str
    ) -> dict[str, Any] | None:
        body = {"transactionId": transaction_id, "cancelSessionResponse": cancel_session_response}
        return await self.call(address, "cancelSession", body)
