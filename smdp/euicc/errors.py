"""Errors and result codes of the virtual eUICC (SGP.22 sections 5.5 and 5.7, Annex H).

Two kinds of failure exist on an eUICC. A command that the eUICC understands but refuses is answered
with a *response* carrying an SGP.22 result code (AuthenticateErrorCode, DownloadErrorCode, the
ErrorResult of a ProfileInstallationResult, enableResult ...): that is data, returned by
``VirtualEuicc.process``. A command that cannot be parsed at all, or arrives out of place, has no
SGP.22 response: a card answers it with an ISO 7816 status word, so :class:`EuiccCommandError`
carries one for the APDU front end.

The result-code tables themselves are shared with the LPA, which reads them back, so they live in
:mod:`smdp.rsp.es10b`.
"""

from __future__ import annotations

__all__ = ["EuiccCommandError"]


class EuiccCommandError(ValueError):
    """An ES10 command the eUICC cannot process; ``sw`` is the ISO 7816 status word to answer with."""

    WRONG_DATA = 0x6A80  # incorrect parameters in the data field
    NOT_FOUND = 0x6A88  # referenced data (the function tag) not found
    CONDITIONS = 0x6985  # conditions of use not satisfied (e.g. no BPP load in progress)

    def __init__(self, message: str, sw: int = WRONG_DATA) -> None:
        super().__init__(message)
        self.sw = sw
