"""RSA keys for Alipay: which files to use, and generating them on a fresh machine.

Two key pairs take part in every payment:

* the merchant's (ours): its private key signs requests to Alipay; Alipay (or the
  sandbox) verifies them with its public key;
* Alipay's: its private key signs notifications and API answers; we verify them with
  ``ALIPAY_PUBLIC_KEY_FILE``.

When ``ALIPAY_APP_PRIVATE_KEY_FILE`` / ``ALIPAY_PUBLIC_KEY_FILE`` are not set, a merchant
pair and a sandbox ("Alipay") pair are generated once into the instance folder, so the
built-in sandbox gateway and the shop trust each other with no set-up. Private keys are
written with mode 0600 and created atomically (hard link of a finished temp file), so two
processes starting at once end up with one key, never a half-written or mixed pair.
"""

import base64
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MERCHANT_PRIVATE = "alipay_app_private_key.pem"
MERCHANT_PUBLIC = "alipay_app_public_key.pem"
SANDBOX_PRIVATE = "alipay_sandbox_private_key.pem"
SANDBOX_PUBLIC = "alipay_sandbox_public_key.pem"
KEY_BITS = 2048


class KeyFileError(Exception):
    """A configured key file is missing or is not an RSA key."""


@dataclass(frozen=True)
class GeneratedKeys:
    merchant_private: Path
    merchant_public: Path
    sandbox_private: Path
    sandbox_public: Path


def _write_atomically(path: Path, data: bytes, mode: int, exclusive: bool) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # fails if another process got there first: keep theirs
            except FileExistsError:
                pass
        else:
            os.replace(tmp, path)
            tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _ensure_pair(private_path: Path, public_path: Path) -> None:
    if not private_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        _write_atomically(private_path, pem, 0o600, exclusive=True)
    if not public_path.exists():
        # Derived from whichever private key won, so the pair always matches.
        public_pem = public_key_pem_from_private(private_path).encode()
        _write_atomically(public_path, public_pem, 0o644, exclusive=False)


def ensure_keys(instance_path: str | Path) -> GeneratedKeys:
    """Generate the merchant and sandbox key pairs in ``instance_path`` if absent.

    Returns the four paths. Existing files are never overwritten.
    """
    folder = Path(instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    keys = GeneratedKeys(
        merchant_private=folder / MERCHANT_PRIVATE,
        merchant_public=folder / MERCHANT_PUBLIC,
        sandbox_private=folder / SANDBOX_PRIVATE,
        sandbox_public=folder / SANDBOX_PUBLIC,
    )
    _ensure_pair(keys.merchant_private, keys.merchant_public)
    _ensure_pair(keys.sandbox_private, keys.sandbox_public)
    return keys


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise KeyFileError(f"cannot read key file {path}: {error}") from error


def _der_from_text(data: bytes) -> bytes | None:
    # Alipay's console hands out keys as one bare base64 line without PEM markers.
    text = b"".join(data.split())
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def _load_private(path: str | Path) -> rsa.RSAPrivateKey:
    data = _read(path)
    loaders = [lambda: serialization.load_pem_private_key(data, password=None)]
    der = _der_from_text(data) if b"-----BEGIN" not in data else None
    if der:
        loaders.append(lambda: serialization.load_der_private_key(der, password=None))
    for load in loaders:
        try:
            key = load()
        except (ValueError, TypeError):
            continue
        if isinstance(key, rsa.RSAPrivateKey):
            return key
    raise KeyFileError(f"{path} is not an unencrypted RSA private key (PEM or base64)")


def _load_public(path: str | Path) -> rsa.RSAPublicKey:
    data = _read(path)
    loaders = [lambda: serialization.load_pem_public_key(data)]
    der = _der_from_text(data) if b"-----BEGIN" not in data else None
    if der:
        loaders.append(lambda: serialization.load_der_public_key(der))
    for load in loaders:
        try:
            key = load()
        except (ValueError, TypeError):
            continue
        if isinstance(key, rsa.RSAPublicKey):
            return key
    raise KeyFileError(f"{path} is not an RSA public key (PEM or base64)")


def private_key_pkcs1_pem(path: str | Path) -> str:
    """The private key in ``path`` (PKCS#1, PKCS#8 or Alipay's bare base64) as PKCS#1 PEM,
    the form the SDK's python-rsa signer loads."""
    return (
        _load_private(path)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )


def public_key_pem(path: str | Path) -> str:
    """The public key in ``path`` as SubjectPublicKeyInfo PEM (what the SDK verifies with)."""
    return (
        _load_public(path)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_key_pem_from_private(path: str | Path) -> str:
    """The public half of the private key in ``path``, as SubjectPublicKeyInfo PEM."""
    return (
        _load_private(path)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _instance(app) -> Path:
    return Path(app.instance_path)


def merchant_private_key_file(app) -> Path:
    """ALIPAY_APP_PRIVATE_KEY_FILE if set, else the generated merchant key."""
    configured = app.config.get("ALIPAY_APP_PRIVATE_KEY_FILE")
    if configured:
        return Path(configured)
    return ensure_keys(_instance(app)).merchant_private


def alipay_public_key_file(app) -> Path:
    """ALIPAY_PUBLIC_KEY_FILE if set, else the sandbox's generated public key."""
    configured = app.config.get("ALIPAY_PUBLIC_KEY_FILE")
    if configured:
        return Path(configured)
    return ensure_keys(_instance(app)).sandbox_public


def sandbox_private_key_file(app) -> Path:
    """The sandbox gateway's own signing key (always generated; real Alipay keeps its own)."""
    return ensure_keys(_instance(app)).sandbox_private


def merchant_public_key_for_sandbox(app) -> str:
    """The merchant public key the sandbox verifies requests with (PEM), derived from the
    merchant private key in use, so a configured merchant key works with the sandbox too."""
    return public_key_pem_from_private(merchant_private_key_file(app))
