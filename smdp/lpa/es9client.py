"""ES9+ client of the test LPA: the HTTPS/JSON binding of SGP.22 section 6.5 (functions in 5.6).

Each call is a POST of a JSON object to ``https://{address}/gsma/rsp2/es9plus/{function}``, made by
the binding's one client, :class:`smdp.web.client.JsonClient`: a ``Failed`` functionExecutionStatus, an
HTTP error, a body that is not JSON and an unreachable server all become :class:`Es9Error`.  Functions
without output data may answer 204 No Content (handleNotification, cancelSession), returned as None.

TLS trust: the CI certificate that issued CERT.DP.TLS (a PEM or DER file, or certificates), or
``insecure=True`` for a test server whose certificate cannot be checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509

from smdp.web.client import ADMIN_PROTOCOL, JsonCallError, JsonClient

__all__ = ["ADMIN_PROTOCOL", "Es9Client", "Es9Error"]

ES9_PATH = "/gsma/rsp2/es9plus/"


class Es9Error(JsonCallError):
    """An ES9+ function failed. ``subject_code``/``reason_code`` are SGP.22 status codes when the
    server sent them; both are None for a transport or format failure (``unreachable`` tells the former)."""

    def __init__(
        self,
        subject_code: str | None,
        reason_code: str | None,
        message: str,
        function: str,
        *,
        unreachable: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(function, subject_code, reason_code, message, unreachable=unreachable, status=status)


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
        self._json = JsonClient(
            ca_file=ca_file, ca_certs=ca_certs, insecure=insecure, timeout=timeout, protocol=protocol, error=Es9Error
        )

    async def __aenter__(self) -> Es9Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._json.close()

    async def call(self, address: str, function: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """POST ``body`` to ES9+ ``function`` at ``address`` (host[:port]); the JSON answer or None."""
        return await self._json.post(f"https://{address}{ES9_PATH}{function}", function, body)

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
