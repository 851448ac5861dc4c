"""Fixtures shared by every test: a development CA with a server certificate (made by the
gateway's own ``certs`` tool) and signing keys, created once per session."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.tools.certs import create_dev_certificates


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    create_dev_certificates(directory)
    return directory


@pytest.fixture(scope="session")
def client_ssl_ctx(cert_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
               | ed25519.Ed25519PrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


@pytest.fixture(scope="session")
def signing_keys(cert_dir: Path) -> dict[str, Path]:
    """One private key file per asymmetric algorithm, plus a second ES256 key."""
    return {
        "ES256": _write_key(cert_dir / "es256.pem", ec.generate_private_key(ec.SECP256R1())),
        "ES256-2": _write_key(cert_dir / "es256-2.pem", ec.generate_private_key(ec.SECP256R1())),
        "RS256": _write_key(cert_dir / "rs256.pem", rsa.generate_private_key(65537, 2048)),
        "EdDSA": _write_key(cert_dir / "eddsa.pem", ed25519.Ed25519PrivateKey.generate()),
    }
