"""The generated DPtls certificate works for a real TLS handshake (SGP.22 2.6.6), in memory."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from smdp.crypto.ecdsa import Curve
from smdp.pki.issue import init_pki, issue_ci
from smdp.pki.store import ServerCredentials, load_certificate, load_server_credentials
from smdp.pki.tls import client_ssl_context, server_ssl_context


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> ServerCredentials:
    manifest = init_pki(tmp_path_factory.mktemp("pki"), tls_names=["localhost", "127.0.0.1", "::1"])
    return load_server_credentials(manifest)


def handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str
) -> ssl.SSLObject:
    """Run a TLS handshake between two SSLObjects over memory BIOs; return the client side."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client
    raise AssertionError("handshake did not finish")


def client_for(creds: ServerCredentials) -> ssl.SSLContext:
    assert creds.tls_ca_cert_path is not None
    ctx = client_ssl_context([load_certificate(creds.tls_ca_cert_path)])
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
    return ctx


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "::1"])
def test_tls_handshake_verifies_dptls_against_the_ci(
    creds: ServerCredentials, hostname: str
) -> None:
    client = handshake(server_ssl_context(creds), client_for(creds), hostname)
    assert client.version() in ("TLSv1.2", "TLSv1.3")


def test_tls_1_2_uses_an_sgp22_cipher_suite(creds: ServerCredentials) -> None:
    ctx = client_for(creds)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client = handshake(server_ssl_context(creds), ctx, "localhost")
    cipher = client.cipher()
    assert cipher is not None
    assert cipher[0] in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA256")


def test_tls_handshake_fails_for_a_name_not_in_the_certificate(
    creds: ServerCredentials,
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server_ssl_context(creds), client_for(creds), "example.org")


def test_tls_handshake_fails_for_a_client_trusting_another_ci(
    creds: ServerCredentials,
) -> None:
    other_ci, _ = issue_ci(Curve.NIST_P256)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server_ssl_context(creds), client_ssl_context([other_ci]), "localhost")


def test_server_ssl_context_accepts_a_der_certificate(
    creds: ServerCredentials, tmp_path: Path
) -> None:
    der_path = tmp_path / "dptls.crt.der"
    der_path.write_bytes(
        load_certificate(creds.tls_cert_path).public_bytes(serialization.Encoding.DER)
    )
    der_creds = ServerCredentials(
        smdp_oid=creds.smdp_oid,
        tls_cert_path=der_path,
        tls_key_path=creds.tls_key_path,
        chains=creds.chains,
        tls_ca_cert_path=creds.tls_ca_cert_path,
    )
    handshake(server_ssl_context(der_creds), client_for(creds), "localhost")
