"""The test LPA's Profile download, SGP.22 section 3.1.3 (with common mutual authentication 3.1.2,
the Common Cancel Session procedure 3.0.2 and Notifications 3.5).

Steps: GetEUICCChallenge + GetEUICCInfo1 -> ES9+.InitiateAuthentication -> ES10b.AuthenticateServer
-> ES9+.AuthenticateClient -> ES10b.PrepareDownload -> ES9+.GetBoundProfilePackage ->
ES10b.LoadBoundProfilePackage -> ES9+.HandleNotification of the installation result ->
ES10b.RemoveNotificationFromList.

Error handling, as SGP.22 lays it out: an ES9+ failure ends the download (the SM-DP+ has already
closed its session); an eUICC error answer to AuthenticateServer or PrepareDownload is still
forwarded to the SM-DP+, which closes its side; a refusal by the LPA or the user after
AuthenticateClient (``cancel_at``, a missing Confirmation Code, metadata that differ from the
BPP's StoreMetadata, a load that ends without a result) runs the Common Cancel Session procedure:
ES10b.CancelSession, then ES9+.CancelSession with the eUICC's signed answer. A ProfileInstallationResult,
success or error, is always delivered to the SM-DP+.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from smdp.codec import asn1
from smdp.codec.b64 import b64decode, b64encode
from smdp.codec.tlv import TlvError, iter_tlvs, read_tlv
from smdp.crypto.cc import confirmation_code_hash
from smdp.lpa import es10
from smdp.lpa.es9client import Es9Client, Es9Error
from smdp.pki.verify import CertificateError, smdp_oid_of
from smdp.profiles.saip import decode_iccid
from smdp.rsp.activation import parse_activation_code
from smdp.rsp.es10b import AUTHENTICATE_ERRORS, BPP_COMMAND_IDS, CANCEL_REASONS, DOWNLOAD_ERRORS, ERROR_REASONS

__all__ = [
    "CANCELLABLE_STAGES",
    "DEFAULT_TAC",
    "DownloadResult",
    "NotificationDelivery",
    "device_info",
    "download",
    "process_notifications",
]

#: Stages after which ``cancel_at`` may cancel: the SM-DP+ then holds an authenticated session.
CANCELLABLE_STAGES = ("authenticateClient", "prepareDownload", "getBoundProfilePackage")
DEFAULT_TAC = "35290611"


def _names(table: dict[str, int]) -> dict[int, str]:
    return {code: name for name, code in table.items()}


@dataclass
class DownloadResult:
    """What happened. On failure ``stage`` names the step (an ES9+ function or ES10b function)."""

    ok: bool
    smdp_address: str
    matching_id: str | None
    eid: str | None = None
    transaction_id: str | None = None
    iccid: str | None = None
    profile_name: str | None = None
    service_provider_name: str | None = None
    stage: str | None = None
    subject_code: str | None = None
    reason_code: str | None = None
    message: str | None = None
    euicc_error: str | None = None  # e.g. "invalidSignature", from an eUICC error answer
    bpp_command_id: str | None = None
    error_reason: str | None = None
    cancel_reason: str | None = None
    notification_seq_number: int | None = None
    notification_delivered: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Stop(Exception):
    """Ends the flow; the result already says why."""


def device_info(tac: str = DEFAULT_TAC, imei: str | None = None) -> dict[str, Any]:
    """DeviceInfo for ctxParams1: the TAC, the releases a current smartphone supports, the IMEI."""
    if len(tac) != 8 or not tac.isdigit():
        raise ValueError("TAC must be 8 digits")
    release = bytes([15, 0, 0])
    info: dict[str, Any] = {
        "tac": bytes.fromhex(tac),
        "deviceCapabilities": {
            "gsmSupportedRelease": release,
            "utranSupportedRelease": release,
            "eutranEpcSupportedRelease": release,
            "nr5gcSupportedRelease": release,
        },
    }
    if imei is not None:
        if not imei.isdigit() or len(imei) not in (15, 16):
            raise ValueError("IMEI must be 15 (or 16, IMEISV) digits")
        digits = (imei + "F")[:16]  # TS 24.008 BCD: nibbles swapped, 'F' filler
        info["imei"] = bytes.fromhex("".join(digits[i + 1] + digits[i] for i in range(0, 16, 2)))
    return info


def _store_metadata_from_bpp(bpp: bytes) -> bytes:
    """The StoreMetadataRequest the BPP carries: the '88' segments are MACed, not encrypted."""
    for part in iter_tlvs(read_tlv(bpp).value):
        if part.tag == 0xA1:
            return b"".join(segment.value[:-8] for segment in iter_tlvs(part.value))
    raise TlvError("BPP has no 'A1' sequence")


class _Flow:
    def __init__(self, euicc: es10.EuiccChannel, client: Es9Client, result: DownloadResult) -> None:
        self.euicc = euicc
        self.client = client
        self.result = result
        self.address = result.smdp_address

    def fail(self, stage: str, message: str, error: Es9Error | None = None) -> _Stop:
        self.result.stage, self.result.message = stage, message
        if error is not None:
            self.result.subject_code, self.result.reason_code = error.subject_code, error.reason_code
        return _Stop(message)

    async def es9(self, coroutine: Any, stage: str) -> Any:
        try:
            return await coroutine
        except Es9Error as exc:
            raise self.fail(stage, exc.message, exc) from None

    async def cancel(self, stage: str, reason: str, message: str) -> _Stop:
        """Common Cancel Session (SGP.22 3.0.2): eUICC first, then the SM-DP+ with its signed answer."""
        self.result.cancel_reason = reason
        stop = self.fail(stage, message)
        assert self.result.transaction_id is not None
        try:
            response = es10.cancel_session(self.euicc, bytes.fromhex(self.result.transaction_id), reason)
        except (es10.Es10Error, ValueError) as exc:
            self.result.message = f"{message}; ES10b.CancelSession failed: {exc}"
            return stop
        try:
            await self.client.cancel_session(
                self.address, transaction_id=self.result.transaction_id, cancel_session_response=b64encode(response)
            )
        except Es9Error as exc:
            self.result.subject_code, self.result.reason_code = exc.subject_code, exc.reason_code
            self.result.message = f"{message}; ES9+.CancelSession failed: {exc.message}"
        return stop


async def download(
    euicc: es10.EuiccChannel,
    activation_code: str,
    *,
    confirmation_code: str | None = None,
    client: Es9Client | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    tac: str = DEFAULT_TAC,
    imei: str | None = None,
    cancel_at: str | None = None,
    cancel_reason: str = "endUserRejection",
) -> DownloadResult:
    """Download and install the Profile the activation code points to (SGP.22 3.1.3).

    ``client`` (or ``ca_file`` / ``insecure`` to make one) reaches the SM-DP+. ``cancel_at`` (one of
    :data:`CANCELLABLE_STAGES`) cancels on purpose right after that step with ``cancel_reason``.
    """
    if cancel_at is not None and cancel_at not in CANCELLABLE_STAGES:
        raise ValueError(f"cancel_at must be one of {CANCELLABLE_STAGES}")
    if cancel_reason not in CANCEL_REASONS:
        raise ValueError(f"unknown cancel reason {cancel_reason!r}")
    code = parse_activation_code(activation_code)
    result = DownloadResult(ok=False, smdp_address=code.smdp_address, matching_id=code.matching_id or None)
    own_client = client is None
    client = client or Es9Client(ca_file=ca_file, insecure=insecure)
    flow = _Flow(euicc, client, result)
    try:
        await _run(flow, code.smdp_oid, confirmation_code, device_info(tac, imei), cancel_at, cancel_reason)
    except _Stop:
        pass
    finally:
        if own_client:
            await client.close()
    return result


async def _run(
    flow: _Flow,
    expected_oid: str | None,
    confirmation_code: str | None,
    device: dict[str, Any],
    cancel_at: str | None,
    cancel_reason: str,
) -> None:
    euicc, client, result, address = flow.euicc, flow.client, flow.result, flow.address
    result.eid = es10.get_eid(euicc)
    challenge = es10.get_euicc_challenge(euicc)
    info1 = es10.get_euicc_info1(euicc)

    stage = "initiateAuthentication"
    init = await flow.es9(
        client.initiate_authentication(
            address, euicc_challenge=b64encode(challenge), euicc_info1=b64encode(info1), smdp_address=address
        ),
        stage,
    )
    try:
        signed1_der = b64decode(init["serverSigned1"])
        signed1 = asn1.decode_exact(asn1.rsp(), "ServerSigned1", signed1_der)
        server_certificate = b64decode(init["serverCertificate"])
        certificate_oid = smdp_oid_of(x509.load_der_x509_certificate(server_certificate))
    except (ValueError, CertificateError, asn1.Asn1Error) as exc:
        raise flow.fail(stage, f"malformed InitiateAuthentication response: {exc}") from None
    result.transaction_id = init["transactionId"]
    if signed1["transactionId"].hex().upper() != init["transactionId"].upper():
        raise flow.fail(stage, "serverSigned1 carries another transactionId")
    if expected_oid is not None and certificate_oid != expected_oid:
        # SGP.22 4.1: the activation code's SM-DP+ OID must be the one the server authenticates with
        raise flow.fail(stage, f"SM-DP+ OID {certificate_oid} is not the activation code's {expected_oid}")

    stage = "authenticateServer"
    response = es10.authenticate_server(
        euicc,
        server_signed1=signed1_der,
        server_signature1=b64decode(init["serverSignature1"]),
        euicc_ci_pkid=b64decode(init["euiccCiPKIdToBeUsed"]),
        server_certificate=server_certificate,
        matching_id=result.matching_id,
        device_info=device,
    )
    kind, value = asn1.rsp().decode("AuthenticateServerResponse", response)
    if kind == "authenticateResponseError":
        result.euicc_error = _names(AUTHENTICATE_ERRORS).get(value["authenticateErrorCode"], "undefinedError")
    # Forwarded either way: an error answer tells the SM-DP+ to close its session.
    auth = await flow.es9(
        client.authenticate_client(
            address, transaction_id=result.transaction_id, authenticate_server_response=b64encode(response)
        ),
        "authenticateClient" if result.euicc_error is None else stage,
    )
    try:
        metadata_der = b64decode(auth["profileMetadata"])
        metadata = asn1.decode_exact(asn1.rsp(), "StoreMetadataRequest", metadata_der)
        smdp_signed2_der = b64decode(auth["smdpSigned2"])
        smdp_signed2 = asn1.decode_exact(asn1.rsp(), "SmdpSigned2", smdp_signed2_der)
    except (ValueError, asn1.Asn1Error) as exc:
        raise flow.fail("authenticateClient", f"malformed AuthenticateClient response: {exc}") from None
    result.iccid = decode_iccid(metadata["iccid"])
    result.profile_name = metadata["profileName"]
    result.service_provider_name = metadata["serviceProviderName"]
    if cancel_at == "authenticateClient":
        raise await flow.cancel(cancel_at, cancel_reason, "cancelled on request")

    stage = "prepareDownload"
    hash_cc = None
    if smdp_signed2["ccRequiredFlag"]:
        if not confirmation_code:
            raise await flow.cancel(stage, "endUserRejection", "a Confirmation Code is required")
        hash_cc = confirmation_code_hash(confirmation_code.encode(), smdp_signed2["transactionId"])
    response = es10.prepare_download(
        euicc,
        smdp_signed2=smdp_signed2_der,
        smdp_signature2=b64decode(auth["smdpSignature2"]),
        smdp_certificate=b64decode(auth["smdpCertificate"]),
        hash_cc=hash_cc,
    )
    kind, value = asn1.rsp().decode("PrepareDownloadResponse", response)
    if kind == "downloadResponseError":
        result.euicc_error = _names(DOWNLOAD_ERRORS).get(value["downloadErrorCode"], "undefinedError")
    elif cancel_at == "prepareDownload":
        raise await flow.cancel(cancel_at, cancel_reason, "cancelled on request")

    package = await flow.es9(
        client.get_bound_profile_package(
            address, transaction_id=result.transaction_id, prepare_download_response=b64encode(response)
        ),
        "getBoundProfilePackage" if result.euicc_error is None else stage,
    )
    if result.euicc_error is not None:  # the SM-DP+ should have refused; stop anyway
        raise flow.fail(stage, f"eUICC refused PrepareDownload: {result.euicc_error}")
    if cancel_at == "getBoundProfilePackage":
        raise await flow.cancel(cancel_at, cancel_reason, "cancelled on request")

    stage = "loadBoundProfilePackage"
    try:
        bpp = b64decode(package["boundProfilePackage"])
        if _store_metadata_from_bpp(bpp) != metadata_der:
            raise await flow.cancel(stage, "metadataMismatch", "the BPP's StoreMetadata differs from profileMetadata")
        pir = es10.load_bound_profile_package(euicc, bpp)
    except (ValueError, es10.Es10Error) as exc:  # TlvError is a ValueError
        raise await flow.cancel(stage, "loadBppExecutionError", f"BPP could not be loaded: {exc}") from None
    if pir is None:
        raise await flow.cancel(stage, "loadBppExecutionError", "the eUICC returned no installation result")
    await _deliver_result(flow, pir)


async def _deliver_result(flow: _Flow, pir: bytes) -> None:
    result = flow.result
    data = asn1.rsp().decode("ProfileInstallationResult", pir)["profileInstallationResultData"]
    notification = data["notificationMetadata"]
    result.notification_seq_number = notification["seqNumber"]
    kind, final = data["finalResult"]
    if kind == "successResult":
        result.ok = True
    else:
        result.stage = "loadBoundProfilePackage"
        result.bpp_command_id = _names(BPP_COMMAND_IDS).get(final["bppCommandId"], str(final["bppCommandId"]))
        result.error_reason = _names(ERROR_REASONS).get(final["errorReason"], str(final["errorReason"]))
        result.message = f"installation failed: {result.bpp_command_id}, {result.error_reason}"
    try:
        await flow.client.handle_notification(notification["notificationAddress"], pending_notification=b64encode(pir))
    except Es9Error as exc:
        result.message = f"{result.message + '; ' if result.message else ''}handleNotification failed: {exc.message}"
        return
    es10.remove_notification(flow.euicc, notification["seqNumber"])
    result.notification_delivered = True


@dataclass(frozen=True)
class NotificationDelivery:
    seq_number: int
    event: str
    address: str
    iccid: str | None
    delivered: bool
    error: str | None = None
    unreachable: bool = False  # the address could not be reached (transport failure), as opposed to refused


def _identity(item: es10.NotificationInfo) -> tuple[int, str, str, str | None]:
    return item.seq_number, item.event, item.address, item.iccid


async def process_notifications(euicc: es10.EuiccChannel, client: Es9Client) -> list[NotificationDelivery]:
    """Send every pending Notification to its address (ES9+.HandleNotification) and remove the
    delivered ones from the eUICC (SGP.22 3.5); the undelivered stay pending for a later try."""
    deliveries = []
    for item in es10.list_notifications(euicc):
        der = es10.retrieve_notification(euicc, item.seq_number)
        if der is None:
            continue
        try:
            await client.handle_notification(item.address, pending_notification=b64encode(der))
        except Es9Error as exc:
            deliveries.append(
                NotificationDelivery(*_identity(item), delivered=False, error=str(exc), unreachable=exc.unreachable)
            )
            continue
        es10.remove_notification(euicc, item.seq_number)
        deliveries.append(NotificationDelivery(*_identity(item), delivered=True))
    return deliveries
