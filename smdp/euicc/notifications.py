"""Notifications on the eUICC (SGP.22 3.5, 5.7.9 ListNotification, 5.7.10 RetrieveNotificationsList,
5.7.11 RemoveNotificationFromList) and the signed objects they carry (5.7.6, Annex H).

A Notification is created once, signed once and kept as the exact PendingNotification DER until the
LPA reports it delivered: a ProfileInstallationResult ('BF37', euiccSignPIR over the whole
ProfileInstallationResultData 'BF27' TLV) after a BPP load, or an OtherSignedNotification ('30',
euiccNotificationSignature over the tbsOtherNotification 'BF2F' TLV, with the eUICC and EUM
certificates) after enable, disable or delete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smdp.codec import asn1
from smdp.codec.bits import bit_names, bit_string
from smdp.codec.tlv import tlv
from smdp.euicc.state import StoredNotification
from smdp.profiles.saip import encode_iccid

__all__ = [
    "EVENTS",
    "list_notification",
    "notification_metadata",
    "notification_sent",
    "other_signed_notification",
    "profile_installation_result",
    "retrieve_notifications_list",
]

#: NotificationEvent ::= BIT STRING (SGP.22 Annex H), one bit per profile management operation.
EVENTS = ("install", "enable", "disable", "delete")
_EVENT_BITS = ("notificationInstall", "notificationEnable", "notificationDisable", "notificationDelete")

Signer = Callable[[bytes], bytes]


def notification_metadata(seq_number: int, event: str, address: str, iccid: str | None) -> bytes:
    """NotificationMetadata DER ('BF2F') with exactly one operation bit set."""
    value: dict[str, Any] = {
        "seqNumber": seq_number,
        "profileManagementOperation": bit_string([_EVENT_BITS[EVENTS.index(event)]], _EVENT_BITS),
        "notificationAddress": address,
    }
    if iccid is not None:
        value["iccid"] = encode_iccid(iccid)
    return asn1.rsp().encode("NotificationMetadata", value)


def events_of(value: tuple[bytes, int]) -> list[str]:
    """The operations named by a NotificationEvent BIT STRING."""
    return [EVENTS[_EVENT_BITS.index(name)] for name in bit_names(value, _EVENT_BITS)]


def profile_installation_result(
    *,
    transaction_id: bytes,
    metadata: bytes,
    smdp_oid: str,
    final_result: tuple[str, dict[str, Any]],
    sign: Signer,
) -> bytes:
    """ProfileInstallationResult DER ('BF37'), signed over the ProfileInstallationResultData TLV."""
    data = asn1.rsp().encode(
        "ProfileInstallationResultData",
        {
            "transactionId": transaction_id,
            "notificationMetadata": asn1.rsp().decode("NotificationMetadata", metadata),
            "smdpOid": smdp_oid,
            "finalResult": final_result,
        },
    )
    return tlv(0xBF37, data + tlv(0x5F37, sign(data)))


def other_signed_notification(
    metadata: bytes, *, sign: Signer, euicc_certificate: bytes, eum_certificate: bytes
) -> bytes:
    """OtherSignedNotification DER ('30'), signed over the tbsOtherNotification TLV."""
    return tlv(0x30, metadata + tlv(0x5F37, sign(metadata)) + euicc_certificate + eum_certificate)


def _metadata_value(n: StoredNotification) -> dict[str, Any]:
    return asn1.rsp().decode("NotificationMetadata", notification_metadata(n.seq_number, n.event, n.address, n.iccid))


def list_notification(request: dict[str, Any], notifications: list[StoredNotification]) -> bytes:
    """ListNotificationResponse ('BF28'): the metadata of every pending Notification, optionally
    only those of the requested operations."""
    wanted = set(events_of(request["profileManagementOperation"])) if "profileManagementOperation" in request else None
    selected = [n for n in notifications if wanted is None or n.event in wanted]
    return asn1.rsp().encode(
        "ListNotificationResponse", ("notificationMetadataList", [_metadata_value(n) for n in selected])
    )


def retrieve_notifications_list(request: dict[str, Any], notifications: list[StoredNotification]) -> bytes:
    """RetrieveNotificationsListResponse ('BF2B'): the signed Notifications themselves, all or by
    seqNumber or by operation; noResultAvailable when nothing matches."""
    criteria = request.get("searchCriteria")
    if criteria is None:
        selected = list(notifications)
    elif criteria[0] == "seqNumber":
        selected = [n for n in notifications if n.seq_number == criteria[1]]
    else:
        wanted = set(events_of(criteria[1]))
        selected = [n for n in notifications if n.event in wanted]
    if not selected:
        return asn1.rsp().encode("RetrieveNotificationsListResponse", ("notificationsListResultError", 1))
    # The stored DER are complete PendingNotification encodings: splice them in unchanged.
    body = b"".join(n.der for n in selected)
    return tlv(0xBF2B, tlv(0xA0, body))


def notification_sent(request: dict[str, Any], notifications: list[StoredNotification]) -> tuple[bytes, bool]:
    """NotificationSentResponse ('BF30') for RemoveNotificationFromList; True if one was removed."""
    before = len(notifications)
    notifications[:] = [n for n in notifications if n.seq_number != request["seqNumber"]]
    removed = len(notifications) != before
    status = 0 if removed else 1  # ok / nothingToDelete
    return asn1.rsp().encode("NotificationSentResponse", {"deleteNotificationStatus": status}), removed
