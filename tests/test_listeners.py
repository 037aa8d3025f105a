"""Several listeners in one process (``smdp serve --config``): per-listener CIs, and ES2+ over mutual TLS.

One in-process server (one event loop) runs five listeners from a configuration file: ES9+ restricted to the
NIST CI, ES9+ restricted to the brainpool CI, ES2+ and /admin with mutual TLS, ES2+ wanting both the client
certificate and the API token, and a mutual-TLS listener with the lab option accepting expired client
certificates.  The operators' client certificates are made here with ``cryptography``: an operator CA issuing
acme's certificate, a pinned (not self-signed) certificate for beta whose issuer the server does not know,
and certificates the server must refuse (unknown issuer, expired) or answer 403 (a CN configured for no
operator).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smdp.codec import asn1
from smdp.codec.b64 import b64encode
from smdp.config import load_settings
from smdp.config_file import ConfigError, load_config
from smdp.operator_client import Es2Client, Es2Error
from smdp.pki.store import load_euicc_credentials
from smdp.pki.verify import subject_key_identifier
from smdp.server import Listeners, Runtime, open_runtime, serving
from smdp.services.operators import add_operator
from smdp.web.app import ES9_PREFIX
from smdp.web.client_auth import ClientAuth, ClientCertificate
from tests.conftest import RunningServer
from tests.es2_tools import stock_profiles
from tests.es9_tools import open_euicc, run_download

NOW = datetime.now(UTC)

# --- client certificates ---------------------------------------------------------------------------------------


def issue(cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None, *, ca: bool = False,
          expired: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:  # fmt: skip
    """A P-256 certificate for ``cn``, self-signed or issued by ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_key, issuer_name = (key, name) if issuer is None else (issuer[1], issuer[0].subject)
    before, after = (NOW - timedelta(days=30), NOW - timedelta(days=1)) if expired else (NOW - timedelta(hours=1), NOW + timedelta(days=30))
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(before).not_valid_after(after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )  # fmt: skip
    return builder.sign(signer_key, hashes.SHA256()), key


def write_pair(directory: Path, name: str, pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt.pem", directory / f"{name}.key.pem"
    cert.write_bytes(pair[0].public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pair[1].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key


@dataclass
class ClientCerts:
    ca: Path
    acme: tuple[Path, Path]  # issued by the operator CA, CN acme
    beta: tuple[Path, Path]  # pinned; its issuer is unknown to the server
    nobody: tuple[Path, Path]  # issued by the operator CA, CN configured for no operator
    stranger: tuple[Path, Path]  # CN acme, from a CA the server does not trust
    expired: tuple[Path, Path]  # issued by the operator CA, CN acme, expired yesterday


def client_certs(directory: Path) -> ClientCerts:
    directory.mkdir(parents=True, exist_ok=True)
    ca = issue("smdp test operator CA", ca=True)
    other_ca = issue("beta's own CA", ca=True)
    ca_path, _ = write_pair(directory, "operator-ca", ca)
    return ClientCerts(
        ca=ca_path,
        acme=write_pair(directory, "acme", issue("acme", ca)),
        beta=write_pair(directory, "beta", issue("beta-ops", other_ca)),
        nobody=write_pair(directory, "nobody", issue("nobody", ca)),
        stranger=write_pair(directory, "stranger", issue("acme", issue("evil CA", ca=True))),
        expired=write_pair(directory, "expired", issue("acme", ca, expired=True)),
    )


CONFIG = """\
# five listeners, one process
[[listener]]
name = "nist"
port = 0
cis = ["nist"]
interfaces = ["es9"]

[[listener]]
name = "brainpool"
port = 0
cis = ["{brainpool_ski}"]
interfaces = ["es9"]

[[listener]]
name = "ops"
port = 0
interfaces = ["es2", "admin"]
client_auth = "mtls"

[[listener.operator]]
name = "acme"
client_ca = "certs/operator-ca.crt.pem"

[[listener.operator]]
name = "beta"
client_cert = "certs/beta.crt.pem"

[[listener]]
name = "both"
port = 0
interfaces = ["es2", "admin"]
client_auth = "both"

[[listener.operator]]
name = "acme"
client_ca = "certs/operator-ca.crt.pem"

[[listener]]
name = "lab"
port = 0
interfaces = ["admin"]
client_auth = "mtls"
accept_expired_client_certs = true

[[listener.operator]]
name = "acme"
client_ca = "certs/operator-ca.crt.pem"
"""


@dataclass
class Lab:
    listeners: Listeners
    runtime: Runtime
    certs: ClientCerts
    tokens: dict[str, str]
    tmp: Path
    manifest: Path

    def address(self, name: str) -> str:
        return next(info.address for info in self.listeners.all if info.name == name)

    def url(self, name: str) -> str:
        return f"https://{self.address(name)}"

    def es2(self, listener: str, cert: tuple[Path, Path] | None, operator: str = "acme", token: str = "") -> Es2Client:
        return Es2Client(self.url(listener), token, operator, ca_file=self.runtime.credentials.tls_ca_cert_path,
                         client_cert=cert[0] if cert else None, client_key=cert[1] if cert else None)  # fmt: skip

    @property
    def server(self) -> RunningServer:
        return RunningServer(self.listeners.device, self.runtime, self.tmp / "data", self.manifest, None)


def brainpool_ski(manifest: Path) -> str:
    ci = load_euicc_credentials(manifest, "brainpool").ci_certs[0]
    return ":".join(f"{b:02X}" for b in subject_key_identifier(ci))  # colons and capitals: accepted as written


@asynccontextmanager
async def lab_server(tmp: Path, manifest: Path, config_text: str | None = None) -> AsyncIterator[Lab]:
    certs = client_certs(tmp / "certs")
    config_path = tmp / "smdp.toml"
    config_path.write_text(config_text or CONFIG.format(brainpool_ski=brainpool_ski(manifest)))
    config = load_config(config_path)
    runtime = await open_runtime(load_settings(tmp / "data", f"sqlite:///{tmp / 'smdp.db'}", manifest), frozenset())
    try:
        tokens = {name: await add_operator(runtime.db, name) for name in ("acme", "beta")}
        async with serving(runtime, "127.0.0.1", 0, listeners=config.listeners) as listeners:
            yield Lab(listeners, runtime, certs, tokens, tmp, manifest)
    finally:
        await runtime.db.dispose()


@pytest.fixture
async def lab(tmp_path: Path, pki_manifest: Path) -> AsyncIterator[Lab]:
    async with lab_server(tmp_path, pki_manifest) as running:
        yield running


def tls_client(cert: tuple[Path, Path] | None = None, *, tls12: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the server's certificate is not the point here
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # a refused client certificate fails the handshake itself
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


async def handshake(address: str, cert: tuple[Path, Path] | None) -> None:
    """A TLS 1.2 handshake with the listener (with TLS 1.3 the client learns of a refusal only on its next read)."""
    host, port = address.rsplit(":", 1)
    _reader, writer = await asyncio.open_connection(host, int(port), ssl=tls_client(cert, tls12=True))
    writer.close()


async def get_admin(url: str, cert: tuple[Path, Path] | None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_client(cert))) as http,
        http.get(url + "/admin/profiles", headers=headers) as response,
    ):
        return response.status, await response.json()


# --- the listeners and their CIs ----------------------------------------------------------------------------------


async def test_listeners_are_described(lab: Lab) -> None:
    names = [info.name for info in lab.listeners.all]
    assert names == ["nist", "brainpool", "ops", "both", "lab"]
    assert len({info.address for info in lab.listeners.all}) == 5
    by_name = {info.name: info for info in lab.listeners.all}
    assert [c.split()[0] for c in by_name["nist"].cis] == ["nist"]
    assert [c.split()[0] for c in by_name["brainpool"].cis] == ["brainpool"]
    assert by_name["ops"].cis == () and by_name["ops"].client_auth == "mtls" and by_name["both"].client_auth == "both"
    assert lab.listeners.device == lab.address("nist")
    assert lab.listeners.operator == lab.address("ops")  # no listener authenticates by token alone
    assert set(lab.listeners.sites) == set(names)


async def test_a_brainpool_only_euicc_is_refused_on_the_nist_port_and_served_on_the_brainpool_port(lab: Lab) -> None:
    (iccid,) = await stock_profiles(lab.server, "acme", 1)
    async with lab.es2("ops", lab.certs.acme) as es2:
        await es2.call("downloadOrder", iccid=iccid)
        await es2.call("confirmOrder", iccid=iccid, matchingId="MID-BRAINPOOL", releaseFlag=True)
    euicc = open_euicc(lab.tmp, lab.manifest, curve="brainpool")
    refused = await run_download(euicc, f"LPA:1${lab.address('nist')}$MID-BRAINPOOL")
    # None of the PKIds the eUICC proposes is served here: smdp.rsp.es9 answers SGP.22 5.6.1's 8.8.2/3.1
    # ("None of the proposed Public Key Identifiers is supported"); 8.8.4/3.7 is for an eUICC that signs under
    # a CI served here but cannot verify it (next test).
    assert (refused.subject_code, refused.reason_code) == ("8.8.2", "3.1"), refused
    served = await run_download(euicc, f"LPA:1${lab.address('brainpool')}$MID-BRAINPOOL")
    assert served.subject_code is None, served
    assert served.iccid == iccid


async def test_no_dpauth_under_a_ci_the_euicc_verifies_is_8_8_4_3_7(lab: Lab) -> None:
    """An eUICC that signs under NIST and brainpool but verifies only brainpool: no DPauth on the NIST-only port."""
    nist = load_euicc_credentials(lab.manifest, "nist").ci_certs[0]
    brainpool = load_euicc_credentials(lab.manifest, "brainpool").ci_certs[0]
    info1 = asn1.rsp().decode("EUICCInfo1", open_euicc(lab.tmp, lab.manifest).euicc_info1())
    info1["euiccCiPKIdListForSigning"] = [subject_key_identifier(nist), subject_key_identifier(brainpool)]
    info1["euiccCiPKIdListForVerification"] = [subject_key_identifier(brainpool)]
    der = asn1.rsp().encode("EUICCInfo1", info1)
    answers = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_client())) as http:
        for name in ("nist", "brainpool"):
            body = {"euiccChallenge": b64encode(bytes(16)), "euiccInfo1": b64encode(der), "smdpAddress": lab.address(name)}
            headers = {"Content-Type": "application/json", "X-Admin-Protocol": "gsma/rsp/v2.2.0"}
            async with http.post(lab.url(name) + ES9_PREFIX + "initiateAuthentication", data=json.dumps(body), headers=headers) as response:
                assert response.status == 200
                answers[name] = (await response.json())["header"]["functionExecutionStatus"]
    assert answers["nist"]["status"] == "Failed"
    codes = answers["nist"]["statusCodeData"]
    assert (codes["subjectCode"], codes["reasonCode"]) == ("8.8.4", "3.7")
    assert answers["brainpool"]["status"] == "Executed-Success"


async def test_a_nist_euicc_on_the_two_ports(lab: Lab) -> None:
    assert {lab.address("nist"), lab.address("brainpool")} <= lab.runtime.download.addresses
    euicc = open_euicc(lab.tmp, lab.manifest)
    result = await run_download(euicc, f"LPA:1${lab.address('nist')}$NO-SUCH-MID")
    assert (result.subject_code, result.reason_code) == ("8.2.6", "3.8")  # authenticated, then the matching ID refused
    result = await run_download(euicc, f"LPA:1${lab.address('brainpool')}$NO-SUCH-MID")
    assert (result.subject_code, result.reason_code) == ("8.8.2", "3.1")


# --- ES2+ over mutual TLS --------------------------------------------------------------------------------------


async def test_es2_over_mutual_tls_then_es9_download(lab: Lab) -> None:
    (iccid,) = await stock_profiles(lab.server, "acme", 1)
    async with lab.es2("ops", lab.certs.acme) as es2:  # no API token: the certificate is the credential
        await es2.call("downloadOrder", iccid=iccid)
        confirmed = await es2.call("confirmOrder", iccid=iccid, matchingId="MID-MTLS", releaseFlag=True)
    assert confirmed["smdpAddress"] == lab.address("nist")
    result = await run_download(open_euicc(lab.tmp, lab.manifest), f"LPA:1${confirmed['smdpAddress']}$MID-MTLS")
    assert result.subject_code is None, result
    assert result.iccid == iccid


async def test_smdp_order_new_over_mutual_tls(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """The operator CLI reaches an mTLS listener with --client-cert/--client-key and no token; a certificate the
    listener does not trust fails the command with exit status 3 (refused in the handshake: nothing reached)."""
    from smdp.cli import main

    (iccid,) = await stock_profiles(lab.server, "acme", 1)
    base = ["order", "new", "--data-dir", str(lab.tmp / "data"), "--url", lab.url("ops"), "--operator", "acme",
            "--ca", str(lab.runtime.credentials.tls_ca_cert_path), "--json"]  # fmt: skip
    cert, key = lab.certs.acme
    assert await asyncio.to_thread(main, [*base, "--iccid", iccid, "--client-cert", str(cert), "--client-key", str(key)]) == 0
    placed = json.loads(capsys.readouterr().out)
    assert placed["iccid"] == iccid and placed["activation_code"].startswith("LPA:1$")
    stranger_cert, stranger_key = lab.certs.stranger
    (other,) = await stock_profiles(lab.server, "acme", 1)
    args = [*base, "--iccid", other, "--client-cert", str(stranger_cert), "--client-key", str(stranger_key)]
    assert await asyncio.to_thread(main, args) == 3
    assert "HTTP transport failed" in capsys.readouterr().err
    assert await asyncio.to_thread(main, [*base, "--iccid", iccid, "--client-key", str(key)]) == 2  # key without cert
    assert "--client-key needs --client-cert" in capsys.readouterr().err


async def test_a_pinned_certificate_that_is_not_self_signed(lab: Lab) -> None:
    status, answer = await get_admin(lab.url("ops"), lab.certs.beta)
    assert status == 200 and answer == {"profiles": []}
    await handshake(lab.address("ops"), lab.certs.beta)


async def test_unknown_issuer_and_no_certificate_are_refused_in_the_handshake(lab: Lab) -> None:
    for cert in (lab.certs.stranger, None, lab.certs.expired):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await handshake(lab.address("ops"), cert)
    await handshake(lab.address("ops"), lab.certs.acme)  # the same handshake with the right certificate
    for cert in (lab.certs.stranger, None):  # through the ES2+ client (TLS 1.3): no answer at all
        async with lab.es2("ops", cert, token=lab.tokens["acme"]) as es2:
            with pytest.raises(Es2Error) as error:
                await es2.call("downloadOrder", iccid="89049032000000000000")
        assert error.value.unreachable, error.value


async def test_a_trusted_certificate_of_no_operator_gets_403(lab: Lab) -> None:
    async with lab.es2("ops", lab.certs.nobody, token=lab.tokens["acme"]) as es2:  # a token does not help
        with pytest.raises(Es2Error) as error:
            await es2.call("downloadOrder", iccid="89049032000000000000")
    assert error.value.status == 403 and not error.value.unreachable
    status, answer = await get_admin(lab.url("ops"), lab.certs.nobody)
    assert status == 403 and "no operator" not in answer["error"] and "not configured" in answer["error"]


async def test_the_requester_must_be_the_certificate_s_operator(lab: Lab) -> None:
    async with lab.es2("ops", lab.certs.acme, operator="beta") as es2:
        with pytest.raises(Es2Error) as error:
            await es2.call("downloadOrder", iccid="89049032000000000000")
    assert (error.value.subject_code, error.value.reason_code, error.value.status) == ("1.1", "1.2", 200)


async def test_both_wants_certificate_and_token_of_the_same_operator(lab: Lab) -> None:
    (iccid,) = await stock_profiles(lab.server, "acme", 1)
    async with lab.es2("both", lab.certs.acme, token=lab.tokens["acme"]) as es2:
        answer = await es2.call("downloadOrder", iccid=iccid)
    assert answer["iccid"] == iccid
    for token, status in ((lab.tokens["beta"], 403), ("", 401), ("smdp_unknown-token", 401)):
        async with lab.es2("both", lab.certs.acme, token=token) as es2:
            with pytest.raises(Es2Error) as error:
                await es2.call("cancelOrder", iccid=iccid, finalProfileStatusIndicator="Available")
        assert error.value.status == status, (token, error.value)
    assert (await get_admin(lab.url("both"), lab.certs.acme, lab.tokens["beta"]))[0] == 403
    assert (await get_admin(lab.url("both"), lab.certs.acme))[0] == 401
    status, answer = await get_admin(lab.url("both"), lab.certs.acme, lab.tokens["acme"])
    assert status == 200 and [p["iccid"] for p in answer["profiles"]] == [iccid]


async def test_expired_client_certificates_only_with_the_lab_option(lab: Lab) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(lab.address("ops"), lab.certs.expired)
    status, answer = await get_admin(lab.url("lab"), lab.certs.expired)  # X509_V_FLAG_NO_CHECK_TIME
    assert status == 200 and answer == {"profiles": []}
    with pytest.raises((ssl.SSLError, ConnectionError)):  # still only the configured issuers
        await handshake(lab.address("lab"), lab.certs.stranger)


async def test_token_listeners_answer_as_before(tmp_path: Path, pki_manifest: Path) -> None:
    """client_auth = "token" (the default): no certificate asked for, an unknown token is 200 + 1.1/1.1."""
    text = '[[listener]]\nport = 0\ncis = ["nist", "brainpool"]\n'
    async with lab_server(tmp_path, pki_manifest, text) as running:
        (info,) = running.listeners.all
        assert info.interfaces == ("es9", "es2", "admin") and info.client_auth == "token" and len(info.cis) == 2
        await handshake(info.address, None)
        async with Es2Client(f"https://{info.address}", "smdp_unknown-token", "acme", insecure=True) as es2:
            with pytest.raises(Es2Error) as error:
                await es2.call("downloadOrder", iccid="89049032000000000000")
        assert (error.value.subject_code, error.value.reason_code, error.value.status) == ("1.1", "1.1", 200)
        assert running.listeners.operator is None  # ES2+ is on the device listener


async def test_an_operator_missing_from_the_database_stops_the_start(tmp_path: Path, pki_manifest: Path) -> None:
    client_certs(tmp_path / "certs")
    config_path = tmp_path / "smdp.toml"
    config_path.write_text(
        '[[listener]]\nport = 0\ninterfaces = ["es9"]\n\n[[listener]]\nport = 0\ninterfaces = ["es2"]\nclient_auth = "mtls"\n\n'
        '[[listener.operator]]\nname = "ghost"\nclient_cert = "certs/acme.crt.pem"\n'
    )
    config = load_config(config_path)
    runtime = await open_runtime(load_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'smdp.db'}", pki_manifest), frozenset())
    try:
        with pytest.raises(ConfigError) as error:
            async with serving(runtime, "127.0.0.1", 0, listeners=config.listeners):
                pass
    finally:
        await runtime.db.dispose()
    message = str(error.value)
    assert "line 11" in message and "listener[2].operator[1].name" in message
    assert f"smdp operator add ghost --data-dir {tmp_path / 'data'}" in message


async def test_a_ci_the_pki_does_not_have_stops_the_start(tmp_path: Path, pki_manifest: Path) -> None:
    config_path = tmp_path / "smdp.toml"
    config_path.write_text('[[listener]]\nport = 0\ncis = ["00112233"]\n')
    config = load_config(config_path)
    runtime = await open_runtime(load_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'smdp.db'}", pki_manifest), frozenset())
    try:
        with pytest.raises(ConfigError, match=r"line 3: listener\[1\]\.cis: CI '00112233' is not in the PKI"):
            async with serving(runtime, "127.0.0.1", 0, listeners=config.listeners):
                pass
    finally:
        await runtime.db.dispose()


# --- the policy, sans I/O -------------------------------------------------------------------------------------


def test_client_auth_maps_certificates_to_operators(tmp_path: Path) -> None:
    ca = issue("ca", ca=True)
    acme, other_acme, cn_b = issue("acme", ca), issue("acme", issue("ca", ca=True)), issue("b-ops", ca)
    pinned = issue("pinned", issue("x", ca=True))
    policy = ClientAuth("mtls", (
        ClientCertificate("acme", ca=ca[0]),
        ClientCertificate("b", ca=ca[0], subject_cn="b-ops"),
        ClientCertificate("c", pinned=pinned[0]),
    ))  # fmt: skip

    def der(pair: tuple[x509.Certificate, Any]) -> bytes:
        return pair[0].public_bytes(serialization.Encoding.DER)

    assert policy.operator_of(der(acme)) == "acme"
    assert policy.operator_of(der(cn_b)) == "b"
    assert policy.operator_of(der(pinned)) == "c"
    assert policy.operator_of(der(other_acme)) is None  # same issuer name, another key: not issued by the CA
    assert policy.operator_of(None) is None and policy.operator_of(b"junk") is None
    assert len(policy.trust_anchors) == 2
    with pytest.raises(ValueError):
        ClientAuth("mtls", ())
