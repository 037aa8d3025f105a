"""A readable view of a SAIP profile package (TCA eUICC Profile Package): its PEs in order, the
ICCID (of the ProfileHeader and of EF.ICCID, both shown: they must agree, and ``profile import
--iccid`` rewrites both) and IMSI, the applications (NAAs and security domains) and the files each
PE creates or fills, as a dict (``smdp profile inspect --json``) or a text tree.
"""

from __future__ import annotations

import contextlib
from typing import Any

from smdp.profiles.saip import ProfilePackage, SaipError, decode_iccid

__all__ = ["file_content", "inspect_package", "render_tree"]

# PE alternative -> the application it creates, for the summary.
_APPLICATIONS = {"usim": "USIM", "isim": "ISIM", "csim": "CSIM", "opt-usim": "USIM (optional files)",
                 "opt-isim": "ISIM (optional files)", "opt-csim": "CSIM (optional files)",
                 "securityDomain": "security domain", "application": "Java Card application",
                 "rfm": "remote file management", "gsm-access": "GSM access", "df-5gs": "5GS files"}  # fmt: skip


def file_content(items: list[tuple[str, Any]]) -> bytes:
    """Bytes a SAIP ``File`` writes from offset 0 up to its first gap (fillFileOffset)."""
    content = b""
    for kind, item in items:
        if kind == "fillFileContent":
            content += bytes(item)
        elif kind == "fillFileOffset" and item:
            break
    return content


def _files(value: dict[str, Any]) -> list[dict[str, Any]]:
    files = []
    for key, member in value.items():
        if not (key.startswith(("ef-", "df-", "adf-")) or key == "mf") or not isinstance(member, list):
            continue
        fcp: dict[str, Any] = next((item for kind, item in member if kind == "fileDescriptor"), {})
        entry: dict[str, Any] = {"name": key}
        if "fileID" in fcp:
            entry["fileId"] = bytes(fcp["fileID"]).hex().upper()
        if "dfName" in fcp:
            entry["aid"] = bytes(fcp["dfName"]).hex().upper()
        if "efFileSize" in fcp:
            entry["size"] = int.from_bytes(fcp["efFileSize"], "big")
        content = file_content(member)
        if content:
            entry["content"] = content.hex().upper() if len(content) <= 64 else f"{len(content)} bytes"
        if key == "ef-iccid" and len(content) >= 10:
            with contextlib.suppress(ValueError):  # the swapped BCD is hard to read: the digits too
                entry["iccid"] = decode_iccid(content[:10])
        if any(kind == "doNotCreate" for kind, _ in member):
            entry["doNotCreate"] = True
        files.append(entry)
    return files


def _aid(value: dict[str, Any]) -> str | None:
    for key in ("instance", "sd-Header"):
        member = value.get(key)
        if isinstance(member, dict):
            for aid_key in ("instanceAID", "applicationLoadPackageAID"):
                if aid_key in member:
                    return bytes(member[aid_key]).hex().upper()
    return None


def inspect_package(package: ProfilePackage) -> dict[str, Any]:
    """The JSON-ready view of a (decoded, ideally validated) package."""
    header = package.header
    elements = []
    offset = 0
    for index, element in enumerate(package.elements):
        entry: dict[str, Any] = {"index": index, "pe": element.name, "offset": offset, "length": len(element.raw)}
        if element.identification is not None:
            entry["identification"] = element.identification
        value = element.value if isinstance(element.value, dict) else {}
        if "templateID" in value:
            entry["template"] = value["templateID"]
        files = _files(value)
        if files:
            entry["files"] = files
        if element.name in _APPLICATIONS:
            entry["application"] = _APPLICATIONS[element.name]
        aid = _aid(value)
        if aid:
            entry["aid"] = aid
        if element.name == "akaParameter":
            kind, parameters = value["algoConfiguration"]
            entry["algorithm"] = {1: "milenage", 2: "tuak", 3: "usim-test-algorithm"}.get(parameters.get("algorithmID"), kind) \
                if kind == "algoParameter" else kind  # fmt: skip
        if element.name in ("pinCodes", "pukCodes"):
            pins = value["pinCodes"][1] if element.name == "pinCodes" and value["pinCodes"][0] == "pinconfig" else []
            codes = value["pukCodes"] if element.name == "pukCodes" else pins
            entry["keyReferences"] = [f"{c['keyReference']:02X}" for c in codes]  # values are secrets: not shown
        elements.append(entry)
        offset += len(element.raw)
    try:
        imsi = package.imsi
    except SaipError:
        imsi = None
    try:
        ef_iccid = package.ef_iccid
    except SaipError:
        ef_iccid = None
    return {
        "iccid": package.iccid,
        "efIccid": ef_iccid,
        "imsi": imsi,
        "profileType": header.get("profileType"),
        "saipVersion": f"{header['major-version']}.{header['minor-version']}",
        "mandatoryServices": sorted(package.mandatory_services),
        "templates": list(package.mandatory_templates),
        "applications": sorted({_APPLICATIONS[e.name] for e in package.elements if e.name in _APPLICATIONS}),
        "size": len(package.der),
        "elements": elements,
    }


def render_tree(view: dict[str, Any]) -> str:
    """The view as an indented text tree."""
    lines = [
        f"profile package ({view['size']} bytes, SAIP {view['saipVersion']}): {view['profileType'] or '-'}",
        f"  ICCID {view['iccid']}   EF.ICCID {view.get('efIccid') or '-'}   IMSI {view['imsi'] or '-'}",
        f"  services: {', '.join(view['mandatoryServices'])}",
        f"  applications: {', '.join(view['applications']) or '-'}",
    ]
    for entry in view["elements"]:
        tail = []
        for key in ("identification", "template", "application", "aid", "algorithm"):
            if key in entry:
                tail.append(f"{'id' if key == 'identification' else key} {entry[key]}")
        if "keyReferences" in entry:
            tail.append(f"keys {','.join(entry['keyReferences'])}")
        lines.append(f"  #{entry['index']:<3} {entry['pe']:<22} {entry['length']:>5} B  {'  '.join(map(str, tail))}")
        for file in entry.get("files", []):
            details = [file[k] if k != "size" else f"{file[k]} B" for k in ("fileId", "aid", "size") if k in file]
            if "content" in file:
                details.append(f"= {file['content']}")
            if "iccid" in file:
                details.append(f"(ICCID {file['iccid']})")
            if file.get("doNotCreate"):
                details.append("(not created)")
            lines.append(f"  {'':4} {'└ ' + file['name']:<22} {' '.join(map(str, details))}")
    return "\n".join(lines)

