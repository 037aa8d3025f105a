"""The JSON binding of SGP.22 section 6.5: request checks, bodies, and the one SGP.22 error renderer.

Every ES9+ (and ES2+) route goes through :func:`json_function`: it checks the transport headers,
parses the body into a dict, calls the function, and renders success or :class:`RspError` as the
``header.functionExecutionStatus`` structure.  Nothing else in the web layer builds error JSON, and no
exception escapes as an HTTP 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from smdp.rsp.status import (
    EXECUTION_ERROR,
    INVALID_CONTENT_TYPE,
    INVALID_INPUT,
    UNSUPPORTED_PROTOCOL,
    RspError,
    StatusCode,
)
from smdp.web.limits import LIMITS_KEY, Limits

log = logging.getLogger(__name__)
#: Set (True) on the log record of the catch-all below, so that tests can tell a server fault answered
#: 1.2/4.2 from any other record of this logger (see tests/conftest.py).
CATCH_ALL_MARK = "smdp_catch_all"

MAX_BODY = 64 * 1024  # the largest ES9+ request (a notification with certificates) is a few KB
DEFAULT_PROTOCOL = "gsma/rsp/v2.2.0"
_PROTOCOL = re.compile(r"^gsma/rsp/v2\.\d+(\.\d+)?$")

JsonFunction = Callable[..., Awaitable[dict[str, Any] | None]]
Authenticator = Callable[[web.Request, dict[str, Any]], Awaitable[Any]]


class HttpRefusal(RspError):
    """An RspError answered with an HTTP error status instead of 200: a caller of a mutual-TLS listener
    (smdp.web.client_auth) whose credentials are missing (401) or belong to no operator, or to two different
    ones (403).  The body still carries the SGP.22 status (1.1/1.1, 1.1/1.2) for clients that read it; the
    status code is what tells an HTTP client, a proxy or a monitor that authentication failed."""

    def __init__(self, status: int, code: StatusCode, message: str | None = None) -> None:
        super().__init__(code, message)
        self.status = status


def success_body(fields: dict[str, Any]) -> dict[str, Any]:
    return {"header": {"functionExecutionStatus": {"status": "Executed-Success"}}, **fields}


def failure_body(error: RspError) -> dict[str, Any]:
    return {
        "header": {
            "functionExecutionStatus": {
                "status": "Failed",
                "statusCodeData": {
                    "subjectCode": error.code.subject_code,
                    "reasonCode": error.code.reason_code,
                    # LPAs such as lpac show only the message: carry the codes in it too
                    "message": f"{error.code.subject_code}/{error.code.reason_code} {error.message}",
                },
            }
        }
    }


def _response(body: dict[str, Any] | None, protocol: str, status: int = 200) -> web.Response:
    headers = {"X-Admin-Protocol": protocol}
    if body is None:  # SGP.22 section 6.5.1: functions without output data answer 204
        return web.Response(status=204, headers=headers)
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


async def _read_request(request: web.Request) -> tuple[dict[str, Any], str]:
    protocol = request.headers.get("X-Admin-Protocol", "").strip()
    if not _PROTOCOL.match(protocol):
        raise RspError(UNSUPPORTED_PROTOCOL, f"X-Admin-Protocol {protocol!r} is not gsma/rsp/v2.x.y")
    mime = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if mime != "application/json":
        raise RspError(INVALID_CONTENT_TYPE, f"Content-Type {mime!r} is not application/json")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise RspError(INVALID_INPUT, f"request body larger than {MAX_BODY} bytes")
    raw = await _read_body(request)
    if len(raw) > MAX_BODY:
        raise RspError(INVALID_INPUT, f"request body larger than {MAX_BODY} bytes")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RspError(INVALID_INPUT, f"body is not JSON: {exc}") from None
    except RecursionError:  # nesting deeper than the interpreter's recursion limit
        raise RspError(INVALID_INPUT, "body is not JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise RspError(INVALID_INPUT, "body is not a JSON object")
    return body, protocol


async def _read_body(request: web.Request) -> bytearray:
    """The body (at most MAX_BODY + 1 bytes), however it is split across TCP segments and TLS records, with
    Content-Length or chunked.  Limits.body_timeout bounds the whole read: a client that stalls short of its
    Content-Length (or before the last chunk) gets 1.6/2.1 and its request is not processed, instead of
    holding a handler and a connection until the keep-alive timeout or forever."""
    limits = request.config_dict.get(LIMITS_KEY) or Limits()
    raw = bytearray()
    try:
        async with asyncio.timeout(limits.body_timeout):
            while len(raw) <= MAX_BODY:  # read(n) returns what has arrived (up to n bytes), not necessarily all of it
                chunk = await request.content.read(MAX_BODY + 1 - len(raw))
                if not chunk:
                    break
                raw += chunk
    except TimeoutError:
        expected = f"of {request.content_length} " if request.content_length is not None else ""
        raise RspError(
            INVALID_INPUT, f"request body incomplete: {len(raw)} bytes {expected}after {limits.body_timeout:g} s"
        ) from None
    except (RequestPayloadError, ConnectionError) as exc:  # a malformed chunked body, or the client hung up
        raise RspError(INVALID_INPUT, f"request body incomplete or malformed: {exc}") from None
    return raw


def json_function(
    function: JsonFunction, authenticate: Authenticator | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap an SGP.22 function (dict in, dict or None out) as an aiohttp handler.

    With ``authenticate`` (ES2+), the caller it returns is passed to the function after the body; an
    :class:`HttpRefusal` it raises is answered with that HTTP status (401, 403) rather than 200."""

    async def handler(request: web.Request) -> web.Response:
        protocol = DEFAULT_PROTOCOL
        try:
            body, protocol = await _read_request(request)
            if authenticate is None:
                result = await function(body)
            else:
                result = await function(body, await authenticate(request, body))
        except RspError as error:
            log.info("%s failed: %s", request.path, error)
            return _response(failure_body(error), protocol, error.status if isinstance(error, HttpRefusal) else 200)
        except Exception:  # never a 500 or a stack trace to the client
            # A server fault, never bad input (that is an RspError): the tests fail on this record.
            log.exception("%s: unexpected error", request.path, extra={CATCH_ALL_MARK: True})
            return _response(failure_body(RspError(EXECUTION_ERROR)), protocol)
        return _response(None if result is None else success_body(result), protocol)

    return handler
