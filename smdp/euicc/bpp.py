"""ES10b.LoadBoundProfilePackage on the eUICC (SGP.22 5.7.6), running the ES8+ functions (5.5).

The LPA cuts the Bound Profile Package into STORE DATA commands in a fixed order (section 5.7.6;
lpac's ``es10b_load_bound_profile_package`` does the same), see ``smdp.rsp.es10b.segment_bpp``:

  1. 'BF36' tag and length, followed by the whole InitialiseSecureChannel TLV ('BF23');
  2. the whole 'A0' TLV (the '87' segments of ConfigureISDP);
  3. the 'A1' tag and length alone, then each '88' segment (StoreMetadata) as its own command;
  4. optionally the whole 'A2' TLV (the '87' segments of ReplaceSessionKeys);
  5. the 'A3' tag and length alone, then each '86' segment (LoadProfileElements).

Every command but the last answers with no data, unless it fails: then, as on a real eUICC, the
ProfileInstallationResult with an ErrorResult comes back at once and the load ends. The
:class:`BppLoader` here does the parsing, verification and decryption; it returns a
:class:`BppOutcome` from which the caller builds and signs the ProfileInstallationResult.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from smdp.codec import asn1
from smdp.codec.bits import bit_names
from smdp.codec.tlv import Tlv, TlvError, iter_tlvs, read_tlv, tlv
from smdp.crypto import ecdsa
from smdp.crypto.bsp import BspError, BspReceiver
from smdp.crypto.kdf import KEY_LENGTH, KEY_TYPE_AES, SessionKeys, derive_session_keys, ecka
from smdp.euicc.der import read_header
from smdp.euicc.errors import EuiccCommandError
from smdp.euicc.info import PPR_BITS
from smdp.profiles import saip
from smdp.rsp.es10b import BPP_COMMAND_IDS, ERROR_REASONS

__all__ = ["BPP_TAGS", "BppContext", "BppLoader", "BppOutcome"]

#: The outer tags of the STORE DATA commands that make up a BPP load.
BPP_TAGS = frozenset({0xBF36, 0xA0, 0xA1, 0x88, 0xA2, 0xA3, 0x86})
_REMOTE_OP_INSTALL_BPP = 1


@dataclass(frozen=True)
class BppContext:
    """The session values a BPP is checked against (from AuthenticateServer and PrepareDownload)."""

    transaction_id: bytes
    eid: bytes  # 16 bytes
    dppb_public_key: ec.EllipticCurvePublicKey
    euicc_otpk: bytes
    euicc_otsk: ec.EllipticCurvePrivateKey = field(repr=False)
    installed_iccids: frozenset[str] = frozenset()
    forbidden_pprs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BppOutcome:
    """How the load ended. On success ``elements`` are the Profile Elements' DER, exactly as sent."""

    success: bool
    iccid: str | None = None  # known once StoreMetadata was read
    metadata: bytes | None = None  # StoreMetadataRequest DER
    elements: list[bytes] = field(default_factory=list)
    bpp_command_id: int | None = None
    error_reason: int | None = None
    detail: str = ""

    @property
    def error_name(self) -> str | None:
        names = {v: k for k, v in ERROR_REASONS.items()}
        return None if self.error_reason is None else names.get(self.error_reason, str(self.error_reason))


class _Failure(Exception):
    def __init__(self, command: str, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.command = command
        self.reason = reason
        self.detail = detail


class BppLoader:
    """One BPP load: feed the STORE DATA payloads in order; the last one returns the outcome."""

    def __init__(self, context: BppContext) -> None:
        self._ctx = context
        self._stage = "header"
        self._remaining = 0  # bytes of the BF36 value still expected
        self._open_remaining = 0  # bytes of the open 'A1' or 'A3' value still expected
        self._bsp: BspReceiver | None = None
        self._metadata_parts: list[bytes] = []
        self._profile_parts: list[bytes] = []
        self._metadata: bytes | None = None
        self._iccid: str | None = None
        self.outcome: BppOutcome | None = None

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def command(self) -> str:
        """The ES8+ command being processed now (the bppCommandId an interruption reports)."""
        return {
            "header": "initialiseSecureChannel",
            "configure": "configureISDP",
            "metadata_header": "storeMetadata",
            "metadata": "storeMetadata",
            "after_metadata": "replaceSessionKeys",
            "profile_header": "loadProfileElements",
            "profile": "loadProfileElements",
        }.get(self._stage, "loadProfileElements")

    def interrupted(self) -> BppOutcome:
        """End the load because another command came in between (installFailedDueToInterruption)."""
        return self._fail(_Failure(self.command, "installFailedDueToInterruption", "BPP load interrupted"))

    def feed(self, chunk: bytes) -> BppOutcome | None:
        """Process one STORE DATA payload; None while more is expected, else the final outcome."""
        if self.outcome is not None:
            raise EuiccCommandError("no BPP load in progress", EuiccCommandError.CONDITIONS)
        try:
            step = getattr(self, f"_on_{self._stage}")
            return step(bytes(chunk))
        except _Failure as failure:
            return self._fail(failure)

    def _fail(self, failure: _Failure) -> BppOutcome:
        self.outcome = BppOutcome(
            success=False,
            iccid=self._iccid,
            metadata=self._metadata,
            bpp_command_id=BPP_COMMAND_IDS[failure.command],
            error_reason=ERROR_REASONS[failure.reason],
            detail=failure.detail,
        )
        self._stage = "done"
        return self.outcome

    def _consume(self, chunk: bytes, command: str) -> None:
        self._remaining -= len(chunk)
        if self._remaining < 0:
            raise _Failure(command, "incorrectInputValues", "data beyond the end of the BPP")

    # --- 1. BF36 header + InitialiseSecureChannel ---------------------------------------------

    def _on_header(self, chunk: bytes) -> None:
        command = "initialiseSecureChannel"
        try:
            header = read_header(chunk)
            if header.tag != 0xBF36:
                raise EuiccCommandError("a BPP load starts with 'BF36'")
            isc = read_tlv(chunk, header.size)
        except TlvError as exc:
            raise _Failure(command, "incorrectInputValues", f"BPP header: {exc}") from None
        if isc.tag != 0xBF23 or isc.end != len(chunk):
            raise _Failure(command, "incorrectInputValues", "expected exactly InitialiseSecureChannel after 'BF36'")
        self._remaining = header.length
        self._consume(chunk[header.size :], command)
        self._initialise_secure_channel(isc)
        self._stage = "configure"

    def _initialise_secure_channel(self, isc: Tlv) -> None:
        command = "initialiseSecureChannel"
        try:
            value = asn1.decode_exact(asn1.rsp(), "InitialiseSecureChannelRequest", isc.raw)
            parts = list(iter_tlvs(isc.value))
        except (asn1.Asn1Error, ValueError) as exc:  # ValueError: TlvError
            raise _Failure(command, "incorrectInputValues", f"InitialiseSecureChannel: {exc}") from None
        if value["remoteOpId"] != _REMOTE_OP_INSTALL_BPP:
            raise _Failure(command, "unsupportedRemoteOperationType", f"remoteOpId {value['remoteOpId']}")
        if value["transactionId"] != self._ctx.transaction_id:
            raise _Failure(command, "invalidTransactionId", "transactionId is not this session's")
        crt = value["controlRefTemplate"]
        if crt["keyType"] != bytes([KEY_TYPE_AES]) or crt["keyLen"] != bytes([KEY_LENGTH]):
            raise _Failure(command, "unsupportedCrtValues", "only keyType '88' with keyLen '10' is supported")
        # smdpSign covers remoteOpId, transactionId, controlRefTemplate and smdpOtpk as received,
        # followed by our euiccOtpk as a '5F49' TLV (SGP.22 5.5.1).
        signed = b"".join(p.raw for p in parts if p.tag != 0x5F37) + tlv(0x5F49, self._ctx.euicc_otpk)
        try:
            ecdsa.verify(self._ctx.dppb_public_key, signed, value["smdpSign"])
        except InvalidSignature:
            raise _Failure(command, "invalidSignature", "smdpSign does not verify with PK.DPpb") from None
        try:
            curve = ecdsa.Curve.of(self._ctx.euicc_otsk)
            smdp_otpk = ecdsa.public_key_from_bytes(curve, value["smdpOtpk"])
        except ValueError as exc:
            raise _Failure(command, "incorrectInputValues", f"smdpOtpk: {exc}") from None
        keys = derive_session_keys(
            ecka(self._ctx.euicc_otsk, smdp_otpk),
            key_type=KEY_TYPE_AES,
            key_length=KEY_LENGTH,
            host_id=crt["hostId"],
            eid=self._ctx.eid,
        )
        self._bsp = BspReceiver(keys)

    # --- 2. 'A0': ConfigureISDP ----------------------------------------------------------------

    def _on_configure(self, chunk: bytes) -> None:
        plain = self._open_sequence(chunk, 0xA0, 0x87, "configureISDP")
        try:
            asn1.decode_exact(asn1.rsp(), "ConfigureISDPRequest", plain)
        except asn1.Asn1Error as exc:
            raise _Failure("configureISDP", "incorrectInputValues", f"ConfigureISDP: {exc}") from None
        self._stage = "metadata_header"

    def _open_sequence(self, chunk: bytes, outer: int, inner: int, command: str) -> bytes:
        """Verify and decrypt every segment of a whole 'A0'/'A2' TLV; return the joined plaintext."""
        try:
            item = read_tlv(chunk)
            if item.tag != outer or item.end != len(chunk):
                raise TlvError(f"expected one whole '{outer:02X}' TLV")
            segments = list(iter_tlvs(item.value))
        except TlvError as exc:
            raise _Failure(command, "scp03tStructureError", str(exc)) from None
        if not segments or any(s.tag != inner for s in segments):
            raise _Failure(command, "scp03tStructureError", f"'{outer:02X}' must hold '{inner:02X}' segments")
        self._consume(chunk, command)
        return b"".join(self._decrypt(s.raw, command) for s in segments)

    def _decrypt(self, segment: bytes, command: str) -> bytes:
        assert self._bsp is not None
        try:
            return self._bsp.verify_and_decrypt(segment)
        except BspError as exc:
            raise _Failure(command, "scp03tSecurityError", str(exc)) from None

    # --- 3. 'A1' header, '88' segments: StoreMetadata ------------------------------------------

    def _open_header(self, chunk: bytes, tag: int, command: str) -> None:
        try:
            header = read_header(chunk)
        except TlvError as exc:
            raise _Failure(command, "scp03tStructureError", str(exc)) from None
        if header.tag != tag or header.size != len(chunk):
            raise _Failure(command, "scp03tStructureError", f"expected the '{tag:02X}' header alone")
        self._consume(chunk, command)
        self._open_remaining = header.length

    def _on_metadata_header(self, chunk: bytes) -> None:
        self._open_header(chunk, 0xA1, "storeMetadata")
        self._stage = "metadata"
        if self._open_remaining == 0:
            raise _Failure("storeMetadata", "scp03tStructureError", "no StoreMetadata segment")

    def _on_metadata(self, chunk: bytes) -> None:
        segment = self._segment(chunk, 0x88, "storeMetadata")
        assert self._bsp is not None
        try:
            self._metadata_parts.append(self._bsp.verify_mac_only(segment))
        except BspError as exc:
            raise _Failure("storeMetadata", "scp03tSecurityError", str(exc)) from None
        if self._open_remaining == 0:
            self._store_metadata(b"".join(self._metadata_parts))
            self._stage = "after_metadata"

    def _segment(self, chunk: bytes, tag: int, command: str) -> bytes:
        try:
            item = read_tlv(chunk)
        except TlvError as exc:
            raise _Failure(command, "scp03tStructureError", str(exc)) from None
        if item.tag != tag or item.end != len(chunk):
            raise _Failure(command, "scp03tStructureError", f"expected one '{tag:02X}' segment")
        self._open_remaining -= len(chunk)
        if self._open_remaining < 0:
            raise _Failure(command, "scp03tStructureError", "segment runs past its sequence")
        self._consume(chunk, command)
        return chunk

    def _store_metadata(self, data: bytes) -> None:
        command = "storeMetadata"
        try:
            metadata = asn1.decode_exact(asn1.rsp(), "StoreMetadataRequest", data)
            iccid = saip.decode_iccid(metadata["iccid"])
        except (asn1.Asn1Error, ValueError) as exc:
            raise _Failure(command, "incorrectInputValues", f"StoreMetadata: {exc}") from None
        self._metadata, self._iccid = data, iccid
        if iccid in self._ctx.installed_iccids:
            raise _Failure(command, "installFailedDueToIccidAlreadyExistsOnEuicc", f"ICCID {iccid} is installed")
        refused = set(bit_names(metadata.get("profilePolicyRules", (b"", 0)), PPR_BITS)) & self._ctx.forbidden_pprs
        if refused:
            raise _Failure(command, "pprNotAllowed", f"forbidden Profile Policy Rules {sorted(refused)}")

    # --- 4. optional 'A2': ReplaceSessionKeys; 5. 'A3' header, '86' segments ---------------------

    def _on_after_metadata(self, chunk: bytes) -> BppOutcome | None:
        if chunk[:1] == b"\xa2":
            plain = self._open_sequence(chunk, 0xA2, 0x87, "replaceSessionKeys")
            try:
                rsk = asn1.decode_exact(asn1.rsp(), "ReplaceSessionKeysRequest", plain)
                keys = SessionKeys(
                    s_enc=rsk["ppkEnc"], s_mac=rsk["ppkCmac"], initial_mcv=rsk["initialMacChainingValue"]
                )
            except (asn1.Asn1Error, ValueError) as exc:
                raise _Failure("replaceSessionKeys", "incorrectInputValues", f"ReplaceSessionKeys: {exc}") from None
            # The '86' segments are protected with the Profile Protection Keys from here on.
            self._bsp = BspReceiver(keys)
            self._stage = "profile_header"
            return None
        return self._on_profile_header(chunk)

    def _on_profile_header(self, chunk: bytes) -> BppOutcome | None:
        self._open_header(chunk, 0xA3, "loadProfileElements")
        self._stage = "profile"
        return self._maybe_finish()

    def _on_profile(self, chunk: bytes) -> BppOutcome | None:
        segment = self._segment(chunk, 0x86, "loadProfileElements")
        self._profile_parts.append(self._decrypt(segment, "loadProfileElements"))
        return self._maybe_finish()

    def _maybe_finish(self) -> BppOutcome | None:
        if self._open_remaining:
            return None
        command = "loadProfileElements"
        if self._remaining:
            raise _Failure(command, "incorrectInputValues", f"{self._remaining} BPP byte(s) after 'A3'")
        package = b"".join(self._profile_parts)
        try:
            elements = saip.split_profile_elements(package)
            decoded = saip.validate_profile_package(package)
        except ValueError as exc:  # SaipError and TlvError are ValueErrors
            raise _Failure(command, "installFailedDueToPEProcessingError", str(exc)) from None
        if decoded.iccid != self._iccid:
            raise _Failure(
                command,
                "installFailedDueToDataMismatch",
                f"ProfileHeader ICCID {decoded.iccid} differs from StoreMetadata ICCID {self._iccid}",
            )
        self.outcome = BppOutcome(success=True, iccid=self._iccid, metadata=self._metadata, elements=elements)
        self._stage = "done"
        return self.outcome
