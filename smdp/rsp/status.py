"""SGP.22 function execution status codes (section 5.1.6.4 / 6.5.1.4) and the one error type carrying them.

Every failure the server reports to an LPA or an operator is an :class:`RspError` holding a
:class:`StatusCode` (subjectCode, reasonCode).  The web layer renders it in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatusCode:
    subject_code: str
    reason_code: str
    description: str

    def __str__(self) -> str:
        return f"{self.subject_code}/{self.reason_code} {self.description}"


class RspError(Exception):
    """A failed function execution, answered with ``status: Failed`` and ``statusCodeData``."""

    def __init__(self, code: StatusCode, message: str | None = None) -> None:
        self.code = code
        self.message = message or code.description
        super().__init__(f"{code.subject_code}/{code.reason_code}: {self.message}")


# Common codes (SGP.22 section 5.1.6.4 / SGP.22 ES2+ common status codes).
UNKNOWN_REQUESTER = StatusCode("1.1", "1.1", "Function requester unknown")
REQUESTER_NOT_ALLOWED = StatusCode("1.1", "1.2", "Function requester not allowed")
EXECUTION_ERROR = StatusCode("1.2", "4.2", "Execution error")
INVALID_CONTENT_TYPE = StatusCode("1.2.1", "2.1", "Invalid Content-Type header")
UNSUPPORTED_PROTOCOL = StatusCode("1.2.2", "2.1", "Unsupported X-Admin-Protocol version")
INVALID_INPUT = StatusCode("1.6", "2.1", "Invalid input parameter")
MISSING_INPUT = StatusCode("1.6", "2.2", "Mandatory element missing")

# ES9+.InitiateAuthentication (SGP.22 section 5.6.1)
INVALID_SMDP_ADDRESS = StatusCode("8.8.1", "3.8", "Invalid SM-DP+ Address")
SECURITY_CONFIGURATION_NOT_SUPPORTED = StatusCode(
    "8.8.2", "3.1", "None of the proposed Public Key Identifiers is supported by the SM-DP+"
)
UNSUPPORTED_SVN = StatusCode("8.8.3", "3.1", "Specification Version Number not supported")
NO_DPAUTH_FOR_CI = StatusCode("8.8.4", "3.7", "No CERT.DPauth.ECDSA signed by a CI the eUICC supports")

# ES9+.AuthenticateClient (SGP.22 section 5.6.2)
EUICC_SIGNATURE_INVALID = StatusCode("8.1", "6.1", "eUICC signature is invalid or serverChallenge mismatch")
EUM_CERTIFICATE_INVALID = StatusCode("8.1.2", "6.1", "EUM certificate verification failed")
EUM_CERTIFICATE_EXPIRED = StatusCode("8.1.2", "6.3", "EUM certificate expired")
EUICC_CERTIFICATE_INVALID = StatusCode("8.1.3", "6.1", "eUICC certificate verification failed")
EUICC_CERTIFICATE_EXPIRED = StatusCode("8.1.3", "6.3", "eUICC certificate expired")
CI_PUBLIC_KEY_UNKNOWN = StatusCode("8.11.1", "3.9", "Unknown CI public key")
TRANSACTION_ID_UNKNOWN = StatusCode("8.10.1", "3.9", "The RSP session identified by the transactionId is unknown")
MATCHING_ID_REFUSED = StatusCode("8.2.6", "3.8", "Matching ID refused")
EID_REFUSED = StatusCode("8.1.1", "3.8", "EID doesn't match the expected value")
PROFILE_NOT_RELEASED = StatusCode("8.2", "1.2", "Profile not released")
PPR_NOT_ALLOWED = StatusCode("8.2.5", "4.3", "Profile Policy Rule not allowed by the eUICC")
DOWNLOAD_ORDER_EXPIRED = StatusCode("8.8.5", "4.10", "Download order expired")
MAX_RETRIES_EXCEEDED = StatusCode("8.8.5", "6.4", "Maximum number of download attempts exceeded")

# ES9+.GetBoundProfilePackage (SGP.22 section 5.6.2)
CONFIRMATION_CODE_MISSING = StatusCode("8.2.7", "2.2", "Confirmation Code is missing")
CONFIRMATION_CODE_REFUSED = StatusCode("8.2.7", "3.8", "Confirmation Code refused")
CONFIRMATION_CODE_RETRIES_EXCEEDED = StatusCode("8.2.7", "6.4", "Maximum number of Confirmation Code attempts exceeded")

# ES9+.CancelSession (SGP.22 section 5.6.5)
INVALID_SMDP_OID = StatusCode("8.8", "3.10", "The provided SM-DP+ OID is invalid")

# ES2+ (SGP.22 section 5.3): DownloadOrder, ConfirmOrder, CancelOrder, ReleaseProfile
CONDITIONAL_INPUT_MISSING = StatusCode("1.6", "2.3", "Conditional element missing")
EID_INVALID = StatusCode("8.1.1", "2.1", "EID invalid")
EID_MISSING = StatusCode("8.1.1", "2.2", "EID missing: neither EID nor matching ID given")
EID_MISMATCH = StatusCode("8.1.1", "3.10", "EID doesn't match the one of the order")
ICCID_UNKNOWN = StatusCode("8.2.1", "3.9", "Profile ICCID unknown")
ICCID_ALREADY_RESERVED = StatusCode("8.2.1", "3.3", "Profile ICCID already in use")
# SGP.22 gives no dedicated code for an order step in the wrong state; 3.5 "Invalid transition".
INVALID_TRANSITION = StatusCode("8.2.1", "3.5", "Invalid transition for the profile's state")
PROFILE_TYPE_UNKNOWN = StatusCode("8.2.5", "3.9", "Profile Type unknown")
PROFILE_TYPE_EXHAUSTED = StatusCode("8.2.5", "3.7", "No more profiles available for this Profile Type")
MATCHING_ID_IN_USE = StatusCode("8.2.6", "3.3", "Matching ID already in use")
MATCHING_ID_MISMATCH = StatusCode("8.2.6", "3.10", "Matching ID doesn't match the one of the order")
SMDS_ADDRESS_INVALID = StatusCode("8.9", "5.1", "Invalid SM-DS address")
