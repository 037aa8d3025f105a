"""The virtual eUICC: an ISD-R answering ES10a/ES10b/ES10c (SGP.22 section 5.7) in software.

:meth:`VirtualEuicc.process` is the single entry point: it takes the DER of one ES10 command as the
LPA sends it in STORE DATA (already reassembled from its blocks) and returns the DER response, or
``b""`` where the card answers with no data (the intermediate commands of LoadBoundProfilePackage).
The command is routed by its outer tag. A transport (the APDU front end, the lpac bridge) only
has to frame bytes in and out of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smdp.codec import asn1
from smdp.codec.bits import bit_string
from smdp.codec.tlv import TlvError
from smdp.crypto.ecdsa import Curve
from smdp.euicc import es10c
from smdp.euicc import notifications as notif
from smdp.euicc.bpp import BPP_TAGS, BppContext, BppLoader, BppOutcome
from smdp.euicc.credentials import IdentityFiles, apply_identity
from smdp.euicc.der import decode_request, read_header
from smdp.euicc.errors import EuiccCommandError
from smdp.euicc.info import PPR_BITS, EuiccInfo, euicc_info1, euicc_info2
from smdp.euicc.session import SessionManager
from smdp.euicc.state import EuiccState, InstalledProfile, StateError, StoredNotification, load_state, save_state
from smdp.pki.store import EuiccCredentials, load_euicc_credentials
from smdp.rsp.es10b import segment_bpp

__all__ = ["InstalledProfileView", "VirtualEuicc"]

# ISD-P AIDs as eUICCs allocate them: the SGP.02 ISD-P RID/PIX with a per-Profile byte.
_ISDP_AID_PREFIX = bytes.fromhex("A0000005591010FFFFFFFF890000")
_FIRST_ISDP = 0x10


@dataclass(frozen=True)
class InstalledProfileView:
    """An installed Profile as tests and tools see it."""

    iccid: str
    isdp_aid: str  # hex
    state: str  # "enabled" or "disabled"
    nickname: str | None
    service_provider_name: str
    profile_name: str
    profile_class: int
    elements: list[bytes]  # the Profile Elements' DER, exactly as loaded

    @property
    def package(self) -> bytes:
        return b"".join(self.elements)


class VirtualEuicc:
    """A software eUICC with persistent state (see :mod:`smdp.euicc.state`)."""

    def __init__(
        self,
        state_path: Path,
        state: EuiccState,
        credentials: EuiccCredentials,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._path = Path(state_path)
        self._state = state
        self._credentials = credentials
        self.sessions = SessionManager(credentials, clock or (lambda: datetime.now(UTC)))
        self._loader: BppLoader | None = None
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            0xBF20: self._get_euicc_info1,
            0xBF22: self._get_euicc_info2,
            0xBF2E: self.sessions.get_euicc_challenge,
            0xBF38: lambda r: self.sessions.authenticate_server(r, self.euicc_info2()),
            0xBF21: self.sessions.prepare_download,
            0xBF41: self.sessions.cancel_session,
            0xBF28: self._list_notification,
            0xBF2B: self._retrieve_notifications_list,
            0xBF30: self._notification_sent,
            0xBF2D: lambda r: es10c.get_profiles_info(self._decode("ProfileInfoListRequest", r), self._state),
            0xBF31: lambda r: self._manage(es10c.enable_profile, "EnableProfileRequest", r),
            0xBF32: lambda r: self._manage(es10c.disable_profile, "DisableProfileRequest", r),
            0xBF33: lambda r: self._manage(es10c.delete_profile, "DeleteProfileRequest", r),
            0xBF29: self._set_nickname,
            0xBF3E: lambda r: es10c.get_eid(self._decode("GetEuiccDataRequest", r), self._state),
            0xBF3C: self._configured_addresses,
            0xBF3F: self._set_default_dp_address,
            0xBF34: self._memory_reset,
            0xBF43: self._get_rat,
        }

    @classmethod
    def open(
        cls,
        state_path: Path,
        *,
        manifest: Path | None = None,
        curve: str | Curve | None = None,
        forbidden_pprs: list[str] | None = None,
        clock: Callable[[], datetime] | None = None,
        identity: IdentityFiles | None = None,
    ) -> VirtualEuicc:
        """Open the eUICC whose state is at ``state_path``, creating it on first use.

        The first call needs the PKI ``manifest`` and ``curve`` of the eUICC credentials; later
        calls take them from the state (a different manifest is accepted if it holds the same EID).
        ``forbidden_pprs`` (PprIds names) sets EUICCInfo2.forbiddenProfilePolicyRules.
        ``identity`` replaces some of the manifest's certificates and key for this opening only (see
        :mod:`smdp.euicc.credentials`; it is not remembered in the state): an eUICC certificate with
        another EID then needs a state of its own.
        """
        state_path = Path(state_path)
        curve_name = curve.value if isinstance(curve, Curve) else curve
        if state_path.exists():
            state = load_state(state_path)
            manifest_path = Path(manifest).resolve() if manifest is not None else Path(state.manifest)
            credentials = load_euicc_credentials(manifest_path, curve_name or state.curve)
            if identity:
                credentials = apply_identity(credentials, identity)
            if credentials.eid != state.eid:
                raise StateError(f"{state_path}: the state belongs to EID {state.eid}, not {credentials.eid}")
            state.manifest, state.curve = str(manifest_path), credentials.curve.value
        else:
            if manifest is None or curve_name is None:
                raise StateError(f"{state_path} does not exist: a manifest and a curve are needed to create it")
            manifest_path = Path(manifest).resolve()
            credentials = load_euicc_credentials(manifest_path, curve_name)
            if identity:
                credentials = apply_identity(credentials, identity)
            state = EuiccState(eid=credentials.eid, curve=credentials.curve.value, manifest=str(manifest_path))
        if forbidden_pprs is not None:
            state.forbidden_pprs = list(forbidden_pprs)
        save_state(state_path, state)
        return cls(state_path, state, credentials, clock=clock)

    # --- accessors ---------------------------------------------------------------------------------

    @property
    def eid(self) -> str:
        return self._state.eid

    @property
    def state_path(self) -> Path:
        return self._path

    def installed_profiles(self) -> list[InstalledProfileView]:
        views = []
        for p in self._state.profiles:
            metadata = es10c.metadata_of(p)
            views.append(
                InstalledProfileView(
                    iccid=p.iccid,
                    isdp_aid=p.isdp_aid.hex().upper(),
                    state=p.state,
                    nickname=p.nickname,
                    service_provider_name=metadata["serviceProviderName"],
                    profile_name=metadata["profileName"],
                    profile_class=metadata.get("profileClass", 2),
                    elements=list(p.elements),
                )
            )
        return views

    def pending_notifications(self) -> list[StoredNotification]:
        return list(self._state.notifications)

    def info(self) -> EuiccInfo:
        return EuiccInfo(
            ci_pkids_verification=self.sessions.verification_pkids,
            ci_pkids_signing=self.sessions.signing_pkids,
            forbidden_pprs=list(self._state.forbidden_pprs),
        )

    def euicc_info1(self) -> bytes:
        return euicc_info1(self.info())

    def euicc_info2(self) -> bytes:
        used = sum(len(p.package) + len(p.metadata) for p in self._state.profiles)
        return euicc_info2(self.info(), installed_applications=len(self._state.profiles), used_nvm=used)

    # --- the ES10 entry point ------------------------------------------------------------------------

    def process(self, request: bytes) -> bytes:
        """Answer one ES10 command (DER in, DER out; ``b""`` for a response without data).

        Raises :class:`EuiccCommandError` for a command that cannot be parsed or is out of place.
        """
        request = bytes(request)
        try:
            tag = read_header(request).tag
        except TlvError as exc:
            raise EuiccCommandError(f"not a BER-TLV command: {exc}") from None
        if tag in BPP_TAGS:
            return self.load_bpp_chunk(request) or b""
        if self._loader is not None:
            # Any other command in the middle of a BPP load ends it (SGP.22 5.7.6).
            self._finish_bpp(self._loader.interrupted())
        handler = self._handlers.get(tag)
        if handler is None:
            raise EuiccCommandError(f"no ES10 function with tag {tag:X}", EuiccCommandError.NOT_FOUND)
        return handler(request)

    # --- ES10b.LoadBoundProfilePackage ------------------------------------------------------------------

    def load_bpp_chunk(self, chunk: bytes) -> bytes | None:
        """Feed one STORE DATA payload of a BPP load; None while more is expected, else the
        ProfileInstallationResult DER (success, or the error that ended the load)."""
        chunk = bytes(chunk)
        if chunk[:2] == b"\xbf\x36":
            session = self.sessions.session
            if session is None or session.step != "prepared":
                raise EuiccCommandError("no prepared download session for a BPP", EuiccCommandError.CONDITIONS)
            assert session.transaction_id and session.dppb_public_key and session.otsk and session.otpk
            self._loader = BppLoader(
                BppContext(
                    transaction_id=session.transaction_id,
                    eid=bytes.fromhex(self._state.eid),
                    dppb_public_key=session.dppb_public_key,
                    euicc_otpk=session.otpk,
                    euicc_otsk=session.otsk,
                    installed_iccids=frozenset(p.iccid for p in self._state.profiles),
                    forbidden_pprs=frozenset(self._state.forbidden_pprs),
                )
            )
        if self._loader is None:
            raise EuiccCommandError("no BPP load in progress", EuiccCommandError.CONDITIONS)
        outcome = self._loader.feed(chunk)
        return None if outcome is None else self._finish_bpp(outcome)

    def load_bound_profile_package(self, bpp: bytes) -> bytes:
        """Cut a whole BPP the way an LPA does and feed it; returns the ProfileInstallationResult."""
        for chunk in segment_bpp(bpp):
            result = self.load_bpp_chunk(chunk)
            if result is not None:
                return result
        raise EuiccCommandError("the BPP ended before its last segment", EuiccCommandError.WRONG_DATA)

    def _finish_bpp(self, outcome: BppOutcome) -> bytes:
        session = self.sessions.session
        self._loader = None
        assert session is not None and session.transaction_id and session.server_address and session.smdp_oid
        final_result: tuple[str, dict[str, Any]]
        if outcome.success:
            assert outcome.iccid is not None and outcome.metadata is not None
            aid = _ISDP_AID_PREFIX + bytes([_FIRST_ISDP + self._state.next_isdp_index, 0x00])
            self._state.next_isdp_index += 1
            self._state.profiles.append(
                InstalledProfile(
                    iccid=outcome.iccid,
                    isdp_aid=aid,
                    enabled=False,
                    metadata=outcome.metadata,
                    elements=list(outcome.elements),
                )
            )
            # SAIP EUICCResponse: every Profile Element processed with status ok.
            sima = asn1.saip().encode("EUICCResponse", {"peStatus": [{"status": 0}]})
            final_result = ("successResult", {"aid": aid, "simaResponse": sima})
        else:
            assert outcome.bpp_command_id is not None and outcome.error_reason is not None
            final_result = (
                "errorResult",
                {"bppCommandId": outcome.bpp_command_id, "errorReason": outcome.error_reason},
            )
        seq = self._next_seq()
        # The result goes to the SM-DP+ that ran the download, at the address it was reached by.
        metadata = notif.notification_metadata(seq, "install", session.server_address, outcome.iccid)
        pir = notif.profile_installation_result(
            transaction_id=session.transaction_id,
            metadata=metadata,
            smdp_oid=session.smdp_oid,
            final_result=final_result,
            sign=self.sessions.sign,
        )
        self._state.notifications.append(
            StoredNotification(seq, "install", session.server_address, outcome.iccid, pir)
        )
        self._save()
        if outcome.success:
            self.sessions.installation_succeeded()
        else:
            self.sessions.end()  # the one-time key stays retained for a download retry
        return pir

    # --- helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _decode(type_name: str, request: bytes) -> Any:
        return decode_request(type_name, request)

    def _save(self) -> None:
        save_state(self._path, self._state)

    def _next_seq(self) -> int:
        seq = self._state.next_seq_number
        self._state.next_seq_number += 1
        return seq

    def _get_euicc_info1(self, request: bytes) -> bytes:
        self._decode("GetEuiccInfo1Request", request)
        return self.euicc_info1()

    def _get_euicc_info2(self, request: bytes) -> bytes:
        self._decode("GetEuiccInfo2Request", request)
        return self.euicc_info2()

    def _list_notification(self, request: bytes) -> bytes:
        return notif.list_notification(self._decode("ListNotificationRequest", request), self._state.notifications)

    def _retrieve_notifications_list(self, request: bytes) -> bytes:
        decoded = self._decode("RetrieveNotificationsListRequest", request)
        return notif.retrieve_notifications_list(decoded, self._state.notifications)

    def _notification_sent(self, request: bytes) -> bytes:
        response, removed = notif.notification_sent(
            self._decode("NotificationSentRequest", request), self._state.notifications
        )
        if removed:
            self._save()
        return response

    def _manage(self, function: Callable[..., tuple[bytes, es10c.Events]], type_name: str, request: bytes) -> bytes:
        """Enable / disable / delete, then one signed Notification per configured address."""
        response, events = function(self._decode(type_name, request), self._state)
        for profile, event in events:
            for entry in es10c.metadata_of(profile).get("notificationConfigurationInfo", []):
                if event in notif.events_of(entry["profileManagementOperation"]):
                    self._add_other_notification(profile.iccid, event, entry["notificationAddress"])
        if events:
            self._save()
        return response

    def _add_other_notification(self, iccid: str, event: str, address: str) -> None:
        seq = self._next_seq()
        metadata = notif.notification_metadata(seq, event, address, iccid)
        der = notif.other_signed_notification(
            metadata,
            sign=self.sessions.sign,
            euicc_certificate=self.sessions.euicc_certificate,
            eum_certificate=self.sessions.eum_certificate,
        )
        self._state.notifications.append(StoredNotification(seq, event, address, iccid, der))

    def _set_nickname(self, request: bytes) -> bytes:
        response = es10c.set_nickname(self._decode("SetNicknameRequest", request), self._state)
        self._save()
        return response

    def _configured_addresses(self, request: bytes) -> bytes:
        self._decode("EuiccConfiguredAddressesRequest", request)
        value: dict[str, Any] = {"rootDsAddress": self._state.root_ds_address}
        if self._state.default_dp_address:
            value["defaultDpAddress"] = self._state.default_dp_address
        return asn1.rsp().encode("EuiccConfiguredAddressesResponse", value)

    def _set_default_dp_address(self, request: bytes) -> bytes:
        address = self._decode("SetDefaultDpAddressRequest", request)["defaultDpAddress"]
        self._state.default_dp_address = address or None  # an empty address clears it
        self._save()
        return asn1.rsp().encode("SetDefaultDpAddressResponse", {"setDefaultDpAddressResult": 0})

    def _get_rat(self, request: bytes) -> bytes:
        """ES10b.GetRAT (SGP.22 5.7.x, 2.9.2.2): one rule authorising, for any operator (MCC/MNC
        wildcard 'EEEEEE'), the PPRs this eUICC does not forbid, without end user consent."""
        self._decode("GetRatRequest", request)
        allowed = [p for p in ("ppr1", "ppr2") if p not in self._state.forbidden_pprs]
        rules = []
        if allowed:
            rules.append(
                {
                    "pprIds": bit_string(allowed, PPR_BITS),
                    "allowedOperators": [{"mccMnc": bytes.fromhex("EEEEEE")}],
                    "pprFlags": (b"", 0),
                }
            )
        return asn1.rsp().encode("GetRatResponse", {"rat": rules})

    def _memory_reset(self, request: bytes) -> bytes:
        response = es10c.memory_reset(self._decode("EuiccMemoryResetRequest", request), self._state)
        self._save()
        return response
