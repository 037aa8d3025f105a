"""A genuine eUICC misbehaving in the field: notifications signed with a real eUICC key, for any session or
ICCID, at any time (stale, late, duplicated, re-signed).  The server can't tell them from the ones a real
eUICC keeps pending in its LPA, which is the point."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from smdp.codec import asn1
from smdp.codec.b64 import b64decode, b64encode
from smdp.codec.tlv import tlv
from smdp.crypto import ecdsa
from smdp.crypto.cc import confirmation_code_hash
from smdp.euicc import VirtualEuicc
from smdp.euicc.notifications import (
    notification_metadata,
    other_signed_notification,
    profile_installation_result,
)
from smdp.lpa import es10
from smdp.lpa.download import device_info
from smdp.pki.store import EuiccCredentials, load_euicc_credentials
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.saip import luhn_check_digit
from smdp.rsp.status import RspError
from tests.es9_tools import crafted_euicc_manifest

_serial = iter(range(10**6))


def demo_iccid() -> str:
    body = f"8998{os.getpid() % 10000:04d}{next(_serial):010d}"
    return body + luhn_check_digit(body)


def demo_package(iccid: str) -> bytes:
    """A small SAIP profile package (the demo USIM profile) with this ICCID."""
    return build_demo_profile(iccid, "001010000000009", os.urandom(16), os.urandom(16))


@dataclass
class Device:
    """A virtual eUICC with its own EID, plus the means to sign notifications as it would."""

    euicc: VirtualEuicc
    credentials: EuiccCredentials
    seq: int = 1000

    @property
    def eid(self) -> str:
        return self.credentials.eid

    def _sign(self, data: bytes) -> bytes:
        return ecdsa.sign(self.credentials.euicc_key, data)

    def _metadata(self, event: str, address: str, iccid: str | None) -> bytes:
        self.seq += 1
        return notification_metadata(self.seq, event, address, iccid)

    def installation_result(self, transaction_id: str, iccid: str, address: str, smdp_oid: str, *, success: bool) -> str:
        """A ProfileInstallationResult (base64) for ``transaction_id``, as the eUICC signs it (SGP.22 5.7.7)."""
        final = (
            ("successResult", {"aid": bytes.fromhex("A0000005591010FFFFFFFF8900001000"), "simaResponse": b"\x30\x00"})
            if success
            else ("errorResult", {"bppCommandId": 3, "errorReason": 1})
        )
        der = profile_installation_result(
            transaction_id=bytes.fromhex(transaction_id),
            metadata=self._metadata("install", address, iccid),
            smdp_oid=smdp_oid,
            final_result=final,
            sign=self._sign,
        )
        return b64encode(der)

    def management_notification(self, event: str, iccid: str, address: str) -> str:
        """An enable/disable/delete OtherSignedNotification (base64) with this eUICC's certificates."""
        der = other_signed_notification(
            self._metadata(event, address, iccid),
            sign=self._sign,
            euicc_certificate=self.credentials.euicc_cert.public_bytes(Encoding.DER),
            eum_certificate=self.credentials.eum_cert.public_bytes(Encoding.DER),
        )
        return b64encode(der)


def new_device(tmp: Path, server_manifest: Path, name: str) -> Device:
    """A NIST eUICC with an EID of its own, under the server's CI."""
    manifest = crafted_euicc_manifest(tmp / name, server_manifest)
    euicc = VirtualEuicc.open(tmp / name / "state.json", manifest=manifest, curve="nist")
    return Device(euicc, load_euicc_credentials(manifest, "nist"))


# --- driving the download service directly (no HTTP), as the LPA would ----------------------------------


async def authenticate(download: Any, device: Device, matching_id: str | None, address: str) -> tuple[str, dict[str, Any]]:
    """initiateAuthentication + ES10b.AuthenticateServer + authenticateClient; returns the transactionId and the
    authenticateClient answer (RspError propagates, with the transactionId in ``error.transaction_id``)."""
    challenge, info1 = es10.get_euicc_challenge(device.euicc), es10.get_euicc_info1(device.euicc)
    init = await download.initiate_authentication(
        {"euiccChallenge": b64encode(challenge), "euiccInfo1": b64encode(info1), "smdpAddress": address}
    )
    response = es10.authenticate_server(
        device.euicc,
        server_signed1=b64decode(init["serverSigned1"]),
        server_signature1=b64decode(init["serverSignature1"]),
        euicc_ci_pkid=b64decode(init["euiccCiPKIdToBeUsed"]),
        server_certificate=b64decode(init["serverCertificate"]),
        matching_id=matching_id,
        device_info=device_info(),
    )
    body = {"transactionId": init["transactionId"], "authenticateServerResponse": b64encode(response)}
    try:
        return init["transactionId"], await download.authenticate_client(body)
    except RspError as error:
        error.transaction_id = init["transactionId"]  # type: ignore[attr-defined]
        raise


async def get_bpp(
    download: Any, device: Device, transaction_id: str, auth: dict[str, Any], code: str | None, *, hex_code: bool = False
) -> dict[str, Any]:
    """ES10b.PrepareDownload (with hashCc of ``code`` when the server asks for one; ``hex_code`` hashes its
    hex-decoded bytes, as some test tools do) + getBoundProfilePackage."""
    signed2_der = b64decode(auth["smdpSigned2"])
    signed2 = asn1.rsp().decode("SmdpSigned2", signed2_der)
    hash_cc = None
    if code is not None and signed2["ccRequiredFlag"]:
        hash_cc = confirmation_code_hash(bytes.fromhex(code) if hex_code else code.encode(), signed2["transactionId"])
    smdp_signature2 = b64decode(auth["smdpSignature2"])
    response = es10.prepare_download(
        device.euicc, smdp_signed2=signed2_der, smdp_signature2=smdp_signature2,
        smdp_certificate=b64decode(auth["smdpCertificate"]), hash_cc=hash_cc,
    )  # fmt: skip
    if asn1.rsp().decode("PrepareDownloadResponse", response)[0] != "downloadResponseOk":
        # The virtual eUICC takes one PrepareDownload a session; for another attempt with a new code (SGP.22
        # 5.6.3 lets the session go on after 8.2.7/3.8) sign EUICCSigned2 as the eUICC would.
        signed = {"transactionId": signed2["transactionId"], "euiccOtpk": ecdsa.public_key_to_bytes(
            ecdsa.generate_private_key(device.credentials.curve).public_key())}  # fmt: skip
        if hash_cc is not None:
            signed["hashCc"] = hash_cc
        signed_der = asn1.rsp().encode("EUICCSigned2", signed)
        signature = tlv(0x5F37, device._sign(signed_der + smdp_signature2))
        response = tlv(0xBF21, tlv(0xA0, signed_der + signature))
    return await download.get_bound_profile_package({"transactionId": transaction_id, "prepareDownloadResponse": b64encode(response)})
