"""Ed25519 signatures over a model_dir's manifest (optional authenticity on top of hashes).

The manifest lists the sha256 of every file of a model_dir, so a signature over the
exact bytes of ``manifest.json`` covers the whole folder. ``sdk keygen`` writes a key
pair, ``sdk export --sign KEY`` writes ``manifest.sig`` beside the manifest, and
``Detector(..., trusted_keys=[PUB])`` / ``sdk serve --trusted-keys PUB`` refuse a
model_dir that is unsigned or whose signature matches none of the trusted keys.

``manifest.sig`` is JSON: ``{"algorithm": "ed25519", "key_sha256": hex digest of the
raw 32-byte public key, "signature": base64 of the 64-byte signature}``. Keys are PEM
files (PKCS#8 private, SubjectPublicKeyInfo public), read with ``cryptography``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from sdk.errors import ConfigError, ModelDirError, require

SIGNATURE_NAME = "manifest.sig"
ALGORITHM = "ed25519"


def _ed25519():
    module = require("cryptography.hazmat.primitives.asymmetric.ed25519", extra="sign", purpose="model_dir signing")
    from cryptography.hazmat.primitives import serialization

    return module, serialization


def generate_keypair(private_path: str | os.PathLike, public_path: str | os.PathLike) -> None:
    """Write a new Ed25519 private key (PEM, file mode 0600) and its public key (PEM)."""
    ed25519, serialization = _ed25519()
    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(f"{path} exists; choose another name (keys are never overwritten)")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private from the first byte
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))


def load_private_key(path: str | os.PathLike) -> Any:
    ed25519, serialization = _ed25519()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the private key {path} ({exc}): pass a PEM file written by `sdk keygen`") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key: create one with `sdk keygen`")
    return key


def load_public_keys(keys: Iterable[Any]) -> list[Any]:
    """Ed25519 public keys from PEM file paths (or key objects, passed through)."""
    ed25519, serialization = _ed25519()
    out = []
    for item in keys:
        if isinstance(item, ed25519.Ed25519PublicKey):
            out.append(item)
            continue
        try:
            key = serialization.load_pem_public_key(Path(item).read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read the trusted public key {item} ({exc}): pass a PEM file written by "
                              "`sdk keygen`") from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ConfigError(f"{item} is not an Ed25519 public key: create a key pair with `sdk keygen`")
        out.append(key)
    if not out:
        raise ConfigError("trusted_keys is empty: pass at least one public key file")
    return out


def key_id(public_key: Any) -> str:
    _, serialization = _ed25519()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign_manifest(manifest_bytes: bytes, private_key_path: str | os.PathLike) -> str:
    """The ``manifest.sig`` text for ``manifest_bytes`` signed with the key at ``private_key_path``."""
    key = load_private_key(private_key_path)
    record = {
        "algorithm": ALGORITHM,
        "key_sha256": key_id(key.public_key()),
        "signature": base64.b64encode(key.sign(manifest_bytes)).decode("ascii"),
    }
    return json.dumps(record, indent=2) + "\n"


def sign_model_dir(model_dir: str | os.PathLike, private_key_path: str | os.PathLike) -> Path:
    """Write ``model_dir/manifest.sig`` for its current ``manifest.json``; returns its path."""
    from sdk.checkpoint import write_atomic
    from sdk.manifest import MANIFEST_NAME

    root = Path(model_dir)
    text = sign_manifest((root / MANIFEST_NAME).read_bytes(), private_key_path)
    return write_atomic(root / SIGNATURE_NAME, lambda f: f.write(text.encode("ascii")))


def verify_manifest(root: Path, manifest_bytes: bytes, trusted_keys: Iterable[Any]) -> None:
    """``ModelDirError`` unless ``root/manifest.sig`` is a valid signature of
    ``manifest_bytes`` by one of ``trusted_keys``."""
    keys = load_public_keys(trusted_keys)
    sig_path = root / SIGNATURE_NAME
    if not sig_path.is_file():
        raise ModelDirError(f"{root} is not signed (no {SIGNATURE_NAME}) but trusted keys were given: export it "
                            "with `sdk export --sign KEY`, or load it without trusted keys")
    try:
        record = json.loads(sig_path.read_text(encoding="utf-8"))
        signature = base64.b64decode(record["signature"], validate=True)
        if record.get("algorithm") != ALGORITHM:
            raise ValueError(f"algorithm {record.get('algorithm')!r}")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"{sig_path} is malformed ({type(exc).__name__}: {exc}); re-sign the model_dir") from None
    from cryptography.exceptions import InvalidSignature

    for key in keys:
        try:
            key.verify(signature, manifest_bytes)
            return
        except InvalidSignature:
            continue
    raise ModelDirError(f"{root}: the manifest signature matches none of the {len(keys)} trusted key(s): the "
                        "model_dir was modified after signing or signed with another key; do not run it")
