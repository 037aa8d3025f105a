"""Test tools for end-to-end ES9+ tests: an ES9+ client with hooks, crafted eUICC credentials, and
re-signing of eUICC answers (a misbehaving eUICC holding a genuine key)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from smdp.codec import asn1
from smdp.codec.b64 import b64decode, b64encode
from smdp.codec.tlv import iter_tlvs, read_tlv, tlv
from smdp.crypto import ecdsa
from smdp.crypto.ecdsa import Curve
from smdp.euicc import VirtualEuicc
from smdp.lpa.download import DownloadResult, download
from smdp.lpa.es9client import Es9Client
from smdp.pki.eid import random_eid
from smdp.pki.files import write_certificate, write_private_key
from smdp.pki.issue import issue_ci, issue_euicc, issue_eum
from smdp.pki.store import load_certificate, load_euicc_credentials, load_private_key

Hook = Callable[[dict[str, Any]], Any]


class HookedClient(Es9Client):
    """An ES9+ client whose requests/responses pass through per-function hooks (sync or async),
    and whose calls can be routed to another server per function."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("insecure", True)
        super().__init__(**kwargs)
        self.request_hooks: dict[str, Hook] = {}
        self.response_hooks: dict[str, Hook] = {}
        self.route: dict[str, str] = {}
        self.sent: dict[str, dict[str, Any]] = {}
        self.received: dict[str, Any] = {}

    async def call(self, address: str, function: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if function in self.request_hooks:
            body = await _maybe_await(self.request_hooks[function](dict(body)))
        self.sent[function] = body
        answer = await super().call(self.route.get(function, address), function, body)
        self.received[function] = answer
        if function in self.response_hooks:
            answer = await _maybe_await(self.response_hooks[function](answer))
        return answer


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def open_euicc(tmp: Path, manifest: Path, curve: str = "nist", name: str = "euicc") -> VirtualEuicc:
    return VirtualEuicc.open(tmp / f"{name}-{curve}.json", manifest=manifest, curve=curve)


async def run_download(euicc: VirtualEuicc, code: str, client: Es9Client | None = None, **kwargs: Any) -> DownloadResult:
    own = client is None
    client = client or HookedClient()
    try:
        return await download(euicc, code, client=client, **kwargs)
    finally:
        if own:
            await client.close()


def codes(result: DownloadResult) -> tuple[str | None, str | None]:
    return result.subject_code, result.reason_code


# --- crafted eUICC credentials ------------------------------------------------------------------------

NOW = datetime.now(UTC)
PAST = (NOW - timedelta(days=400), NOW - timedelta(days=1))


def crafted_euicc_manifest(
    tmp: Path,
    server_manifest: Path,
    *,
    foreign_ci: bool = False,
    eum_validity: tuple[datetime, datetime] | None = None,
    euicc_validity: tuple[datetime, datetime] | None = None,
    eins: tuple[str, ...] = ("89049032",),
    eid: str | None = None,
) -> Path:
    """A manifest for a NIST eUICC whose EUM/eUICC certificates are made to order.

    The eUICC always lists the server's CI (so that initiateAuthentication succeeds); with
    ``foreign_ci`` its EUM is issued by another CI, unknown to the server."""
    pki = server_manifest.parent
    server_ci = load_certificate(pki / "nist" / "ci.crt.der")
    if foreign_ci:
        ci_cert, ci_key = issue_ci(Curve.NIST_P256, common_name="Foreign CI")
    else:
        ci_cert, ci_key = server_ci, load_private_key(pki / "nist" / "ci.key.pem")
    nb, na = eum_validity or (None, None)
    eum_cert, eum_key = issue_eum(ci_cert, ci_key, eins=list(eins), curve=Curve.NIST_P256, not_before=nb, not_after=na)
    nb, na = euicc_validity or (None, None)
    euicc_eid = eid or random_eid(eins[0])
    euicc_cert, euicc_key = issue_euicc(eum_cert, eum_key, eid=euicc_eid, curve=Curve.NIST_P256, not_before=nb, not_after=na)
    tmp.mkdir(parents=True, exist_ok=True)
    write_certificate(tmp / "ci.crt.der", ci_cert)
    write_certificate(tmp / "eum.crt.der", eum_cert)
    write_certificate(tmp / "euicc.crt.der", euicc_cert)
    write_private_key(tmp / "euicc.key.pem", euicc_key)
    cis = ['"ci.crt.der"'] + ([f'"{pki / "nist" / "ci.crt.der"}"'] if foreign_ci else [])
    manifest = tmp / "pki.toml"
    manifest.write_text(
        "[[euicc]]\n"
        'curve = "nist"\n'
        'euicc_cert = "euicc.crt.der"\n'
        'euicc_key = "euicc.key.pem"\n'
        'eum_cert = "eum.crt.der"\n'
        f"ci_cert = [{', '.join(cis)}]\n"
    )
    return manifest


def euicc_key(manifest: Path, curve: str = "nist") -> ec.EllipticCurvePrivateKey:
    return load_euicc_credentials(manifest, curve).euicc_key


# --- re-signing eUICC answers ----------------------------------------------------------------------


def _ok_parts(der: bytes) -> tuple[int, list[bytes]]:
    outer = read_tlv(der)
    ok = read_tlv(outer.value)
    return outer.tag, [t.raw for t in iter_tlvs(ok.value)]


def resign(
    der: bytes,
    key: ec.EllipticCurvePrivateKey,
    signed_type: str,
    mutate: Callable[[dict[str, Any]], None] | None = None,
    *,
    suffix: bytes = b"",
    corrupt_signature: bool = False,
    certificates: tuple[bytes, bytes] | None = None,
) -> bytes:
    """Re-sign the Ok alternative of an eUICC answer (BF38/BF21/BF41 { A0 { signed, 5F37, ... } })
    after ``mutate`` changed the signed part; ``suffix`` is what the signature also covers."""
    tag, parts = _ok_parts(der)
    signed = parts[0]
    if mutate is not None:
        value = asn1.rsp().decode(signed_type, signed)
        mutate(value)
        signed = asn1.rsp().encode(signed_type, value)
    signature = ecdsa.sign(key, signed + suffix)
    if corrupt_signature:
        signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
    rest = b"".join(certificates) if certificates is not None else b"".join(parts[2:])
    return tlv(tag, tlv(0xA0, signed + tlv(0x5F37, signature) + rest))


def body_resigner(
    field: str, key: ec.EllipticCurvePrivateKey, signed_type: str, client: HookedClient | None = None, **kwargs: Any
) -> Hook:
    """A request hook re-signing ``body[field]``; for euiccSigned2 the suffix is the smdpSignature2 the
    server sent (taken from ``client.received``)."""

    def hook(body: dict[str, Any]) -> dict[str, Any]:
        suffix = b""
        if signed_type == "EUICCSigned2" and client is not None:
            suffix = b64decode(client.received["authenticateClient"]["smdpSignature2"])
        body[field] = b64encode(resign(b64decode(body[field]), key, signed_type, suffix=suffix, **kwargs))
        return body

    return hook


def certificate_of(manifest: Path, curve: str = "nist") -> x509.Certificate:
    return load_euicc_credentials(manifest, curve).euicc_cert
