"""A genuine eUICC misbehaving in the field: notifications signed with a real eUICC key, for any session or
ICCID, at any time (stale, late, duplicated, re-signed).  The server can't tell them from the ones a real
eUICC keeps pending in its LPA, which is the point."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from smdp.codec.b64 import b64encode
from smdp.crypto import ecdsa
from smdp.euicc import VirtualEuicc
from smdp.euicc.notifications import notification_metadata, other_signed_notification, profile_installation_result
from smdp.pki.store import EuiccCredentials, load_euicc_credentials
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.saip import luhn_check_digit
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
