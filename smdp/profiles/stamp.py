"""Giving a profile package another ICCID (``smdp profile import FILE --iccid ICCID``).

Every GSMA TS.48 test profile carries ICCID 89000123456789012341, and an SM-DP+ holds one profile per
ICCID, so without this a lab data directory holds one TS.48 profile at a time. Stamping writes the new
ICCID where the package carries it — ProfileHeader.iccid and the PE-MF's EF.ICCID content, the two
codings :mod:`smdp.profiles.saip` describes — and changes nothing else: the two PEs are re-encoded with
the personalization code (:func:`smdp.profiles.personalize.with_iccid`), every other PE keeps its DER
byte for byte. Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations

from smdp.profiles.personalize import encode_element, with_iccid
from smdp.profiles.saip import SaipError, check_iccid, encode_header_iccid, encode_iccid, validate_profile_package

__all__ = ["stamp_iccid"]


def stamp_iccid(der: bytes, iccid: str) -> bytes:
    """``der`` with ICCID ``iccid`` in its ProfileHeader and EF.ICCID.

    ValueError if ``iccid`` is not a valid ICCID (see :func:`~smdp.profiles.saip.check_iccid`); SaipError
    (also a ValueError) if ``der`` is not a valid package, before or after stamping. The package is checked
    first, so that a broken one is reported as such, not as a stamping problem; and again after, so that
    what is stored is never a package the importer would refuse."""
    check_iccid(iccid)
    package = validate_profile_package(der)
    names = [element.name for element in package.elements]
    values = [element.value for element in package.elements]
    changed = with_iccid(names, values, iccid)
    stamped = b"".join(
        encode_element(index, element.name, changed[index]) if index in changed else element.raw
        for index, element in enumerate(package.elements)
    )
    result = validate_profile_package(stamped)
    if result.iccid != iccid or result.ef_iccid not in (None, iccid):  # with_iccid broken, not the input
        raise SaipError(f"stamping ICCID {iccid} left header {result.iccid} and EF.ICCID {result.ef_iccid}")
    old = package.iccid
    if old != iccid and (encode_header_iccid(old) in stamped or encode_iccid(old) in stamped):
        # Another PE (an applet's parameters, say) carries the old ICCID too: stamping only the two places
        # SAIP defines would leave a profile that contradicts itself.
        raise SaipError(f"the package still carries ICCID {old} outside ProfileHeader and EF.ICCID after stamping")
    return stamped
