"""The ``smdp serve --config`` file: errors that name the key and its line, precedence of flags, environment,
file and defaults, ``smdp config check``, and a real ``smdp serve --config`` process with its server.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from smdp.cli import EXIT_FAILED, EXIT_USAGE, build_parser, main, serve_options
from smdp.config_file import ConfigError, effective_options, load_config, parse_config
from smdp.web.limits import Limits
from tests.test_listeners import client_certs

REPO = Path(__file__).resolve().parents[1]
SMDP = [sys.executable, "-m", "smdp.cli"]

GOOD = """\
# a lab server
data_dir = "state"
addresses = ["smdp.lab.example:8443"]
session_retention_days = 7

[limits]
max_connections = 64
body_timeout = 5

[[listener]]
name = "devices"
port = 8443
cis = ["nist"]
interfaces = ["es9"]

[[listener]]
name = "operators"
host = "::1"
port = 8445
interfaces = ["es2", "admin"]
client_auth = "both"

[[listener.operator]]
name = "acme"
client_ca = "certs/operator-ca.crt.pem"
subject_cn = "acme-es2"

[[listener.operator]]
name = "beta"
client_cert = "certs/beta.crt.pem"
"""

FILE = Path("/lab/smdp.toml")


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        parse_config(text, FILE)
    return error.value


def test_a_good_file() -> None:
    config = parse_config(GOOD, FILE)
    assert config.options["data_dir"] == Path("/lab/state")  # relative to the file
    assert config.options["limits.max_connections"] == 64 and config.options["limits.body_timeout"] == 5.0
    assert config.lines["session_retention_days"] == 4 and config.lines["limits.body_timeout"] == 8
    devices, operators = config.listeners
    assert (devices.name, devices.port, devices.cis, devices.interfaces) == ("devices", 8443, ("nist",), ("es9",))
    assert (operators.host, operators.client_auth) == ("::1", "both")
    acme, beta = operators.operators
    assert (acme.name, acme.client_ca, acme.subject_cn) == ("acme", Path("/lab/certs/operator-ca.crt.pem"), "acme-es2")
    assert acme.client_cert is None
    assert (beta.name, beta.client_cert) == ("beta", Path("/lab/certs/beta.crt.pem"))


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "words"),
    [
        ("session_retention_days = 7", "session_retention = 7", 4, "session_retention", "unknown key"),
        ("session_retention_days = 7", 'session_retention_days = "7"', 4, "session_retention_days", "must be a number"),
        ("body_timeout = 5", "body_timeout = 0", 8, "limits.body_timeout", "positive"),
        ("max_connections = 64", "max_conections = 64", 7, "limits.max_conections", "unknown key"),
        ('name = "operators"', 'name = "operators"\nclientauth = "mtls"', 18, "listener[2].clientauth", "unknown key"),
        ('host = "::1"\nport = 8445', 'host = "127.0.0.1"\nport = 8443', 19, "listener[2].port", "collides"),
        ("port = 8445", "port = 70000", 19, "listener[2].port", "not within 0..65535"),
        ("port = 8445", "port = true", 19, "listener[2].port", "must be an integer"),
        ('interfaces = ["es9"]', 'interfaces = ["es9", "smds"]', 14, "listener[1].interfaces", "not implemented yet"),
        ('cis = ["nist"]', 'cis = ["nist", "p384"]', 13, "listener[1].cis", "neither a curve"),
        ('client_auth = "both"', 'client_auth = "certificate"', 21, "listener[2].client_auth", "'token', 'mtls', 'both'"),
        ('subject_cn = "acme-es2"', 'subject_cn = "acme-es2"\nclient_cert = "x.pem"', 27, "listener[2].operator[1].client_cert",
         "one of them"),
        ('client_cert = "certs/beta.crt.pem"', 'client_cert = "certs/beta.crt.pem"\nsubject_cn = "b"', 31,
         "listener[2].operator[2].subject_cn", "only with client_ca"),
        ('name = "beta"', 'nme = "beta"', 29, "listener[2].operator[2].nme", "unknown key"),
        ('data_dir = "state"', 'data_dir = "state"\nport = 8443', 3, "port", "not with [[listener]] tables"),
        ('name = "operators"', 'name = "devices"', 17, "listener[2].name", "another listener"),
    ],
)
def test_errors_name_the_key_and_its_line(old: str, new: str, line: int, key: str, words: str) -> None:
    assert old in GOOD
    error = error_of(GOOD.replace(old, new, 1))
    assert (error.line, error.key) == (line, key), str(error)
    assert str(error).startswith(f"{FILE}, line {line}: {key}: ") and words in str(error), str(error)
    assert "\n" not in str(error)


def test_semantic_errors() -> None:
    mtls_without_operators = GOOD.split("[[listener.operator]]")[0].replace('"both"', '"mtls"')
    error = error_of(mtls_without_operators)
    assert (error.line, error.key) == (21, "listener[2].client_auth") and "[[listener.operator]]" in str(error)
    error = error_of(GOOD.replace('client_auth = "both"', 'client_auth = "token"'))
    assert error.key == "listener[2].operator[1]" and error.line == 23 and '"mtls" or "both"' in str(error)
    error = error_of(GOOD.replace('interfaces = ["es2", "admin"]', 'interfaces = ["es9", "es2"]'))
    assert error.key == "listener[2].client_auth" and "devices have none" in str(error)
    error = error_of(GOOD.replace('interfaces = ["es9"]', 'interfaces = ["admin"]'))
    assert error.key == "listener[1].interfaces" and '"es9"' in str(error)
    error = error_of(GOOD.replace('client_auth = "both"', 'accept_expired_client_certs = 1\nclient_auth = "both"'))
    assert (error.line, error.key) == (21, "listener[2].accept_expired_client_certs") and "true or false" in str(error)
    error = error_of("[[listener]]\nname = 'a'\n")
    assert (error.line, error.key) == (1, "listener[1].port") and "missing" in str(error)
    error = error_of('limits = 5\n')
    assert (error.line, error.key) == (1, "limits")
    error = error_of('a = 1\nb = [\n')
    assert error.line is not None and "not valid TOML" in str(error)


def test_dotted_keys_and_inline_tables_find_their_lines() -> None:
    text = 'data_dir = "d"\nlimits.body_timeout = -1\n'
    assert (error_of(text).line, error_of(text).key) == (2, "limits.body_timeout")
    text = ('[[listener]]\nport = 0\ninterfaces = ["es2"]\nclient_auth = "mtls"\n'
            'operator = [\n  {name = "a", client_cert = "a.pem", bogus = 1},\n]\n')
    error = error_of(text.replace('["es2"]', '["es9"]\n[[listener]]\nport = 1\ninterfaces = ["es2"]'))
    assert error.key == "listener[2].operator[1].bogus" and error.line == 9, str(error)


def test_load_config_checks_the_files(tmp_path: Path) -> None:
    client_certs(tmp_path / "certs")
    (tmp_path / "smdp.toml").write_text(GOOD)
    config = load_config(tmp_path / "smdp.toml")
    acme, beta = config.listeners[1].operators
    assert acme.certificate is not None and beta.certificate is not None
    policy = config.listeners[1].client_auth_policy()
    assert policy.mode == "both" and len(policy.trust_anchors) == 2
    (tmp_path / "missing.toml").write_text(GOOD.replace("certs/beta.crt.pem", "certs/none.pem"))
    with pytest.raises(ConfigError, match=r"line 30: listener\[2\]\.operator\[2\]\.client_cert: .*none\.pem: file not found"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "not-ca.toml").write_text(GOOD.replace("certs/operator-ca.crt.pem", "certs/acme.crt.pem"))
    with pytest.raises(ConfigError, match=r"line 25: listener\[2\]\.operator\[1\]\.client_ca: .*not a CA certificate"):
        load_config(tmp_path / "not-ca.toml")
    wrong_key = GOOD.replace('port = 8443\n', 'port = 8443\ntls_cert = "certs/acme.crt.pem"\ntls_key = "certs/beta.key.pem"\n')
    (tmp_path / "tls.toml").write_text(wrong_key)
    with pytest.raises(ConfigError, match=r"line 13: listener\[1\]\.tls_cert: "):
        load_config(tmp_path / "tls.toml")
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")


# --- precedence ---------------------------------------------------------------------------------------------------


def test_flags_beat_the_environment_beats_the_file_beats_the_defaults(tmp_path: Path) -> None:
    text = ('data_dir = "state"\npki = "pki.toml"\ndatabase_url = "sqlite:///f.db"\nport = 9000\n'
            'session_retention_days = 3\n[limits]\nmax_connections = 64\nbody_timeout = 5\n')
    config = parse_config(text, tmp_path / "smdp.toml")
    options = effective_options(config, {"port": 9001, "limits.max_connections": 8}, {"SMDP_DATABASE_URL": "sqlite:///env.db"})
    assert options.settings["port"].value == 9001 and options.settings["port"].source == "--port"
    assert options["database_url"] == "sqlite:///env.db" and options.settings["database_url"].source == "SMDP_DATABASE_URL"
    assert options["data_dir"] == tmp_path / "state" and options.settings["data_dir"].source == "smdp.toml line 1"
    assert options["session_retention_days"] == 3.0 and options["host"] == "127.0.0.1"
    assert options.settings["host"].source == "default"
    assert options.limits() == Limits(max_connections=8, body_timeout=5.0)
    none = effective_options(None, {}, {})
    assert none.limits() == Limits() and none["port"] == 8443 and none["addresses"] == [] and none.listeners == ()
    zero = effective_options(config, {"port": 0, "session_retention_days": 0.0}, {})  # 0 is a value (0 == False)
    assert (zero["port"], zero["session_retention_days"]) == (0, 0.0)
    assert zero.settings["port"].source == "--port"


def test_serve_flags_override_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMDP_DATA_DIR", raising=False)
    monkeypatch.delenv("SMDP_DATABASE_URL", raising=False)
    monkeypatch.delenv("SMDP_PKI", raising=False)
    path = tmp_path / "smdp.toml"
    path.write_text('data_dir = "state"\nport = 9000\nhost = "127.0.0.2"\nlab_hex_confirmation_code = true\n'
                    'addresses = ["a.example:1"]\n[limits]\nmax_connections = 64\nkeepalive_timeout = 7\n')  # fmt: skip
    args = build_parser().parse_args(["serve", "--config", str(path), "--port", "9443", "--max-connections", "9",
                                      "--address", "b.example:2"])  # fmt: skip
    options = serve_options(args)
    assert (options["port"], options["host"], options["addresses"]) == (9443, "127.0.0.2", ["b.example:2"])
    assert options.limits() == Limits(max_connections=9, keepalive_timeout=7.0)
    assert options["lab_hex_confirmation_code"] is True and options["data_dir"] == tmp_path / "state"
    monkeypatch.setenv("SMDP_DATA_DIR", str(tmp_path / "env"))
    assert serve_options(args)["data_dir"] == str(tmp_path / "env")
    assert serve_options(build_parser().parse_args(["serve", "--config", str(path), "--data-dir", "x"]))["data_dir"] == "x"


def test_listener_flags_with_listener_tables_are_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "smdp.toml"
    path.write_text('[[listener]]\nport = 0\n')
    assert main(["serve", "--config", str(path), "--data-dir", str(tmp_path / "d"), "--port", "9443"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("smdp: --port: ") and "[[listener]]" in err and len(err.splitlines()) == 1
    path.write_text('[[listener]]\nport = 0\nbogus = 1\n')
    assert main(["serve", "--config", str(path), "--data-dir", str(tmp_path / "d")]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err == f"smdp: {path}, line 3: listener[1].bogus: unknown key (allowed here: name, host, port, interfaces, cis, " \
                  "tls_cert, tls_key, client_auth, accept_expired_client_certs, operator)\n"


# --- smdp config check --------------------------------------------------------------------------------------------


def test_config_check(tmp_path: Path, pki_manifest: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SMDP_DATA_DIR", "SMDP_DATABASE_URL", "SMDP_PKI"):
        monkeypatch.delenv(name, raising=False)
    client_certs(tmp_path / "certs")
    path = tmp_path / "smdp.toml"
    path.write_text(f'pki = "{pki_manifest}"\n' + GOOD)
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"configuration file: {path}" in out
    assert f"data_dir                      {tmp_path / 'state'}  (smdp.toml line 3)" in out
    assert "limits.max_connections        64  (smdp.toml line 8)" in out
    assert "limits.keepalive_timeout      30.0  (default)" in out
    assert "listener 'devices' on 127.0.0.1:8443" in out and "listener 'operators' on ::1:8445" in out
    assert "  cis          nist " in out  # resolved against the PKI: curve and subjectKeyIdentifier
    assert "operator     beta: pinned certificate" in out and "subject CN 'acme-es2'" in out
    assert "\n  port " not in out  # the listeners say where it listens
    assert main(["config", "check", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["settings"]["session_retention_days"] == {"value": 7.0, "source": "smdp.toml line 5"}
    assert [listener["name"] for listener in shown["listeners"]] == ["devices", "operators"]
    assert shown["listeners"][0]["cis"][0].startswith("nist ") and shown["pkiFound"] is True
    assert shown["listeners"][1]["clientAuth"] == "both" and shown["listeners"][0]["clientAuth"] is None

    path.write_text(GOOD.replace("body_timeout = 5", "body_timeout = 5\nbody_timeuot = 6"))
    assert main(["config", "check", str(path)]) == EXIT_FAILED
    captured = capsys.readouterr()
    assert captured.err == f"smdp: {path}, line 9: limits.body_timeuot: unknown key (allowed here: tls_handshake_timeout, " \
                           "tls_shutdown_timeout, header_timeout, body_timeout, keepalive_timeout, max_connections, backlog)\n"
    assert captured.out == ""
    assert main(["config", "check", str(path), "--json"]) == EXIT_FAILED
    assert json.loads(capsys.readouterr().out) == {"error": f"{path}, line 9: limits.body_timeuot: unknown key (allowed here: "
                                                   "tls_handshake_timeout, tls_shutdown_timeout, header_timeout, body_timeout, "
                                                   "keepalive_timeout, max_connections, backlog)", "code": EXIT_FAILED}  # fmt: skip
    path.write_text(f'pki = "{pki_manifest}"\n' + GOOD.replace('cis = ["nist"]', 'cis = ["ab:cd"]'))
    assert main(["config", "check", str(path)]) == EXIT_FAILED
    assert "line 14: listener[1].cis: CI 'ab:cd' is not in the PKI" in capsys.readouterr().err


# --- a real process ------------------------------------------------------------------------------------------


def test_smdp_serve_with_a_config_file(tmp_path: Path) -> None:
    """`smdp serve --config`: every listener announced, server.json lists them, SIGTERM stops it cleanly."""
    client_certs(tmp_path / "certs")
    data = tmp_path / "data"
    data.mkdir()
    assert main(["operator", "add", "acme", "--data-dir", str(data)]) == 0
    (tmp_path / "smdp.toml").write_text(
        'data_dir = "data"\n[[listener]]\nname = "nist"\nport = 0\ncis = ["nist"]\ninterfaces = ["es9"]\n'
        '[[listener]]\nname = "brainpool"\nport = 0\ncis = ["brainpool"]\ninterfaces = ["es9"]\n'
        '[[listener]]\nname = "ops"\nport = 0\ninterfaces = ["es2", "admin"]\nclient_auth = "mtls"\n'
        '[[listener.operator]]\nname = "acme"\nclient_ca = "certs/operator-ca.crt.pem"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMDP_")}
    process = subprocess.Popen([*SMDP, "serve", "--config", str(tmp_path / "smdp.toml")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)  # fmt: skip
    lines: list[str] = []

    def collect() -> None:
        assert process.stdout is not None
        lines.extend(line.rstrip() for line in process.stdout)

    threading.Thread(target=collect, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None and sum("smdp: listener " in x for x in lines) < 3:
            time.sleep(0.05)
        announced = [x for x in lines if x.startswith("smdp: listener ")]
        assert len(announced) == 3, (lines, process.stderr.read() if process.poll() is not None and process.stderr else "")
        assert "nist on https://127.0.0.1:" in announced[0] and "ES9+, CIs nist " in announced[0]
        assert "ops on https://127.0.0.1:" in announced[2] and "operators by TLS client certificate" in announced[2]
        info = json.loads((data / "server.json").read_text())
        assert [(x["name"], x["interfaces"], x["clientAuth"]) for x in info["listeners"]] == [
            ("nist", ["es9"], None), ("brainpool", ["es9"], None), ("ops", ["es2", "admin"], "mtls")]  # fmt: skip
        assert info["address"] == info["listeners"][0]["address"] and info["operator_address"] == info["listeners"][2]["address"]
        assert [x["cis"][0].split()[0] for x in info["listeners"][:2]] == ["nist", "brainpool"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert not (data / "server.json").exists()
