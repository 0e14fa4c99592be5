"""Realisations: which store path a content-addressed derivation's output was built as.

Nix keeps them in binary caches in two generations, both in the "realisation" records:

- Nix <= 2.34: `realisations/<id>.doi`, the id being `sha256:<hex>!<output>` (the derivation's
  hash modulo), the value `{"id", "outPath", "signatures": ["name:base64"],
  "dependentRealisations": {id: outPath}}`;
- Nix >= 2.35: `build-trace-v2/<drv basename>/<output>.doi`, the value `{"outPath",
  "signatures"}` (a signature a `"name:base64"` string or a `{"keyName", "sig"}` object).

The record keys are Nix's own ids, `sha256:<hex>!out` and `<drv basename>^out`: no store path
or output name holds `:`, `!` or `^`, so the two cannot collide. A value is checked here (shape,
size, names, signatures) and kept as it was sent, so it is served byte for byte, unless the
server signs it on the way out (`with_signatures`), as it signs narinfos.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Sequence

from castore.errors import ValidationError
from store.pathinfo.model import DRV_SUFFIX
from store.signing import SecretKey, Signature
from store.storepath import StorePath

NAMESPACE = "realisation"
REALISATION_LIMIT = 1 << 20
"""A value's size limit: an old-style realisation lists its dependencies, a few hundred bytes each."""
KEY_LIMIT = 255
_OUTPUT = re.compile(r"[A-Za-z0-9+\-._?=]{1,211}")
_DRV_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_HASHED_FIELDS = {"id", "outPath", "signatures", "dependentRealisations"}
_BUILT_FIELDS = {"outPath", "signatures"}


def hashed_id(text: str) -> str:
    """`sha256:<hex>!<output>` (Nix <= 2.34's derivation output id), checked; it is the record key."""
    drv_hash, sep, output = text.rpartition("!")
    if not sep or not _DRV_HASH.fullmatch(drv_hash):
        raise ValidationError(f"{text[:120]!r} is not a derivation output id (sha256:<hex>!<output>)")
    return _keyed(drv_hash, "!", output)


def built_id(drv: str, output: str) -> str:
    """`<drv basename>^<output>` (Nix >= 2.35's key: the derivation's store path), checked."""
    if not StorePath.from_basename(drv).name.endswith(DRV_SUFFIX):
        raise ValidationError(f"{drv[:120]!r} is not a derivation")
    return _keyed(drv, "^", output)


def _keyed(prefix: str, sep: str, output: str) -> str:
    if not _OUTPUT.fullmatch(output):
        raise ValidationError(f"invalid output name {output[:80]!r}")
    key = f"{prefix}{sep}{output}"
    if len(key) > KEY_LIMIT:
        raise ValidationError(f"derivation output id longer than {KEY_LIMIT} characters")
    return key


def check_hashed(key: str, body: bytes) -> StorePath:
    """A Nix <= 2.34 realisation for `key` (from hashed_id); its output path."""
    value = _object(body, _HASHED_FIELDS)
    if value.get("id") != key:
        raise ValidationError(f"the realisation's id {str(value.get('id'))[:120]!r} is not {key!r}")
    for text in _list(value, "signatures"):
        Signature.parse(_string(text, "a signature"))
    dependents = value.get("dependentRealisations", {})
    if not isinstance(dependents, dict):
        raise ValidationError("dependentRealisations is not an object")
    for dep_id, dep_path in dependents.items():
        hashed_id(dep_id)
        _store_path(dep_path)
    return _store_path(value.get("outPath"))


def check_built(body: bytes) -> StorePath:
    """A Nix >= 2.35 build trace entry's value; its output path."""
    value = _object(body, _BUILT_FIELDS)
    for sig in _list(value, "signatures"):
        if isinstance(sig, dict):
            _signature_object(sig)
        else:
            Signature.parse(_string(sig, "a signature"))
    return _store_path(value.get("outPath"))


def with_signatures(key: str, body: bytes, keys: Sequence[SecretKey]) -> bytes:
    """A checked value (of record `key`) with a signature by each key added, over the fingerprint
    Nix verifies: the realisation without its signatures, as nlohmann's compact dump (keys sorted).

    Nix <= 2.34 signs `{"dependentRealisations", "id", "outPath"}`; the later ones of those
    versions write `dependentRealisations` empty whatever the uploader sent, so when it is not
    empty a second signature covers that form. Nix >= 2.35 signs `{"key": {"drvPath",
    "outputName"}, "value": {"outPath"}}` and writes signatures as `{"keyName", "sig"}`.
    """
    value = json.loads(body)
    drv, built, output = key.partition("^")
    if built:
        message = {"key": {"drvPath": drv, "outputName": output}, "value": {"outPath": value["outPath"]}}
        added: list[Any] = [_signature_json(k.sign(_dump(message))) for k in keys]
    else:
        dependents = value.get("dependentRealisations", {})
        forms = [dependents, {}] if dependents else [dependents]
        messages = [_dump({"dependentRealisations": d, "id": key, "outPath": value["outPath"]}) for d in forms]
        added = [str(k.sign(m)) for k in keys for m in messages]
    value["signatures"] = [*value.get("signatures", []), *added]
    return json.dumps(value, separators=(",", ":")).encode()


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _signature_json(sig: Signature) -> dict[str, str]:
    return {"keyName": sig.key_name, "sig": base64.b64encode(sig.data).decode()}


def _object(body: bytes, fields: set[str]) -> dict[str, Any]:
    if len(body) > REALISATION_LIMIT:
        raise ValidationError(f"realisation larger than {REALISATION_LIMIT} bytes")
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValidationError(f"realisation is not JSON: {str(e)[:120]}") from None
    if not isinstance(value, dict):
        raise ValidationError("realisation is not a JSON object")
    unknown = sorted(set(value) - fields)
    if unknown:
        raise ValidationError(f"unknown realisation field {unknown[0][:80]!r}")
    if "outPath" not in value:
        raise ValidationError("realisation has no outPath")
    return value


def _list(value: dict[str, Any], field: str) -> list[Any]:
    items = value.get(field, [])
    if not isinstance(items, list):
        raise ValidationError(f"{field} is not a list")
    return items


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} is not a string")
    return value


def _store_path(value: Any) -> StorePath:
    """An output path as realisations write it (and Nix reads it): a basename."""
    return StorePath.from_basename(_string(value, "a realisation's store path"))


def _signature_object(sig: dict[str, Any]) -> Signature:
    if set(sig) != {"keyName", "sig"}:
        raise ValidationError("a signature object has exactly keyName and sig")
    try:
        data = base64.b64decode(_string(sig["sig"], "sig"), validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise ValidationError("a signature's sig is not base64") from None
    return Signature(_string(sig["keyName"], "keyName"), data)
