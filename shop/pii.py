"""Household and buyer PII: encryption at rest and masking for display.

Sensitive columns use :class:`EncryptedText`, which stores Fernet tokens (AES-128-CBC
+ HMAC-SHA256) under ``PII_KEY``. Masked forms are computed once at write time and
stored beside the ciphertext, so public pages never need the key at all.
"""

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

EXTENSION_KEY = "lianxin_pii"


class PiiCipher:
    """Encrypts and decrypts PII with one or more Fernet keys.

    ``PII_KEY`` may list several comma-separated keys: the first encrypts, all
    decrypt, which is how a key is rotated without downtime.
    """

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("PII_KEY is empty")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])
        # A separate, derived key for blind indexes so equality lookups (duplicate ID
        # numbers) never need decryption and never reuse the encryption key.
        self._index_key = hashlib.sha256(b"lianxin-blind-index:" + parts[0].encode()).digest()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ValueError("PII could not be decrypted with PII_KEY") from exc

    def blind_index(self, value: str) -> str:
        """A keyed digest of ``value`` (hex) for uniqueness checks without decryption."""
        return hmac.new(self._index_key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def cipher() -> PiiCipher:
    return current_app.extensions[EXTENSION_KEY]


class EncryptedText(TypeDecorator):
    """A text column whose value is encrypted with the app's PII key.

    Python code reads and writes plaintext; the database only ever sees the token.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return cipher().encrypt(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return cipher().decrypt(value)


def mask_name(name: str | None) -> str:
    """Keep the first and last character of a name: 张三明 → 张*明, 王五 → 王*."""
    name = (name or "").strip()
    if not name:
        return ""
    if len(name) == 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_card(card_number: str | None) -> str:
    """Show only the last four digits of a bank card: ``**** 1234``."""
    digits = "".join(ch for ch in (card_number or "") if ch.isdigit())
    if len(digits) < 4:
        return ""
    return "**** " + digits[-4:]


def mask_phone(phone: str | None) -> str:
    """138****5678 — the form Chinese shops use on receipts."""
    digits = "".join(ch for ch in (phone or "") if ch.isdigit())
    if len(digits) < 7:
        return "***"
    return digits[:3] + "****" + digits[-4:]


def mask_id_number(id_number: str | None) -> str:
    """Resident ID: keep the first 3 and last 2 characters."""
    value = (id_number or "").strip()
    if len(value) < 6:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 5) + value[-2:]
