"""Errors and result codes of the virtual eUICC (SGP.22 sections 5.5 and 5.7, Annex H).

Two kinds of failure exist on an eUICC. A command that the eUICC understands but refuses is answered
with a *response* carrying an SGP.22 result code (AuthenticateErrorCode, DownloadErrorCode, the
ErrorResult of a ProfileInstallationResult, enableResult ...): that is data, returned by
``VirtualEuicc.process``. A command that cannot be parsed at all, or arrives out of place, has no
SGP.22 response: a card answers it with an ISO 7816 status word, so :class:`EuiccCommandError`
carries one for the APDU front end.
"""

from __future__ import annotations

__all__ = [
    "AUTHENTICATE_ERRORS",
    "BPP_COMMAND_IDS",
    "DOWNLOAD_ERRORS",
    "ERROR_REASONS",
    "EuiccCommandError",
]


class EuiccCommandError(ValueError):
    """An ES10 command the eUICC cannot process; ``sw`` is the ISO 7816 status word to answer with."""

    WRONG_DATA = 0x6A80  # incorrect parameters in the data field
    NOT_FOUND = 0x6A88  # referenced data (the function tag) not found
    CONDITIONS = 0x6985  # conditions of use not satisfied (e.g. no BPP load in progress)

    def __init__(self, message: str, sw: int = WRONG_DATA) -> None:
        super().__init__(message)
        self.sw = sw


# AuthenticateErrorCode (ES10b.AuthenticateServer, section 5.7.13)
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

# DownloadErrorCode (ES10b.PrepareDownload, section 5.7.5)
DOWNLOAD_ERRORS = {
    "invalidCertificate": 1,
    "invalidSignature": 2,
    "unsupportedCurve": 3,
    "noSessionContext": 4,
    "invalidTransactionId": 5,
    "undefinedError": 127,
}

# BppCommandId and ErrorReason of ProfileInstallationResult ErrorResult (section 5.7.6)
BPP_COMMAND_IDS = {
    "initialiseSecureChannel": 0,
    "configureISDP": 1,
    "storeMetadata": 2,
    "storeMetadata2": 3,
    "replaceSessionKeys": 4,
    "loadProfileElements": 5,
}

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
