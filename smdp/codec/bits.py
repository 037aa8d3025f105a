"""Named-bit BIT STRINGs (X.680 22, X.690 8.6 and 11.2): the one codec between lists of bit names
and the ``(bytes, number_of_bits)`` pairs asn1tools encodes and decodes.

SGP.22 uses such BIT STRINGs for PPRs (``PprIds``), Notification events (``NotificationEvent``),
eUICC capabilities (``UICCCapability``, ``RspCapability``), reset options, and the travel policy's
access technologies. An *alphabet* is the tuple of the type's bit names in bit-number order: name
``alphabet[n]`` is bit ``n``, the most significant bit of the first octet being bit 0.

DER (X.690 11.2.2): a BIT STRING with named bits is encoded with all trailing 0 bits removed, so
the value of "no bit set" is empty and the bit count is one past the highest bit set. asn1tools
writes whatever count it is given, so the count must be right here. Decoding is lenient where BER
and later versions of a type make it so: bits past the count (the unused bits of the last octet,
which DER requires to be 0 but BER does not) and bits the alphabet does not name (a newer version
of the type) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["bit_names", "bit_string"]


def bit_string(names: Iterable[str], alphabet: tuple[str, ...]) -> tuple[bytes, int]:
    """The DER named-bit BIT STRING value with the bits ``names`` set, as asn1tools wants it.

    Order and repetition of ``names`` do not matter. An empty ``names`` gives ``(b"", 0)``.
    ValueError for a name that is not in ``alphabet`` (encoding it as nothing would silently drop
    a PPR or an event)."""
    indexes = set()
    for name in names:
        try:
            indexes.add(alphabet.index(name))
        except ValueError:
            raise ValueError(f"{name!r} is not a named bit of this BIT STRING (one of {', '.join(alphabet)})") from None
    if not indexes:
        return b"", 0
    count = max(indexes) + 1  # the highest bit set is the last one: no trailing 0 bits
    value = bytearray((count + 7) // 8)
    for index in indexes:
        value[index // 8] |= 0x80 >> (index % 8)
    return bytes(value), count


def bit_names(value: tuple[bytes, int], alphabet: tuple[str, ...]) -> list[str]:
    """The names of the bits set in an asn1tools BIT STRING value, in bit-number order.

    Bits at or past the bit count, bits the alphabet does not name, and a count larger than the
    octets hold are ignored rather than errors: what was received decoded as a BIT STRING already."""
    data, count = value
    count = min(count, 8 * len(data))
    return [
        name
        for index, name in enumerate(alphabet)
        if index < count and data[index // 8] & (0x80 >> (index % 8))
    ]
