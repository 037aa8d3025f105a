"""ES10b facts both ends of the LPA-eUICC interface share (SGP.22 sections 5.7.5 to 5.7.14): the
result-code tables and how a Bound Profile Package is cut into STORE DATA commands.

The virtual eUICC (:mod:`smdp.euicc`, the card) writes these codes and takes the BPP in these
pieces; the test LPA (:mod:`smdp.lpa`, the device) cuts the BPP and reads the codes back. The two
sides must not import each other, as a real card and a real device share nothing but the
specification, so what both need lives here. This module imports only the TLV codec.
"""

from __future__ import annotations

from smdp.codec.tlv import iter_tlvs, read_tlv

__all__ = [
    "AUTHENTICATE_ERRORS",
    "BPP_COMMAND_IDS",
    "CANCEL_REASONS",
    "DOWNLOAD_ERRORS",
    "ERROR_REASONS",
    "segment_bpp",
]

#: AuthenticateErrorCode (ES10b.AuthenticateServer, section 5.7.13)
AUTHENTICATE_ERRORS = {
    "invalidCertificate": 1,
    "invalidSignature": 2,
    "unsupportedCurve": 3,
    "noSessionContext": 4,
    "invalidOid": 5,
    "euiccChallengeMismatch": 6,
    "ciPKUnknown": 7,
    "undefinedError": 127,
}

#: DownloadErrorCode (ES10b.PrepareDownload, section 5.7.5)
DOWNLOAD_ERRORS = {
    "invalidCertificate": 1,
    "invalidSignature": 2,
    "unsupportedCurve": 3,
    "noSessionContext": 4,
    "invalidTransactionId": 5,
    "undefinedError": 127,
}

#: BppCommandId of a ProfileInstallationResult ErrorResult (ES10b.LoadBoundProfilePackage, section 5.7.6)
BPP_COMMAND_IDS = {
    "initialiseSecureChannel": 0,
    "configureISDP": 1,
    "storeMetadata": 2,
    "storeMetadata2": 3,
    "replaceSessionKeys": 4,
    "loadProfileElements": 5,
}

#: ErrorReason of a ProfileInstallationResult ErrorResult (section 5.7.6)
ERROR_REASONS = {
    "incorrectInputValues": 1,
    "invalidSignature": 2,
    "invalidTransactionId": 3,
    "unsupportedCrtValues": 4,
    "unsupportedRemoteOperationType": 5,
    "unsupportedProfileClass": 6,
    "scp03tStructureError": 7,
    "scp03tSecurityError": 8,
    "installFailedDueToIccidAlreadyExistsOnEuicc": 9,
    "installFailedDueToInsufficientMemoryForProfile": 10,
    "installFailedDueToInterruption": 11,
    "installFailedDueToPEProcessingError": 12,
    "installFailedDueToDataMismatch": 13,
    "testProfileInstallFailedDueToInvalidNaaKey": 14,
    "pprNotAllowed": 15,
    "installFailedDueToUnknownError": 127,
}

#: CancelSessionReason (ES10b.CancelSession, section 5.7.14)
CANCEL_REASONS = {
    "endUserRejection": 0,
    "postponed": 1,
    "timeout": 2,
    "pprNotAllowed": 3,
    "metadataMismatch": 4,
    "loadBppExecutionError": 5,
    "undefinedReason": 127,
}


def segment_bpp(bpp: bytes) -> list[bytes]:
    """Cut a BoundProfilePackage into the STORE DATA commands of ES10b.LoadBoundProfilePackage
    (SGP.22 5.7.6): 'BF36' header + 'BF23'; the whole 'A0'; the 'A1' header, then each '88';
    the whole 'A2' if present; the 'A3' header, then each '86'. ValueError if it is not a BPP."""
    outer = read_tlv(bpp)
    if outer.tag != 0xBF36 or outer.end != len(bpp):
        raise ValueError("not one BoundProfilePackage ('BF36') TLV")
    header = bpp[: len(bpp) - len(outer.value)]
    parts = list(iter_tlvs(outer.value))
    tags = [p.tag for p in parts]
    if tags not in ([0xBF23, 0xA0, 0xA1, 0xA3], [0xBF23, 0xA0, 0xA1, 0xA2, 0xA3]):
        raise ValueError(f"unexpected BoundProfilePackage structure {[f'{t:X}' for t in tags]}")
    chunks = [header + parts[0].raw, parts[1].raw]
    for part in parts[2:]:
        if part.tag == 0xA2:
            chunks.append(part.raw)
        else:  # 'A1' and 'A3': the header alone, then each segment on its own
            chunks.append(part.raw[: len(part.raw) - len(part.value)])
            chunks.extend(segment.raw for segment in iter_tlvs(part.value))
    return chunks
