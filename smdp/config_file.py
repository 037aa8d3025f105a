"""``smdp serve --config FILE``: the lab SM-DP+'s configuration file (TOML), parsed and checked.

One file describes a whole lab server: where its state is (``data_dir``, ``database_url``, ``pki``), the
options ``smdp serve`` also takes as flags, and any number of ``[[listener]]`` tables, each an HTTPS
listener of the same process with its own port, TLS certificate, CIs (which of the PKI's CIs its ES9+
offers), interfaces (ES9+, ES2+, /admin) and, for ES2+, how operators authenticate (API token, mutual TLS
or both, see smdp.web.client_auth).  docs/configuration.md has the format and a full example.

Precedence, for every option the file can set: a command-line flag beats an ``SMDP_*`` environment
variable (``SMDP_DATA_DIR``, ``SMDP_DATABASE_URL``, ``SMDP_PKI``) beats the file beats the default (for the
database URL: the URL the data directory remembers, then SQLite in it).  The listeners are the file's
alone: with ``[[listener]]`` tables, ``--host``, ``--port``, ``--operator-host`` and ``--operator-port``
are refused rather than guessed at.

The core is sans I/O: :func:`parse_config` takes the file's text (and its path, for relative paths and
messages) and checks everything it can see there; :func:`load_config` reads the file and then the
certificates it names.  Every error is one line naming the file, the line and the key
(``smdp.toml, line 12: listener[2].client_auth: ...``).  tomllib reports no positions for valid TOML, so
:class:`_Lines` finds a key's line by scanning the text: table headers give each table its line range,
and the key is looked for in its table's range.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509

from smdp.pki.store import PkiConfigError, ServerCredentials, load_certificate
from smdp.web.client_auth import CLIENT_AUTH_MODES, ClientAuth, ClientCertificate, fingerprint
from smdp.web.limits import Limits

__all__ = [
    "INTERFACES",
    "ConfigError",
    "FlagConflict",
    "ListenerConfig",
    "OperatorCredential",
    "ServeConfig",
    "ServeOptions",
    "Setting",
    "effective_options",
    "load_config",
    "load_listener_files",
    "parse_config",
]

#: The interfaces a listener may serve ("smds", the SM-DS interface, is not implemented yet).
INTERFACES = ("es9", "es2", "admin")
CURVE_NAMES = ("nist", "brainpool")
DEFAULT_HOST = "127.0.0.1"


class ConfigError(ValueError):
    """The configuration file is unreadable, not TOML, or has a key that is unknown, of the wrong type or
    inconsistent; the message names the file, the line and the key."""

    def __init__(self, message: str, *, line: int | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.key = key


class FlagConflict(ValueError):
    """A command-line flag that cannot be combined with the file (a usage error)."""


# --- where keys are in the text -----------------------------------------------------------------------------

_BARE = r"[A-Za-z0-9_-]+"
_SEGMENT = re.compile(rf'\s*({_BARE}|"(?:[^"\\]|\\.)*"|\'[^\']*\')\s*')
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")

Path_ = tuple[str | int, ...]  # a table's place in the document: ("listener", 0, "operator", 1)


def _segments(dotted: str) -> list[str] | None:
    """The parts of a dotted TOML key (``a."b.c".d``), unquoted; None if it is not one."""
    parts, pos = [], 0
    while True:
        match = _SEGMENT.match(dotted, pos)
        if match is None:
            return None
        parts.append(match.group(1).strip("\"'"))
        pos = match.end()
        if pos == len(dotted):
            return parts
        if dotted[pos] != ".":
            return None
        pos += 1


def _key_pattern(parts: Sequence[str]) -> re.Pattern[str]:
    one = [rf"(?:{re.escape(p)}|\"{re.escape(p)}\"|'{re.escape(p)}')" for p in parts]
    return re.compile(r"^\s*" + r"\s*\.\s*".join(one) + r"\s*=")


class _Lines:
    """Line numbers (1-based) of the tables and keys of a TOML text that tomllib has accepted."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.sections: list[tuple[Path_, int, int]] = []  # (table, header line, end line exclusive)
        arrays: dict[Path_, int] = {}
        current: Path_ = ()
        start = 0
        in_string = False
        for number, line in enumerate(self.lines, 1):
            if in_string or line.count('"""') % 2 or line.count("'''") % 2:
                if line.count('"""') % 2 or line.count("'''") % 2:
                    in_string = not in_string
                continue
            match = _HEADER.match(line)
            parts = _segments(match.group(2)) if match else None
            if match is None or parts is None:
                continue
            self.sections.append((current, start, number))
            concrete: Path_ = ()
            for i, part in enumerate(parts):
                concrete = (*concrete, part)
                if i == len(parts) - 1 and match.group(1) == "[[":
                    arrays[concrete] = arrays.get(concrete, 0) + 1
                    concrete = (*concrete, arrays[concrete] - 1)
                elif concrete in arrays:
                    concrete = (*concrete, arrays[concrete] - 1)
            current, start = concrete, number
        self.sections.append((current, start, len(self.lines) + 1))

    def table(self, table: Path_) -> int | None:
        """The line of the table's header (None: the top level, or a table made by dotted keys)."""
        for path, header, _end in self.sections:
            if path == table and header:
                return header
        return None

    def key(self, table: Path_, key: str) -> int | None:
        """The line where ``key`` of ``table`` is set: in the table's own section, or as a dotted key in a
        section above it (``limits.body_timeout = 5`` at the top level)."""
        for cut in range(len(table), -1, -1):
            head, rest = table[:cut], table[cut:]
            if any(isinstance(p, int) for p in rest):
                continue
            pattern = _key_pattern([*(str(p) for p in rest), key])
            for path, header, end in self.sections:
                if path != head:
                    continue
                for number in range(header + 1, end):
                    if pattern.match(self.lines[number - 1]):
                        return number
        # an inline table ({name = "x", ...}): the first line of the table's section naming the key
        loose = re.compile(rf"(?:^|[{{,\s]){re.escape(key)}\s*=")
        for path, header, end in sorted(self.sections, key=lambda section: -len(section[0])):
            if path == table[: len(path)]:
                for number in range(header + 1, end):
                    if loose.search(self.lines[number - 1]):
                        return number
        return None


def _dotted(table: Path_, key: str | None = None) -> str:
    """``listener[2].operator[1].client_cert`` (array elements counted from 1, as people count them)."""
    text = ""
    for part in table:
        text += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if text else part)
    if key is not None:
        text = f"{text}.{key}" if text else key
    return text


class _Checker:
    """Type and value checks that raise ConfigError with the file, line and key."""

    def __init__(self, text: str, path: Path) -> None:
        self.path = path
        self.lines = _Lines(text)

    def where(self, table: Path_, key: str | None = None) -> int:
        line = self.lines.key(table, key) if key is not None else None
        if line is None:
            line = self.lines.table(table)
        if line is None and len(table) >= 2 and isinstance(table[-1], int):  # an inline table in an array
            line = self.lines.key(table[:-2], str(table[-2]))
        elif line is None and table:
            line = self.lines.key(table[:-1], str(table[-1]))
        return line or 1

    def error(self, table: Path_, key: str | None, problem: str) -> ConfigError:
        line = self.where(table, key)
        name = _dotted(table, key)
        return ConfigError(f"{self.path}, line {line}: {name}: {problem}", line=line, key=name)

    def known(self, table: Path_, values: Mapping[str, Any], allowed: Sequence[str]) -> None:
        for key in values:
            if key not in allowed:
                raise self.error(table, key, f"unknown key (allowed here: {', '.join(allowed)})")

    def string(self, table: Path_, values: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
        value = values.get(key)
        if value is None:
            if required:
                raise self.error(table, key, "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(table, key, f"must be a non-empty string, not {_kind(value)}")
        return value

    def boolean(self, table: Path_, values: Mapping[str, Any], key: str) -> bool | None:
        value = values.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.error(table, key, f"must be true or false, not {_kind(value)}")
        return value

    def integer(self, table: Path_, values: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
        value = values.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(table, key, f"must be an integer, not {_kind(value)}")
        if not low <= value <= high:
            raise self.error(table, key, f"{value} is not within {low}..{high}")
        return value

    def number(self, table: Path_, values: Mapping[str, Any], key: str) -> float | None:
        value = values.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(table, key, f"must be a number, not {_kind(value)}")
        return float(value)

    def strings(self, table: Path_, values: Mapping[str, Any], key: str) -> list[str] | None:
        value = values.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(table, key, f"must be a list of non-empty strings, not {_kind(value)}")
        return list(value)

    def file(self, table: Path_, values: Mapping[str, Any], key: str) -> Path | None:
        value = self.string(table, values, key)
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.path.parent / path


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array" if not value or not isinstance(value[0], dict) else "an array of tables"
    if isinstance(value, str):
        return f"the string {value!r}" if value.strip() else "an empty string"
    return f"{type(value).__name__} {value!r}"


# --- the configuration ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorCredential:
    """``[[listener.operator]]``: the TLS client certificate an operator authenticates with on a listener,
    pinned (``client_cert``) or through its issuing CA (``client_ca`` and the subject CN)."""

    name: str
    client_cert: Path | None = None
    client_ca: Path | None = None
    subject_cn: str | None = None
    table: Path_ = ()
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)  # set by load_config

    def describe(self) -> str:
        if self.client_cert is not None:
            pinned = f" sha256 {fingerprint(self.certificate)}" if self.certificate is not None else ""
            return f"pinned certificate {self.client_cert}{pinned}"
        return f"certificates issued by {self.client_ca} with subject CN {self.subject_cn or self.name!r}"


@dataclass(frozen=True)
class ListenerConfig:
    """``[[listener]]``: one HTTPS listener of the server."""

    name: str
    port: int
    host: str = DEFAULT_HOST
    interfaces: tuple[str, ...] = INTERFACES
    cis: tuple[str, ...] = ()  # "nist", "brainpool" or a CI's subjectKeyIdentifier in hex; () = every CI
    tls_cert: Path | None = None  # None: the PKI's DPtls certificate and key
    tls_key: Path | None = None
    client_auth: str = "token"
    operators: tuple[OperatorCredential, ...] = ()
    accept_expired_client_certs: bool = False
    table: Path_ = ()
    checker: _Checker | None = field(default=None, repr=False, compare=False)

    def error(self, key: str | None, problem: str, *, table: Path_ | None = None) -> ConfigError:
        """A ConfigError about ``key`` of this listener, or of one of its tables (an operator's), naming its
        line in the file when it came from one."""
        if self.checker is None:
            return ConfigError(f"listener {self.name!r}: {key + ': ' if key else ''}{problem}", key=key)
        return self.checker.error(self.table if table is None else table, key, problem)

    @property
    def operator_facing(self) -> bool:
        return "es2" in self.interfaces or "admin" in self.interfaces

    def client_auth_policy(self) -> ClientAuth:
        """The listener's smdp.web.client_auth policy (the operator certificates must have been loaded)."""
        entries = []
        for op in self.operators:
            if op.certificate is None:
                raise ValueError(f"listener {self.name!r}: the certificate of operator {op.name!r} is not loaded")
            if op.client_cert is not None:
                entries.append(ClientCertificate(op.name, pinned=op.certificate))
            else:
                entries.append(ClientCertificate(op.name, ca=op.certificate, subject_cn=op.subject_cn))
        return ClientAuth(self.client_auth, tuple(entries), self.accept_expired_client_certs)

    def credentials(self, credentials: ServerCredentials) -> ServerCredentials:
        """The PKI's credentials restricted to this listener's CIs (all of them when it names none)."""
        if not self.cis:
            return credentials
        try:
            return credentials.restricted_to(self.cis)
        except PkiConfigError as exc:
            raise self.error("cis", str(exc)) from None


@dataclass(frozen=True)
class ServeConfig:
    """The parsed file: top-level options (only those it sets, file paths resolved) and the listeners."""

    path: Path
    options: dict[str, Any] = field(default_factory=dict)
    listeners: tuple[ListenerConfig, ...] = ()
    lines: dict[str, int] = field(default_factory=dict)  # option name ("limits.body_timeout") → line


_LIMIT_KEYS = (
    "tls_handshake_timeout",
    "tls_shutdown_timeout",
    "header_timeout",
    "body_timeout",
    "keepalive_timeout",
    "max_connections",
    "backlog",
)
_TOP_KEYS = (
    "data_dir",
    "database_url",
    "pki",
    "addresses",
    "host",
    "port",
    "operator_host",
    "operator_port",
    "lab_hex_confirmation_code",
    "session_retention_days",
    "verbose",
    "limits",
    "listener",
)
_LISTENER_KEYS = (
    "name",
    "host",
    "port",
    "interfaces",
    "cis",
    "tls_cert",
    "tls_key",
    "client_auth",
    "accept_expired_client_certs",
    "operator",
)
_OPERATOR_KEYS = ("name", "client_cert", "client_ca", "subject_cn")
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "*")


def parse_config(text: str, path: Path) -> ServeConfig:
    """Parse and check the configuration ``text`` of the file ``path`` (relative paths in it are relative to
    its directory); no file is read.  ConfigError names the line and the key of the first problem."""
    path = Path(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        line = int(found.group(1)) if found else max(1, len(text.splitlines()))  # "at end of document"
        raise ConfigError(f"{path}: not valid TOML: {exc}", line=line) from None
    check = _Checker(text, path)
    top: Path_ = ()
    check.known(top, doc, _TOP_KEYS)
    options: dict[str, Any] = {}
    for key in ("data_dir", "pki"):
        options[key] = check.file(top, doc, key)
    for key in ("database_url", "host", "operator_host"):
        options[key] = check.string(top, doc, key)
    for key in ("port", "operator_port"):
        options[key] = check.integer(top, doc, key, 0, 65535)
    for key in ("lab_hex_confirmation_code", "verbose"):
        options[key] = check.boolean(top, doc, key)
    options = {key: value for key, value in options.items() if value is not None}
    if (addresses := check.strings(top, doc, "addresses")) is not None:
        options["addresses"] = addresses
    if (days := check.number(top, doc, "session_retention_days")) is not None:
        if days <= 0:
            raise check.error(top, "session_retention_days", "must be a positive number of days")
        options["session_retention_days"] = days
    lines = {key: check.where(top, key) for key in options}
    if "limits" in doc:
        limits = doc["limits"]
        if not isinstance(limits, dict):
            raise check.error(top, "limits", f"must be a table ([limits]), not {_kind(limits)}")
        table: Path_ = ("limits",)
        check.known(table, limits, _LIMIT_KEYS)
        for key in limits:
            number: float | int | None
            if key in ("max_connections", "backlog"):
                number = check.integer(table, limits, key, 1, 1_000_000)
            else:
                number = check.number(table, limits, key)
            one: dict[str, Any] = {key: number}
            try:
                Limits(**one)
            except ValueError as exc:
                raise check.error(table, key, str(exc).removeprefix(f"{key} ")) from None
            options[f"limits.{key}"] = number
            lines[f"limits.{key}"] = check.where(table, key)
    listeners = _listeners(check, doc)
    if listeners:
        for key in ("host", "port", "operator_host", "operator_port"):
            if key in options:
                raise check.error(top, key, "not with [[listener]] tables: give each listener its host and port")
    return ServeConfig(path, options, listeners, lines)


def _listeners(check: _Checker, doc: dict[str, Any]) -> tuple[ListenerConfig, ...]:
    entries = doc.get("listener")
    if entries is None:
        return ()
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise check.error((), "listener", f"must be [[listener]] tables, not {_kind(entries)}")
    listeners = [_listener(check, entry, ("listener", i)) for i, entry in enumerate(entries)]
    names: dict[str, ListenerConfig] = {}
    for listener in listeners:
        if listener.name in names:
            raise listener.error("name", f"{listener.name!r} is the name of another listener too")
        names[listener.name] = listener
    for i, one in enumerate(listeners):
        for other in listeners[:i]:
            if one.port and one.port == other.port and (
                one.host == other.host or one.host in _WILDCARD_HOSTS or other.host in _WILDCARD_HOSTS
            ):
                raise one.error("port", f"{one.host}:{one.port} collides with listener {other.name!r} ({other.host}:{other.port})")
    if not any("es9" in listener.interfaces for listener in listeners):
        raise check.error(("listener", 0), "interfaces", 'no listener serves "es9": devices could not reach the SM-DP+')
    return tuple(listeners)


def _listener(check: _Checker, values: dict[str, Any], table: Path_) -> ListenerConfig:
    check.known(table, values, _LISTENER_KEYS)
    index = table[-1]
    assert isinstance(index, int)
    name = check.string(table, values, "name") or f"listener{index + 1}"
    host = check.string(table, values, "host") or DEFAULT_HOST
    port = check.integer(table, values, "port", 0, 65535)
    if port is None:
        raise check.error(table, "port", "missing (0: any free port)")
    interfaces = check.strings(table, values, "interfaces")
    if interfaces is not None:
        for value in interfaces:
            if value not in INTERFACES:
                later = " (the SM-DS interface is not implemented yet)" if value == "smds" else ""
                raise check.error(table, "interfaces", f"{value!r} is not one of {', '.join(map(repr, INTERFACES))}{later}")
        if not interfaces or len(set(interfaces)) != len(interfaces):
            raise check.error(table, "interfaces", "must name one or more interfaces, each once")
    cis = check.strings(table, values, "cis")
    for selector in cis or ():
        digits = selector.replace(":", "").strip().lower()
        if selector.lower() not in CURVE_NAMES and not (re.fullmatch(r"(?:[0-9a-f]{2})+", digits)):
            raise check.error(table, "cis", f"{selector!r} is neither a curve (nist, brainpool) nor a CI subjectKeyIdentifier in hex")
    if cis is not None and not cis:
        raise check.error(table, "cis", "must name at least one CI (leave it out for all of them)")
    tls_cert, tls_key = check.file(table, values, "tls_cert"), check.file(table, values, "tls_key")
    if (tls_cert is None) != (tls_key is None):
        missing = "tls_key" if tls_key is None else "tls_cert"
        raise check.error(table, "tls_cert" if tls_cert is not None else "tls_key", f"needs {missing} too")
    client_auth = check.string(table, values, "client_auth") or "token"
    if client_auth not in CLIENT_AUTH_MODES:
        raise check.error(table, "client_auth", f"{client_auth!r} is not one of {', '.join(map(repr, CLIENT_AUTH_MODES))}")
    expired = check.boolean(table, values, "accept_expired_client_certs") or False
    operators = _operators(check, values, table)
    listener = ListenerConfig(
        name=name,
        port=port,
        host=host,
        interfaces=tuple(interfaces) if interfaces is not None else INTERFACES,
        cis=tuple(c.strip() for c in cis or ()),
        tls_cert=tls_cert,
        tls_key=tls_key,
        client_auth=client_auth,
        operators=operators,
        accept_expired_client_certs=expired,
        table=table,
        checker=check,
    )
    if client_auth != "token":
        if not listener.operator_facing:
            raise listener.error("client_auth", f'{client_auth!r} is for ES2+ and /admin; this listener serves neither')
        if not operators:
            raise listener.error(
                "client_auth", f"{client_auth!r} needs [[listener.operator]] tables naming the operators and their certificates"
            )
        if "es9" in listener.interfaces:
            raise listener.error(
                "client_auth", f'{client_auth!r} asks every client for a certificate, devices have none: serve "es9" on another listener'
            )
    else:
        if operators:
            raise check.error(operators[0].table, None, 'operator certificates need client_auth = "mtls" or "both"')
        if expired:
            raise listener.error("accept_expired_client_certs", 'only with client_auth = "mtls" or "both"')
    return listener


def _operators(check: _Checker, values: dict[str, Any], table: Path_) -> tuple[OperatorCredential, ...]:
    entries = values.get("operator")
    if entries is None:
        return ()
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise check.error(table, "operator", f"must be [[listener.operator]] tables, not {_kind(entries)}")
    found = []
    for i, entry in enumerate(entries):
        where: Path_ = (*table, "operator", i)
        check.known(where, entry, _OPERATOR_KEYS)
        name = check.string(where, entry, "name", required=True)
        assert name is not None
        if len(name) > 64:
            raise check.error(where, "name", "an operator name is 1 to 64 characters")
        cert, ca = check.file(where, entry, "client_cert"), check.file(where, entry, "client_ca")
        if (cert is None) == (ca is None):
            raise check.error(where, "client_cert", "give client_cert (the pinned certificate) or client_ca (its issuing CA), one of them")
        subject_cn = check.string(where, entry, "subject_cn")
        if subject_cn is not None and ca is None:
            raise check.error(where, "subject_cn", "only with client_ca (a pinned certificate is matched whole)")
        found.append(OperatorCredential(name, cert, ca, subject_cn, where))
    return tuple(found)


def load_config(path: Path) -> ServeConfig:
    """Read and parse the configuration file, then load the certificates it names (each error names the
    key and its line): operator certificates and CAs (PEM or DER), and each listener's own TLS certificate
    and key, which must make a working TLS server context."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    config = parse_config(text, path.resolve())
    listeners = tuple(load_listener_files(listener) for listener in config.listeners)
    return replace(config, listeners=listeners)


def load_listener_files(listener: ListenerConfig) -> ListenerConfig:
    """The listener with its operators' certificates loaded, after checking its TLS certificate and key."""
    if listener.tls_cert is not None and listener.tls_key is not None:
        from smdp.pki.tls import tls_server_context

        for key, file in (("tls_cert", listener.tls_cert), ("tls_key", listener.tls_key)):
            if not file.is_file():
                raise listener.error(key, f"{file}: file not found")
        try:
            tls_server_context(listener.tls_cert, listener.tls_key)
        except PkiConfigError as exc:
            raise listener.error("tls_cert", str(exc)) from None
        except OSError as exc:  # ssl.SSLError too: not PEM, or the key does not match the certificate
            raise listener.error("tls_cert", f"{listener.tls_cert} with {listener.tls_key}: {exc}") from None
    operators = []
    pinned: dict[str, str] = {}
    for op in listener.operators:
        key = "client_cert" if op.client_cert is not None else "client_ca"
        named = op.client_cert or op.client_ca
        assert named is not None
        try:
            certificate = load_certificate(named)
        except PkiConfigError as exc:
            raise listener.error(key, str(exc), table=op.table) from None
        if op.client_ca is not None:
            try:
                is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            except x509.ExtensionNotFound:
                is_ca = False
            if not is_ca:
                problem = f"{named} is not a CA certificate (basicConstraints CA:TRUE); pin it with client_cert instead"
                raise listener.error(key, problem, table=op.table)
        else:
            digest = fingerprint(certificate)
            if pinned.setdefault(digest, op.name) != op.name:
                raise listener.error(key, f"{named} is pinned for operator {pinned[digest]!r} too", table=op.table)
        operators.append(replace(op, certificate=certificate))
    return replace(listener, operators=tuple(operators))


# --- the effective options: flags, environment, file, defaults ---------------------------------------------------


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # "--port", "SMDP_DATA_DIR", "smdp.toml line 3", "default"


#: The options ``smdp serve`` takes from a flag (its argparse dest), the environment or the file, with their
#: defaults (None for data_dir, database_url and pki: smdp.config.load_settings decides).
SERVE_OPTIONS: dict[str, tuple[str, str | None, Any]] = {
    # name: (flag, environment variable, default)
    "data_dir": ("--data-dir", "SMDP_DATA_DIR", None),
    "database_url": ("--database-url", "SMDP_DATABASE_URL", None),
    "pki": ("--pki", "SMDP_PKI", None),
    "addresses": ("--address", None, []),
    "host": ("--host", None, DEFAULT_HOST),
    "port": ("--port", None, 8443),
    "operator_host": ("--operator-host", None, None),
    "operator_port": ("--operator-port", None, None),
    "lab_hex_confirmation_code": ("--lab-hex-confirmation-code", None, False),
    "session_retention_days": ("--session-retention-days", None, 30.0),
    "verbose": ("--verbose", None, False),
    **{f"limits.{key}": (f"--{key.replace('_', '-')}", None, getattr(Limits(), key)) for key in _LIMIT_KEYS},
}
_LISTENER_FLAGS = ("host", "port", "operator_host", "operator_port")


@dataclass(frozen=True)
class ServeOptions:
    """What ``smdp serve`` runs with, and where each value came from."""

    settings: dict[str, Setting]
    listeners: tuple[ListenerConfig, ...] = ()
    path: Path | None = None

    def __getitem__(self, name: str) -> Any:
        return self.settings[name].value

    def limits(self) -> Limits:
        return Limits(**{key: self[f"limits.{key}"] for key in _LIMIT_KEYS})


def effective_options(config: ServeConfig | None, flags: Mapping[str, Any], environ: Mapping[str, str]) -> ServeOptions:
    """Each option from the first that sets it: ``flags`` (option name → value; None, False or [] when the
    flag was not given), the environment, the file, the default.  FlagConflict for a listener flag
    (``--port``...) given with a file that has [[listener]] tables."""
    settings: dict[str, Setting] = {}
    for name, (flag, env, default) in SERVE_OPTIONS.items():
        given = flags.get(name)
        if not (given is None or given is False or given == []):  # not `in (...)`: 0 == False, and --port 0 is a port
            if config is not None and config.listeners and name in _LISTENER_FLAGS:
                raise FlagConflict(f"{flag}: {config.path} has [[listener]] tables; set the listeners' hosts and ports there")
            settings[name] = Setting(given, flag)
        elif env is not None and environ.get(env):
            settings[name] = Setting(environ[env], env)
        elif config is not None and name in config.options:
            settings[name] = Setting(config.options[name], f"{config.path.name} line {config.lines.get(name, 1)}")
        else:
            settings[name] = Setting(default, "default")
    return ServeOptions(settings, config.listeners if config is not None else (), config.path if config is not None else None)


# --- showing it ------------------------------------------------------------------------------------------------


def describe_listener(listener: ListenerConfig, credentials: ServerCredentials | None) -> dict[str, Any]:
    """One listener as ``smdp config check --json`` shows it (CIs resolved when the PKI is known)."""
    if credentials is not None:
        chains = listener.credentials(credentials).chains
        cis: list[str] = [f"{c.curve.value} {c.ci_pkid.hex()}" for c in chains]
    else:
        cis = list(listener.cis) or ["all"]
    return {
        "name": listener.name,
        "host": listener.host,
        "port": listener.port,
        "interfaces": list(listener.interfaces),
        "cis": cis,
        "tls": {"cert": str(listener.tls_cert), "key": str(listener.tls_key)} if listener.tls_cert else "the PKI's DPtls",
        "clientAuth": listener.client_auth if listener.operator_facing else None,
        "operators": [{"name": op.name, "credential": op.describe()} for op in listener.operators],
        "acceptExpiredClientCerts": listener.accept_expired_client_certs,
    }


def describe(options: ServeOptions, credentials: ServerCredentials | None, shown: Mapping[str, Any]) -> dict[str, Any]:
    """The effective configuration as JSON-able data: each option's value (``shown`` replaces values, e.g.
    the resolved data directory or a URL without its password) and source, and the listeners."""
    settings = {}
    for name, setting in options.settings.items():
        if options.listeners and name in _LISTENER_FLAGS:
            continue  # the listeners say where the server listens
        value = shown.get(name, setting.value)
        settings[name] = {"value": str(value) if isinstance(value, Path) else value, "source": setting.source}
    listeners = [describe_listener(listener, credentials) for listener in options.listeners]
    return {"file": str(options.path) if options.path else None, "settings": settings, "listeners": listeners}


def describe_text(description: Mapping[str, Any]) -> str:
    """:func:`describe` as text, one option a line."""
    out = [f"configuration file: {description['file']}"]
    settings = description["settings"]
    width = max(len(name) for name in settings)
    for name, setting in settings.items():
        value = setting["value"]
        if isinstance(value, list):
            text = ", ".join(map(str, value))
        else:
            text = "-" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        out.append(f"  {name:<{width}}  {text or '-'}  ({setting['source']})")
    if not description["listeners"]:
        out.append("listeners: --host/--port (and --operator-port) as the options above say")
    for listener in description["listeners"]:
        out.append(f"listener {listener['name']!r} on {listener['host']}:{listener['port']}")
        out.append(f"  interfaces   {', '.join(listener['interfaces'])}")
        out.append(f"  cis          {'; '.join(listener['cis'])}")
        tls = listener["tls"]
        out.append(f"  tls          {tls if isinstance(tls, str) else tls['cert'] + ' / ' + tls['key']}")
        if listener["clientAuth"] is not None:
            out.append(f"  client_auth  {listener['clientAuth']}")
        for op in listener["operators"]:
            out.append(f"  operator     {op['name']}: {op['credential']}")
        if listener["acceptExpiredClientCerts"]:
            out.append("  accept_expired_client_certs  true (lab option: expired client certificates are accepted)")
    return "\n".join(out)
