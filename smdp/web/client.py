"""The client side of the SGP.22 JSON binding (section 6.5), whose server side is :mod:`smdp.web.binding`.

Every function call is an HTTPS POST of a JSON object with ``X-Admin-Protocol`` and ``Content-Type``; the
answer's ``header.functionExecutionStatus`` says whether the function executed, and a function without
output data may answer 204 No Content.  :class:`JsonClient` does that one exchange for the three callers
that speak the binding -- the test LPA's ES9+ client (:mod:`smdp.lpa.es9client`), the operator's ES2+
client (:mod:`smdp.operator_client`) and the server's ES2+ callbacks to operators
(:mod:`smdp.services.outbox`) -- so that each of them reports failures the same way.

Every way a call can fail is one exception, :class:`JsonCallError`: the server could not be reached
(connection, TLS, timeout: ``unreachable`` is True, which the CLI turns into exit status 3), it answered
an HTTP error, a body that is not a JSON object, or a ``Failed`` status (``subject_code``/``reason_code``
are then the SGP.22 status codes it sent).  Callers pass their own subclass (``error=``) so that their
``except`` clauses keep working.

Redirects are never followed: no SGP.22 function redirects, and a 3xx (whose POST might be replayed as a
GET, or to another host with the caller's token) is a failed call like any other non-2xx answer.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509

from smdp.pki.store import load_certificate
from smdp.pki.tls import client_ssl_context
from smdp.web.binding import DEFAULT_PROTOCOL

__all__ = ["ADMIN_PROTOCOL", "CONTENT_TYPE", "JsonCallError", "JsonClient", "system_ssl_context"]

#: The X-Admin-Protocol a request carries (SGP.22 6.5.1); the server accepts any gsma/rsp/v2.x.y.
ADMIN_PROTOCOL = DEFAULT_PROTOCOL
#: The request Content-Type SGP.22 6.5.1 gives (the server side accepts it with or without the charset).
CONTENT_TYPE = "application/json;charset=UTF-8"
#: A success: the function executed (a warning still means it did; SGP.22 6.5.1.4).
EXECUTED = ("Executed-Success", "Executed-WithWarning")
#: The prefix of every message of an unreachable server.  ``smdp lpa download`` only has the message of
#: the failed step (smdp.lpa.download.DownloadResult) and tells exit status 3 from 1 by it.
TRANSPORT_FAILED = "HTTP transport failed"


class JsonCallError(Exception):
    """A call of ``function`` failed; ``str()`` is one line: ``function: [subject/reason ]message``.

    ``subject_code``/``reason_code`` are the SGP.22 status codes when the server sent them (None for a
    transport or format failure), ``status`` the HTTP status when there was an answer, and ``unreachable``
    says that there was none (connection refused, TLS handshake or certificate, timeout)."""

    def __init__(
        self,
        function: str,
        subject_code: str | None,
        reason_code: str | None,
        message: str,
        *,
        unreachable: bool = False,
        status: int | None = None,
    ) -> None:
        self.function, self.subject_code, self.reason_code, self.message = function, subject_code, reason_code, message
        self.unreachable = unreachable
        self.status = status
        super().__init__(f"{function}: {self.detail}")

    @property
    def detail(self) -> str:
        """The codes and the message, without the function's name (as an outbox event records it)."""
        codes = f"{self.subject_code}/{self.reason_code}" if self.subject_code or self.reason_code else ""
        # the SM-DP+ puts the codes at the start of its message already (smdp.web.binding): don't repeat them
        prefix = f"{codes} " if codes and not self.message.startswith(codes) else ""
        return f"{prefix}{self.message}"


def system_ssl_context(ca_pem: str | None = None) -> ssl.SSLContext:
    """The system trust store plus the PEM certificate(s) ``ca_pem``; certificate and host name verified,
    TLS 1.2 or later.  For endpoints in the web PKI (an operator's callback URL), unlike the RSP PKI's
    CERT.DP.TLS, which :class:`JsonClient` trusts through ``ca_file``/``ca_certs`` alone."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    return context


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


def _transport_reason(exc: BaseException, timeout: float | None) -> str:
    """What went wrong on the way, in words a user can act on (no object reprs)."""
    if isinstance(exc, TimeoutError):  # asyncio's and aiohttp's (ServerTimeoutError) alike
        return f"no answer within {timeout:g} s" if timeout else "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        # its str() shows the certificate error's args tuple; ssl's own sentence is what the user needs
        error = exc.certificate_error
        return f"TLS certificate verify failed: {getattr(error, 'verify_message', None) or error}"
    if isinstance(exc, aiohttp.ClientSSLError):  # a handshake failure other than the certificate
        return f"TLS handshake failed: {exc}"
    return str(exc) or type(exc).__name__


def _execution_status(answer: Any) -> tuple[str | None, dict[str, Any]]:
    """``header.functionExecutionStatus``'s status and statusCodeData, whatever shape the answer has."""
    header = answer.get("header") if isinstance(answer, dict) else None
    execution = header.get("functionExecutionStatus") if isinstance(header, dict) else None
    if not isinstance(execution, dict):
        return None, {}
    state, codes = execution.get("status"), execution.get("statusCodeData")
    return (state if isinstance(state, str) else None), (codes if isinstance(codes, dict) else {})


def _code(codes: dict[str, Any], name: str) -> str | None:
    value = codes.get(name)
    return value if isinstance(value, str) and value else None


class JsonClient:
    """POSTs SGP.22 JSON function calls over one aiohttp session (created on first use, in the event loop).

    Trust: ``ca_file``/``ca_certs`` (the RSP CI that issued the server's TLS certificate: only these are
    trusted), else the system trust store; ``insecure=True`` checks nothing (a test server).  ``post``'s
    ``ssl_context`` overrides it for one request (an operator's own CA, :func:`system_ssl_context`).
    ``timeout`` (seconds, or an aiohttp.ClientTimeout) bounds a whole call; ``connection_limit`` 0 means no
    limit.  Failures raise ``error`` (:class:`JsonCallError` or a subclass taking the same keywords).

    Use as ``async with JsonClient(...) as client: ...`` (or call :meth:`close`).
    """

    def __init__(
        self,
        *,
        ca_file: Path | None = None,
        ca_certs: Sequence[x509.Certificate] = (),
        insecure: bool = False,
        timeout: float | aiohttp.ClientTimeout = 30.0,
        protocol: str = ADMIN_PROTOCOL,
        connection_limit: int = 100,
        error: type[JsonCallError] = JsonCallError,
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
        self._timeout = timeout if isinstance(timeout, aiohttp.ClientTimeout) else aiohttp.ClientTimeout(total=timeout)
        self._protocol = protocol
        self._limit = connection_limit
        self._error = error
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> JsonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._limit)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        return self._session

    def _fail(self, function: str, message: str, *, status: int | None = None, unreachable: bool = False,
              codes: dict[str, Any] | None = None) -> JsonCallError:
        codes = codes or {}
        return self._error(
            function=function,
            subject_code=_code(codes, "subjectCode"),
            reason_code=_code(codes, "reasonCode"),
            message=message,
            unreachable=unreachable,
            status=status,
        )

    async def post(
        self,
        url: str,
        function: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        allow_empty: bool = True,
        lenient: bool = False,
    ) -> dict[str, Any] | None:
        """POST ``body`` to ``url`` (the function ``function``, as errors name it); the answer's JSON object.

        An answer without a body (204, or an empty 2xx) is None when ``allow_empty``, else an error (the
        function has output data).  ``lenient`` accepts any 2xx answer except an explicit ``Failed`` status
        (a callback receiver that answers ``200 OK`` in plain text has still taken the call)."""
        request_headers = {"X-Admin-Protocol": self._protocol, "Content-Type": CONTENT_TYPE, **(headers or {})}
        data = json.dumps(body, separators=(",", ":")).encode()
        try:
            async with self._http().post(
                url,
                data=data,
                headers=request_headers,
                ssl=ssl_context if ssl_context is not None else True,  # True: the session's trust
                allow_redirects=False,
            ) as response:
                status, content_type = response.status, response.content_type
                raw = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = _transport_reason(exc, self._timeout.total)
            raise self._fail(
                function, f"{TRANSPORT_FAILED}: cannot reach {_origin(url)}: {reason}", unreachable=True
            ) from None
        return self._answer(function, status, content_type, raw, allow_empty=allow_empty, lenient=lenient)

    def _answer(
        self, function: str, status: int, content_type: str, raw: bytes, *, allow_empty: bool, lenient: bool
    ) -> dict[str, Any] | None:
        success = status // 100 == 2
        if success and not raw.strip():  # SGP.22 6.5.1: 204 for no output data; some servers send an empty 200
            if allow_empty or lenient:
                return None
            raise self._fail(function, f"HTTP {status} without a response body", status=status)
        try:
            answer = json.loads(raw) if raw.strip() else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            answer = None
            if success and not lenient:
                raise self._fail(
                    function, f"HTTP {status}: response body is not JSON ({content_type})", status=status
                ) from None
        state, codes = _execution_status(answer)
        if not success:
            # an HTTP error; a server that explains it with SGP.22 status codes gets them reported
            if state == "Failed" and codes:
                message = codes.get("message") if isinstance(codes.get("message"), str) else None
                raise self._fail(function, f"{message or 'Failed'} (HTTP {status})", status=status, codes=codes)
            raise self._fail(function, f"HTTP {status}", status=status)
        if state == "Failed":
            message = codes.get("message") if isinstance(codes.get("message"), str) else None
            raise self._fail(function, message or "Failed", status=status, codes=codes)
        if lenient:
            return answer if isinstance(answer, dict) else None
        if not isinstance(answer, dict):
            raise self._fail(function, f"HTTP {status}: response body is not a JSON object", status=status)
        if state not in EXECUTED:
            found = "no header.functionExecutionStatus" if state is None else f"functionExecutionStatus {state!r}"
            raise self._fail(function, f"unexpected answer: {found}", status=status)
        return answer
