"""Signing through OpenSSL gives dkimpy's own signature, byte for byte."""

from __future__ import annotations

import hashlib

import dkim.crypto

from gateway.delivery.dkim import new_private_key, openssl_pkcs1_sign


def test_openssl_and_dkimpy_sign_alike() -> None:
    pem = new_private_key()
    key = dkim.crypto.parse_pem_private_key(pem.encode())
    for text in (b"", b"a message", b"x" * 10_000):
        digest = hashlib.sha256(text)
        pure = dkim.crypto.RSASSA_PKCS1_v1_5_sign(digest.copy(), key)
        assert openssl_pkcs1_sign(digest.copy(), key) == pure
