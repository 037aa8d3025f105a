"""A lab SM-DP+ for real devices (issue 15): TLS names (`pki init --tls-name`, `serve --address` re-issuing DPtls),
the committed public test PKI (certs/smdp-test-pki.toml) and the commands of docs/real-devices.md.

TLS is checked the way a device would: curl resolving a lab name to 127.0.0.1 (``--resolve``) and trusting
exactly the PKI's CI (``--cacert``), with host name verification on."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from smdp.config import load_settings
from smdp.crypto.ecdsa import Curve
from smdp.pki.issue import (
    PUBLIC_TEST_EID,
    PUBLIC_TEST_NOT_AFTER,
    PUBLIC_TEST_NOT_BEFORE,
    PUBLIC_TEST_ORGANIZATION,
    init_pki,
    reissue_dptls,
    tls_names_with_defaults,
)
from smdp.pki.store import PkiConfigError, load_certificate, load_euicc_credentials, load_server_credentials
from smdp.pki.tls import address_host, certificate_names, names_host, normalize_tls_name
from smdp.pki.verify import (
    EuiccCertificateExpired,
    EumCertificateExpired,
    ServerCertificateExpired,
    is_signed_by,
    subject_key_identifier,
    verify_euicc_chain,
    verify_server_certificate,
)
from smdp.server import ensure_pki, tls_hosts_of
from tests.conftest import start_server
from tests.device_tools import demo_iccid, demo_package
from tests.es9_tools import HookedClient, open_euicc, run_download
from tests.process_tools import SMDP, Server, collect_lines, eventually, free_port, servers, smdp  # noqa: F401  (servers: a fixture)

REPO = Path(__file__).resolve().parents[1]
PUBLIC = REPO / "certs" / "smdp-test-pki.toml"
PUBLIC_DIR = REPO / "certs" / "smdp-test-pki"
DOC = REPO / "docs" / "real-devices.md"
# The CI key identifiers certs/README.md publishes: an LPA configured with them must keep working.
PUBLIC_CI_SKI = {
    Curve.NIST_P256: "e16dd4d694340e564182a8c86eeddb97f43dee01",
    Curve.BRAINPOOL_P256R1: "ee7e7bc5d7c83006736170d1ba5cf1439897d92e",
}


# --- helpers -------------------------------------------------------------------------------------------


def curl_binary() -> str:
    found = shutil.which("curl")
    if not found:
        pytest.skip("curl not found (apt-get install curl): it is the independent TLS client of these tests")
    return found


def curl(url: str, *, resolve: str, cacert: Path) -> subprocess.CompletedProcess[str]:
    """GET ``url`` with curl, ``resolve`` as HOST:PORT:ADDRESS, trusting only ``cacert``; stdout is the HTTP status."""
    return subprocess.run(
        [curl_binary(), "-sS", "--resolve", resolve, "--cacert", str(cacert), "-o", os.devnull, "-w", "%{http_code}", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def dptls(data: Path) -> x509.Certificate:
    return load_certificate(data / "certs" / "tls" / "dptls.crt.pem")


# --- names ---------------------------------------------------------------------------------------------


def test_tls_names_are_normalised_and_checked() -> None:
    assert normalize_tls_name("ESIM.Test.") == "esim.test"
    assert normalize_tls_name("[2001:DB8::1]") == "2001:db8::1"
    assert normalize_tls_name("*.lab.test") == "*.lab.test"
    for bad in ("esim.test:8443", "https://esim.test", "with space", "under_score.test", "*.test", "", "ü.test"):
        with pytest.raises(ValueError):
            normalize_tls_name(bad)
    assert address_host("esim.test:8443") == "esim.test"
    assert address_host("[::1]:8443") == "::1"
    assert address_host("192.0.2.7") == "192.0.2.7"
    assert tls_names_with_defaults(["esim.test", "127.0.0.1", "Esim.test"]) == ["localhost", "127.0.0.1", "::1", "esim.test"]


def test_which_hosts_serve_names_in_the_tls_certificate() -> None:
    assert tls_hosts_of("127.0.0.1", ["esim.test:8443", "ESIM.test", "[2001:db8::5]:443", "bad host:1"]) == [
        "esim.test",
        "2001:db8::5",
    ]
    assert tls_hosts_of("0.0.0.0", []) == [] and tls_hosts_of("::", []) == []
    assert tls_hosts_of("192.0.2.9", []) == ["192.0.2.9"]  # bound to one LAN address: activation codes name it


def test_names_host_follows_rfc_6125(tmp_path: Path) -> None:
    manifest = init_pki(tmp_path, tls_names=["localhost", "*.lab.test", "192.0.2.7"])
    cert = load_certificate(manifest.parent / "tls" / "dptls.crt.pem")
    assert certificate_names(cert) == ["localhost", "*.lab.test", "192.0.2.7"]
    assert names_host(cert, "a.lab.test") and names_host(cert, "LOCALHOST") and names_host(cert, "192.0.2.7")
    assert not names_host(cert, "lab.test") and not names_host(cert, "a.b.lab.test") and not names_host(cert, "192.0.2.8")


# --- pki init --tls-name, serve --address ----------------------------------------------------------------


def test_pki_init_tls_name_then_serve_verifies_with_curl(tmp_path: Path, servers: list[Server]) -> None:
    data = tmp_path / "data"
    init = smdp("pki", "init", "--data-dir", str(data), "--tls-name", "esim.test", "--tls-name", "192.0.2.10")
    assert "esim.test" in init.stdout
    cert = dptls(data)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "esim.test" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1", "192.0.2.10"]
    assert stat.S_IMODE((data / "certs" / "tls" / "dptls.key.pem").stat().st_mode) == 0o600

    port = free_port()
    server = Server("--data-dir", str(data), "--address", f"esim.test:{port}", port=port)
    servers.append(server)
    code = next(line for line in server.lines if "activation code:" in line).split("activation code:", 1)[1].strip()
    assert code.startswith(f"LPA:1$esim.test:{port}$")
    assert der(dptls(data)) == der(cert)
    assert not any("re-issued" in line for line in server.errors)  # it named esim.test already

    ca = data / "certs" / "tls" / "ci.crt.pem"
    ok = curl(f"https://esim.test:{port}/openapi.json", resolve=f"esim.test:{port}:127.0.0.1", cacert=ca)
    assert (ok.returncode, ok.stdout) == (0, "200"), ok.stderr
    wrong = curl(f"https://other.test:{port}/openapi.json", resolve=f"other.test:{port}:127.0.0.1", cacert=ca)
    assert wrong.returncode == 60, (wrong.returncode, wrong.stderr)  # the name check is real: not in the SAN
    foreign = curl(f"https://esim.test:{port}/openapi.json", resolve=f"esim.test:{port}:127.0.0.1",
                   cacert=PUBLIC_DIR / "tls" / "ci.crt.pem")  # fmt: skip
    assert foreign.returncode == 60, (foreign.returncode, foreign.stderr)  # and so is the chain: another CI


def test_serve_address_reissues_dptls_of_the_generated_pki(tmp_path: Path, servers: list[Server]) -> None:
    data = tmp_path / "data"
    smdp("pki", "init", "--data-dir", str(data))
    certs = data / "certs"
    before = {p.relative_to(certs).as_posix(): p.read_bytes() for p in certs.rglob("*") if p.is_file()}
    old = dptls(data)
    assert not names_host(old, "esim.test")

    port = free_port()
    server = Server("--data-dir", str(data), "--address", f"esim.test:{port}", "--address", f"192.0.2.7:{port}", port=port)
    servers.append(server)
    new = dptls(data)
    assert certificate_names(new) == ["localhost", "127.0.0.1", "::1", "esim.test", "192.0.2.7"]
    assert eventually(lambda: any("re-issued the TLS certificate" in line for line in server.errors)), server.errors
    ci = load_certificate(certs / "nist" / "ci.crt.der")
    assert is_signed_by(new, ci) and new.issuer == old.issuer  # the same CI: LPAs that trust it keep trusting
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert new.public_key().public_bytes(serialization.Encoding.DER, spki) == old.public_key().public_bytes(
        serialization.Encoding.DER, spki
    )
    assert new.serial_number != old.serial_number
    after = {p.relative_to(certs).as_posix(): p.read_bytes() for p in certs.rglob("*") if p.is_file()}
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == ["pki.toml", "tls/dptls.crt.pem"], changed  # pki.toml: its "# TLS names" comment only
    assert "# TLS names: localhost, 127.0.0.1, ::1, esim.test, 192.0.2.7" in after["pki.toml"].decode()
    assert sorted(after) == sorted(before)  # no temporary file left behind
    for path in certs.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    ok = curl(f"https://esim.test:{port}/openapi.json", resolve=f"esim.test:{port}:127.0.0.1", cacert=certs / "tls" / "ci.crt.pem")
    assert (ok.returncode, ok.stdout) == (0, "200"), ok.stderr
    server.stop()

    again = Server("--data-dir", str(data), "--address", f"ESIM.test:{port}", port=port)  # named already
    servers.append(again)
    assert der(dptls(data)) == der(new)
    assert not any("re-issued" in line for line in again.errors)


def test_first_start_with_address_creates_the_pki_naming_it(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data")
    ensure_pki(settings, ["esim.test"])
    assert "esim.test" in certificate_names(dptls(tmp_path / "data"))


def test_a_user_given_manifest_is_never_modified_only_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manifest = init_pki(tmp_path / "mine")
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "mine").rglob("*") if p.is_file()}
    settings = load_settings(tmp_path / "data", pki_manifest=manifest)
    with caplog.at_level(logging.WARNING, logger="smdp.server"):
        assert ensure_pki(settings, ["esim.test", "localhost", "192.0.2.7"]) == manifest.resolve()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "does not name esim.test, 192.0.2.7" in warnings[0], warnings
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == files
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="smdp.server"):
        ensure_pki(load_settings(tmp_path / "data", pki_manifest=PUBLIC), ["smdp.test"])  # named: nothing to say
    assert not caplog.records


def test_reissue_refuses_what_init_pki_did_not_write(tmp_path: Path) -> None:
    init_pki(tmp_path / "a")
    init_pki(tmp_path / "b")
    assert reissue_dptls(tmp_path / "a", ["LOCALHOST", "::1"]) is None  # covered: nothing written
    (tmp_path / "a" / "tls" / "dptls.crt.pem").write_bytes((tmp_path / "b" / "tls" / "dptls.crt.pem").read_bytes())
    (tmp_path / "a" / "tls" / "dptls.key.pem").write_bytes((tmp_path / "b" / "tls" / "dptls.key.pem").read_bytes())
    with pytest.raises(PkiConfigError, match="not issued by a CI"):
        reissue_dptls(tmp_path / "a", ["esim.test"])


def test_pki_init_rejects_a_tls_name_with_a_port(tmp_path: Path) -> None:
    result = smdp("pki", "init", "--data-dir", str(tmp_path / "d"), "--tls-name", "esim.test:8443", check=False)
    assert result.returncode == 2 and result.stderr.startswith("smdp: --tls-name:") and "Traceback" not in result.stderr
    assert not (tmp_path / "d" / "certs" / "pki.toml").exists()


# --- the committed public test PKI -----------------------------------------------------------------------


def public_certificates() -> dict[str, x509.Certificate]:
    return {p.relative_to(PUBLIC_DIR).as_posix(): load_certificate(p) for p in sorted(PUBLIC_DIR.rglob("*.crt.*"))}


def test_public_test_pki_is_marked_long_lived_and_stable() -> None:
    certificates = public_certificates()
    assert len(certificates) == 2 * 5 + 2
    for name, cert in certificates.items():
        organizations = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        assert organizations == [PUBLIC_TEST_ORGANIZATION], name
        assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (PUBLIC_TEST_NOT_BEFORE, PUBLIC_TEST_NOT_AFTER)
        assert cert.not_valid_after_utc.year < 2050  # UTCTime, which every certificate parser reads
    credentials = load_server_credentials(PUBLIC)
    assert {chain.curve: subject_key_identifier(chain.ci).hex() for chain in credentials.chains} == PUBLIC_CI_SKI
    assert credentials.smdp_oid == "2.999.10"
    assert certificate_names(load_certificate(credentials.tls_cert_path)) == ["localhost", "127.0.0.1", "::1", "smdp.test"]
    assert "NOT FOR PRODUCTION" in PUBLIC.read_text() and "NOT FOR PRODUCTION" in (REPO / "certs" / "README.md").read_text()
    for curve in ("nist", "brainpool"):
        assert load_euicc_credentials(PUBLIC, curve).eid == PUBLIC_TEST_EID


@pytest.mark.parametrize("curve", list(Curve))
def test_public_test_pki_passes_the_projects_certificate_checks_until_2050(curve: Curve) -> None:
    euicc = load_euicc_credentials(PUBLIC, curve)
    chain = next(c for c in load_server_credentials(PUBLIC).chains if c.curve is curve)
    for now in (datetime.now(UTC), datetime(2049, 12, 31, 23, 0, tzinfo=UTC)):
        assert verify_euicc_chain(euicc.euicc_cert, euicc.eum_cert, [chain.ci], now).eid == PUBLIC_TEST_EID
        assert verify_server_certificate(chain.dpauth_cert, [chain.ci], now, role="dp-auth") == chain.ci
        assert verify_server_certificate(chain.dppb_cert, [chain.ci], now, role="dp-pb") == chain.ci
    later = datetime(2050, 1, 1, tzinfo=UTC)
    with pytest.raises((EumCertificateExpired, EuiccCertificateExpired)):  # the EUM, checked first, ends too
        verify_euicc_chain(euicc.euicc_cert, euicc.eum_cert, [chain.ci], later)
    with pytest.raises(ServerCertificateExpired):
        verify_server_certificate(chain.dpauth_cert, [chain.ci], later, role="dp-auth")


def test_committed_public_test_pki_is_what_the_generator_gives() -> None:
    from cryptography.hazmat.backends.openssl import backend

    if not backend.ecdsa_deterministic_supported():
        pytest.skip("this cryptography/OpenSSL has no deterministic ECDSA (RFC 6979): the files cannot be reproduced here")
    result = subprocess.run([sys.executable, "tools/make_test_pki.py", "--check"], capture_output=True, text=True,
                            timeout=120, cwd=REPO)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_make_test_pki_with_another_name_keeps_the_ci(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "tools/make_test_pki.py", "--tls-name", "esim.lab", "--out", str(tmp_path / "lab.toml")],
                            capture_output=True, text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for part in ("nist/ci.crt.der", "brainpool/eum.crt.der", "nist/euicc.key.pem", "brainpool/dpauth.crt.der"):
        assert (tmp_path / "lab" / part).read_bytes() == (PUBLIC_DIR / part).read_bytes(), part
    assert "esim.lab" in certificate_names(load_certificate(tmp_path / "lab" / "tls" / "dptls.crt.pem"))
    refused = subprocess.run([sys.executable, "tools/make_test_pki.py", "--out", str(tmp_path / "lab.toml")],
                             capture_output=True, text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert refused.returncode == 2 and refused.stderr.startswith("make_test_pki: ")


@pytest.mark.parametrize("curve", ["nist", "brainpool"])
async def test_public_test_pki_serves_and_the_virtual_euicc_downloads(tmp_path: Path, curve: str) -> None:
    server, stack = await start_server(tmp_path / "data", PUBLIC, f"sqlite:///{tmp_path / 'smdp.db'}")
    try:
        from smdp.services.profiles import import_profile

        iccid = demo_iccid()
        await import_profile(server.db, demo_package(iccid), matching_id="PUBLIC-PKI-1")
        euicc = open_euicc(tmp_path, PUBLIC, curve)
        assert euicc.eid == PUBLIC_TEST_EID
        client = HookedClient(insecure=False, ca_file=PUBLIC_DIR / "tls" / "ci.crt.pem")  # TLS verified, by name
        try:
            result = await run_download(euicc, f"LPA:1${server.address}$PUBLIC-PKI-1", client)
        finally:
            await client.close()
        assert result.ok, result.to_json()
        assert [p.iccid for p in euicc.installed_profiles()] == [iccid]
    finally:
        await stack.aclose()
        await server.db.dispose()


async def test_public_test_pki_with_lpac(tmp_path: Path) -> None:
    from smdp.euicc.apdu import IsdrCard
    from smdp.euicc.lpac import run_lpac
    from smdp.services.profiles import import_profile

    lpac = os.environ.get("LPAC") or shutil.which("lpac")
    if not lpac:
        pytest.skip("lpac not found: set LPAC=/path/to/lpac or put lpac on PATH")
    server, stack = await start_server(tmp_path / "data", PUBLIC, f"sqlite:///{tmp_path / 'smdp.db'}")
    try:
        iccid = demo_iccid()
        await import_profile(server.db, demo_package(iccid), matching_id="PUBLIC-LPAC-1")
        card = IsdrCard(open_euicc(tmp_path, PUBLIC, "brainpool"))
        out = io.BytesIO()
        status = await run_lpac(card, Path(lpac), ["profile", "download", "-a", f"LPA:1${server.address}$PUBLIC-LPAC-1"], output=out)
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        (result,) = [line["payload"] for line in lines if line["type"] == "lpa"]
        assert (status, result["code"], result["data"]["iccid"]) == (0, 0, iccid), lines
    finally:
        await stack.aclose()
        await server.db.dispose()


def test_public_test_pki_with_smdp_serve_and_lpa_download(tmp_path: Path, servers: list[Server]) -> None:
    """The README's lines: `smdp serve --pki certs/smdp-test-pki.toml`, `smdp lpa download --pki ...`, TLS checked."""
    data = str(tmp_path / "data")
    server = Server("--data-dir", data, "--pki", "certs/smdp-test-pki.toml", "--address", "smdp.test:1")
    servers.append(server)
    assert not any("does not name" in line for line in server.errors)  # smdp.test is in the committed DPtls
    address = f"127.0.0.1:{server.port}"
    path = tmp_path / "p.der"
    path.write_bytes(demo_package(demo_iccid()))
    smdp("profile", "import", str(path), "--data-dir", data, "--matching-id", "PUBLIC-CLI-1")
    result = json.loads(smdp("lpa", "download", "--data-dir", data, "--pki", "certs/smdp-test-pki.toml",
                             f"LPA:1${address}$PUBLIC-CLI-1").stdout)  # fmt: skip
    assert result["ok"] is True
    server.stop()
    warned = Server("--data-dir", data, "--pki", "certs/smdp-test-pki.toml", "--address", "esim.test:1")
    servers.append(warned)
    assert eventually(lambda: any("does not name esim.test" in line for line in warned.errors)), warned.errors
    time.sleep(0.2)
    assert len([line for line in warned.errors if "does not name" in line]) == 1, warned.errors


# --- docs/real-devices.md: the commands marked for testing run here ------------------------------------------

_MARKED = re.compile(r"<!-- test(?:: (?P<kind>background))? -->\n```sh\n(?P<body>.*?)```", re.S)


def doc_blocks() -> list[tuple[str, str]]:
    """(kind, script) of every fenced block docs/real-devices.md marks with <!-- test --> (run, must succeed) or
    <!-- test: background --> (a server: started, waited for, stopped at the end)."""
    return [(m["kind"] or "run", m["body"]) for m in _MARKED.finditer(DOC.read_text())]


def test_real_devices_doc_marks_commands_for_testing() -> None:
    kinds = [kind for kind, _ in doc_blocks()]
    assert kinds.count("background") == 1 and kinds.count("run") >= 3
    text = DOC.read_text()
    for needle in ("--tls-name", "serve --address", "LPAC_APDU=pcsc", "lpac driver apdu list", "OpenEUICC", "EasyEUICC",
                   "/etc/hosts", "firewall", "8.8.2 / 3.1"):  # fmt: skip
        assert needle in text, needle


def test_real_devices_doc_commands_run(tmp_path: Path) -> None:
    curl_binary()
    for tool in ("openssl", "lpac"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not found: docs/real-devices.md uses it")
    port = str(free_port())
    lab = str(tmp_path / "lab")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("SMDP_DATA_DIR", None)
    env.pop("SMDP_PKI", None)

    def adapt(script: str) -> str:  # a temporary data directory, an ephemeral port, loopback only
        return script.replace("/tmp/smdp-lab", lab).replace("8443", port).replace("0.0.0.0", "127.0.0.1")

    background: list[subprocess.Popen[str]] = []
    outputs: list[str] = []
    try:
        for kind, script in doc_blocks():
            if kind == "background":
                process = subprocess.Popen(["bash", "-c", "exec " + adapt(script).strip()], cwd=REPO, env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
                background.append(process)
                lines: list[str] = []
                threading.Thread(target=collect_lines, args=(process.stdout, lines), daemon=True).start()
                deadline = time.monotonic() + 60
                while not any("listening" in line for line in lines):
                    assert process.poll() is None and time.monotonic() < deadline, lines
                    time.sleep(0.05)
                outputs.append("\n".join(lines))
                continue
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", adapt(script)], cwd=REPO, env=env,
                                    capture_output=True, text=True, timeout=180)  # fmt: skip
            assert result.returncode == 0, (script, result.stdout, result.stderr)
            outputs.append(result.stdout)
    finally:
        for process in background:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    chip_info, san, serve, status = outputs
    info = [json.loads(line)["payload"] for line in chip_info.splitlines() if line.startswith("{") and '"lpa"' in line]
    assert info and info[0]["data"]["EUICCInfo2"]["euiccCiPKIdListForVerification"]
    assert "DNS:esim.test" in san
    assert f"LPA:1$esim.test:{port}$" in serve
    assert status.strip() == "200"
