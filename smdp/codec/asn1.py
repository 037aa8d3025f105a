"""ASN.1 DER codecs for GSMA SGP.22 RSPDefinitions (Annex H) and the TCA SAIP PEDefinitions.

The modules live in the repository's top-level ``asn1/`` directory and are compiled by
asn1tools once per process, on first use (``rsp()`` and ``saip()`` are cached).
Compiling takes about 0.3 s for each module on this machine class, so no on-disk
cache is used: asn1tools' ``cache_dir`` needs the extra ``diskcache`` package and
stores pickles, and loading pickles from a directory is a code-execution risk for a
gain of about half a second per process start.

Importing this module, and compiling, correct four asn1tools 0.169 defects that matter
here (each is fixed in place and documented at the fix). The fixes reach into asn1tools'
internals (codec classes, the compiled type tree), so pyproject.toml bounds asn1tools to the
releases tests/test_asn1_patches.py passes on: it checks each fix against DER written out by
hand, and shows what asn1tools alone does, so a release that changes either is noticed.

* OBJECT IDENTIFIER decoding: OIDs whose first arc is 2 and second arc 40 or more
  (``2.999.10``, the SM-DP+ OID of the GSMA SGP.26 test certificates) decoded wrongly.
* A wrong tag inside a SEQUENCE OF made the DER decoder loop forever (a one-byte
  denial of service on anything received); it is now a DecodeError, and so are
  character strings and times whose bytes are invalid (were UnicodeDecodeError).
* DEFAULT values kept as written instead of as values of the component's type: named
  numbers (SGP.22 ``profileClass DEFAULT operational``) and SAIP's ``sqnInit``, whose
  DEFAULT is one OCTET STRING for a SEQUENCE OF. Decoded values had the wrong type and
  would not re-encode, or re-encoded non-DER; the compiled defaults are corrected.
* Tags on references to tagged CHOICE types were applied explicitly, doubling SGP.22's
  'BF38', 'BF21', 'BF39'... in the ES9+ ASN.1 binding types; they are made implicit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asn1tools
from asn1tools.codecs import DecodeError as _CodecDecodeError
from asn1tools.codecs import ber as _ber
from asn1tools.codecs import der as _der

__all__ = ["ASN1_DIR", "Asn1Error", "compile_parsed", "decode_exact", "rsp", "saip"]

#: The repository's ASN.1 modules (the project is installed in editable mode).
ASN1_DIR: Path = Path(__file__).parent.parent / "asn1"  # smdp/asn1 -> ../asn1, copied into wheels

RSP_FILES = ("rsp.asn", "pkix.asn")
SAIP_FILES = ("saip.asn",)

# asn1tools' error base classes, re-exported so callers need not import asn1tools.
Asn1Error = asn1tools.Error


# --- asn1tools fix 1: OBJECT IDENTIFIER decoding (X.690 8.19.4) ---------------------
#
# The first subidentifier encodes the first two arcs as 40 * X + Y, where Y may exceed
# 39 when X is 2. asn1tools splits it as (v // 40, v % 40), so 2.999.10 (first
# subidentifier 1079) came back as "26.39.10". Encoding was already correct. The BER and
# DER codecs look ber.decode_object_identifier up at call time, so replacing the module
# attribute fixes both (the PER/OER codecs hold their own reference; smdp uses DER only).


def _decode_object_identifier(data: bytes | bytearray, offset: int, end_offset: int) -> str:
    if end_offset <= offset:
        raise _CodecDecodeError("OBJECT IDENTIFIER with empty contents", offset=offset)
    arcs: list[int] = []
    value = 0
    for position in range(offset, end_offset):
        byte = data[position]
        value = (value << 7) | (byte & 0x7F)
        if byte & 0x80:
            continue
        if not arcs:
            first = min(value // 40, 2)
            arcs.extend((first, value - 40 * first))
        else:
            arcs.append(value)
        value = 0
    if data[end_offset - 1] & 0x80:
        raise _CodecDecodeError("OBJECT IDENTIFIER ends inside a subidentifier", offset=offset)
    return ".".join(str(arc) for arc in arcs)


_ber.decode_object_identifier = _decode_object_identifier


# --- asn1tools fix 2: SEQUENCE OF / SET OF decoding that never ends ----------------
#
# When an element inside a SEQUENCE OF carried an unexpected tag, asn1tools' DER decoder
# got "tag mismatch" back without progress and looped forever, appending to a list: one
# wrong byte in a received message hung the process and exhausted memory. It also let an
# element run past the end of the SEQUENCE OF. Both are now decoding errors.


def _decode_array_content(
    self: Any, data: bytearray, offset: int, length: int
) -> tuple[list[Any], int]:
    end = offset + length
    decoded = []
    while offset < end:
        element, next_offset = self.element_type.decode(data, offset)
        if element is _ber.TAG_MISMATCH:
            raise _CodecDecodeError(
                f"{self.name}: unexpected tag {data[offset:offset + 2].hex().upper()} "
                f"for an element of {self.type_name}",
                offset=offset,
            )
        if next_offset > end:
            raise _CodecDecodeError(
                f"{self.name}: element runs past the end of its {self.type_name}", offset=offset
            )
        decoded.append(element)
        offset = next_offset
    return decoded, offset


_der.ArrayType.decode_content = _decode_array_content

# Likewise character strings and times whose bytes are not valid text (or not a valid
# time) escaped as UnicodeDecodeError or ValueError instead of a DecodeError.


def _text_errors_as_decode_errors(decode_content: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(decode_content)
    def checked(self: Any, data: bytearray, offset: int, length: int) -> Any:
        try:
            return decode_content(self, data, offset, length)
        except ValueError as exc:  # UnicodeDecodeError is a ValueError
            raise _CodecDecodeError(
                f"{self.name}: invalid {self.type_name}: {exc}", offset=offset
            ) from None

    return checked


for _text_type in (_der.StringType, _der.UTCTime, _der.GeneralizedTime):
    _text_type.decode_content = _text_errors_as_decode_errors(_text_type.decode_content)


# --- asn1tools fix 3: DEFAULT values it keeps in the wrong Python type --------------
#
# asn1tools stores a DEFAULT as written instead of as a value of the component's type,
# and then both decodes to it and compares against it when encoding (DER omits a
# component equal to its DEFAULT, X.690 11.5). Two forms occur in our modules:
#
# * a named number, "profileClass [21] ProfileClass DEFAULT operational" (SGP.22) or
#   "version [0] Version DEFAULT v1" (RFC 5280): kept as the string "operational", so an
#   absent component decoded as "operational" but a present one as 2, and an explicit 2
#   was encoded instead of omitted. Replaced by the number.
# * PEDefinitions' "sqnInit SEQUENCE (SIZE (32)) OF OCTET STRING (SIZE (6)) DEFAULT
#   '000000000000'H", meaning 32 zero SQNs: kept as the string "0x000000000000", so every
#   decoded PE-AKAParameter without sqnInit failed type checking on re-encode. Replaced
#   by the list it stands for.

_SQN_INIT_DEFAULT = [bytes(6)] * 32


def _named_numbers(parsed: dict[str, Any]) -> dict[tuple[str, str], dict[str, int]]:
    found = {}
    for module_name, module in parsed.items():
        for type_name, descriptor in module.get("types", {}).items():
            if descriptor.get("named-numbers"):
                found[(module_name, type_name)] = dict(descriptor["named-numbers"])
    return found


def _fix_default(member: Any, named: dict[tuple[str, str], dict[str, int]]) -> None:
    if member.name == "sqnInit" and isinstance(member, _der.SequenceOf):
        member.default = list(_SQN_INIT_DEFAULT)
    elif isinstance(member, _der.Integer) and isinstance(member.default, str):
        numbers = named.get((member.module_name, member.type_name))
        if numbers is None or member.default not in numbers:
            raise RuntimeError(
                f"cannot resolve DEFAULT {member.default} of {member.module_name}.{member.name}"
            )
        member.default = numbers[member.default]


# --- asn1tools fix 4: implicit tags on tagged CHOICE types ------------------------
#
# In an AUTOMATIC or IMPLICIT TAGS module a tag written on (or automatically given to)
# a reference to an already tagged CHOICE type is implicit: it replaces that type's tag
# (X.680 31.2.7 makes it explicit only for *untagged* CHOICE types). SGP.22 relies on it:
# "authenticateServerResponse [56] AuthenticateServerResponse", where
# "AuthenticateServerResponse ::= [56] CHOICE", is one 'BF38' TLV. asn1tools tags every
# CHOICE explicitly and produced 'BF38 BF38'. The compiled form of such a component is an
# explicit tag around the referenced type's explicit tag around the CHOICE; dropping the
# inner tag gives the implicit encoding. Only RSPDefinitions has such components.


def _collapse_implicit_choice_tag(node: Any) -> None:
    if (
        isinstance(node, _ber.ExplicitTag)
        and isinstance(node.inner, _ber.ExplicitTag)
        and isinstance(node.inner.inner, _ber.Choice)
    ):
        node.inner = node.inner.inner


def _children(node: Any) -> list[Any]:
    children = list(getattr(node, "root_members", None) or ())
    children += getattr(node, "members", None) or ()
    for addition in getattr(node, "additions", None) or ():
        children += addition if isinstance(addition, list) else [addition]
    for attribute in ("inner", "element_type"):
        child = getattr(node, attribute, None)
        if child is not None:
            children.append(child)
    return children


def _walk(node: Any, visit: Callable[[Any], None], seen: set[int]) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    visit(node)
    for child in _children(node):
        _walk(child, visit, seen)


def compile_parsed(parsed: dict[str, Any]) -> asn1tools.compiler.Specification:
    """DER codec of parsed ASN.1 modules (``asn1tools.parse_files`` / ``parse_string`` output) with
    fixes 3 and 4 applied; fixes 1 and 2 apply to every codec once this module is imported."""
    named = _named_numbers(parsed)
    tag_defaults = {module: parsed[module].get("tags") for module in parsed}
    spec = asn1tools.compile_dict(parsed, "der")

    def visit(node: Any) -> None:
        if getattr(node, "default", None) is not None:
            _fix_default(node, named)

    seen: set[int] = set()
    for types in spec.modules.values():
        for compiled in types.values():
            _walk(compiled.type, visit, seen)
    seen = set()
    for module, types in spec.modules.items():
        if tag_defaults[module] != "EXPLICIT":
            for compiled in types.values():
                _walk(compiled.type, _collapse_implicit_choice_tag, seen)
    return spec


def _compile(names: tuple[str, ...]) -> asn1tools.compiler.Specification:
    return compile_parsed(asn1tools.parse_files([str(ASN1_DIR / name) for name in names]))


@functools.cache
def rsp() -> asn1tools.compiler.Specification:
    """SGP.22 RSPDefinitions (with the PKIX types it imports), DER codec."""
    return _compile(RSP_FILES)


@functools.cache
def saip() -> asn1tools.compiler.Specification:
    """TCA eUICC Profile Package PEDefinitions, DER codec."""
    return _compile(SAIP_FILES)


def decode_exact(spec: asn1tools.compiler.Specification, type_name: str, data: bytes) -> Any:
    """Decode ``data`` as one ``type_name`` value and reject trailing bytes.

    asn1tools' ``decode`` ignores whatever follows the first TLV; messages received from
    the network must not carry hidden trailing data (it could differ from what a
    signature covered).  Every complaint about ``data`` is an :data:`Asn1Error`, whatever asn1tools raised, so
    callers catch that instead of a bare Exception.
    """
    try:
        value, length = spec.decode_with_length(type_name, data)
    except asn1tools.Error:
        raise
    except Exception as exc:  # noqa: BLE001 - asn1tools raises IndexError, ValueError, ... for some bad input
        raise asn1tools.DecodeError(f"{type_name}: {exc}") from None
    if length != len(data):
        raise asn1tools.DecodeError(
            f"{type_name}: {len(data) - length} trailing byte(s) after offset {length}"
        )
    return value
