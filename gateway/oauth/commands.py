"""Command implementations for keys and client credentials (README.md ``keys generate``,
``client add``, ``hash-secret``); the CLI parses arguments and calls these.

Each prints what the operator copies into ``config.yaml``: only hashes and file paths, never
a secret in the snippet. A new secret is printed once, to stdout, with a warning on stderr.
"""

from __future__ import annotations

import base64
import getpass
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote_plus

import yaml

from gateway.config.hashes import hash_opaque
from gateway.config.hashes import hash_secret as scrypt_hash
from gateway.oauth.keys import generate_key

__all__ = ["client_add", "hash_secret", "keys_generate", "read_secret", "yaml_item"]

ALGORITHMS = ("ES256", "RS256", "EdDSA", "HS256")
# RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# RFC 6749 Appendix A.1 client-id: VSCHAR, printable ASCII.
_CLIENT_ID = re.compile(r"[\x20-\x7e]+")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _flow(value: object) -> str:
    """One value in YAML flow form, quoted where YAML needs it."""
    return yaml.safe_dump(value, default_flow_style=True, width=4096).strip().removesuffix(
        "\n...").strip()


def yaml_item(entry: dict[str, Any], indent: int, under: str) -> str:
    """``entry`` as one YAML list item indented to paste as printed under ``under`` in the
    shipped config.yaml (``clients:`` items at 2 spaces, ``tokens.keys`` items at 4), in
    its style: one key a line, lists in flow form (``scopes: [segments:write]``)."""
    pad = " " * indent
    lines = [f"{pad}# paste under `{under}` in config.yaml"]
    for i, (key, value) in enumerate(entry.items()):
        lines.append(f"{pad}{'- ' if i == 0 else '  '}{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode``; never replaces an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # SECURITY: O_EXCL refuses to overwrite (or follow a planted symlink); the mode is set
    # at creation, so the key is never readable by others even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def keys_generate(alg: str, kid: str, out: Path | None) -> int:
    """Generate a signing key for ``tokens.keys``; prints the YAML entry. Exit status."""
    if alg not in ALGORITHMS:
        return _fail(f"--alg must be one of {', '.join(ALGORITHMS)}")
    if not kid or not _CLIENT_ID.fullmatch(kid):
        return _fail("--kid must be printable ASCII")
    material = generate_key(alg)
    if alg == "HS256":
        print("warning: this secret is shown once; store it where the gateway reads "
              "JWT_SECRET from, never in config.yaml", file=sys.stderr)
        print(material.decode())
        print(yaml_item({"kid": kid, "secret": "${JWT_SECRET}"}, 4, "tokens.keys:"), end="")
        return 0
    path = out if out is not None else Path("certs") / f"jwt-{kid}.pem"
    try:
        _write_new(path, material, 0o600)
    except FileExistsError:
        return _fail(f"{path} exists; refusing to overwrite a key")
    except OSError as exc:
        return _fail(f"cannot write {path}: {exc.strerror}")
    print(f"wrote {path} ({alg}, mode 0600)", file=sys.stderr)
    print(yaml_item({"kid": kid, "private_key_file": str(path)}, 4, "tokens.keys:"), end="")
    return 0


def client_add(client_id: str, scopes: list[str] | tuple[str, ...], opaque: bool,
               *, post: bool = False) -> int:
    """Create a random credential for a new client; prints it once and the YAML entry."""
    if not client_id or not _CLIENT_ID.fullmatch(client_id):
        return _fail("--id must be printable ASCII")
    if post and opaque:
        return _fail("--post sends client_id and client_secret in the body, so it needs "
                     "the RFC form: drop --opaque")
    for scope in scopes:
        if not _SCOPE_TOKEN.fullmatch(scope):
            return _fail(f"--scope {scope!r} is not an RFC 6749 scope-token")
    entry: dict[str, object] = {"client_id": client_id}
    if opaque:
        # 256 random bits: the sha256$ lookup hash is sound only for such a credential.
        credential = secrets.token_urlsafe(32)
        entry["credential_hash"] = hash_opaque(credential)
        basic = credential
    else:
        credential = secrets.token_urlsafe(32)
        entry["secret_hash"] = scrypt_hash(credential)
        # RFC 6749 §2.3.1: each part form-urlencoded, then base64 of "id:secret".
        pair = f"{quote_plus(client_id)}:{quote_plus(credential)}"
        basic = base64.b64encode(pair.encode()).decode()
    if post:
        entry["client_secret_post"] = True
    entry["scopes"] = list(scopes)
    print("warning: the credential below is shown once and never stored; give it to the "
          "client now (config.yaml holds only its hash)", file=sys.stderr)
    print(f"client_id: {client_id}")
    print(f"{'credential' if opaque else 'client_secret'}: {credential}")
    print(f"Authorization: Basic {basic}")
    if post:
        print(f"or in the form body: client_id={quote_plus(client_id)}&client_secret="
              f"{quote_plus(credential)}")
    print()
    print(yaml_item(entry, 2, "clients:"), end="")
    return 0


def read_secret(stdin: TextIO, *, opaque: bool) -> str:
    """The secret to hash: typed at a terminal without echo (twice, so a typo is caught),
    or read whole from a pipe (``printf %s "$SECRET" | gateway hash-secret``)."""
    if not stdin.isatty():
        return stdin.read()
    what = "credential" if opaque else "secret"
    first = getpass.getpass(f"{what} (not echoed): ")
    if getpass.getpass(f"{what} again: ") != first:
        print(f"error: the two {what}s differ", file=sys.stderr)
        return ""
    return first


def hash_secret(stdin_text: str, opaque: bool) -> int:
    """Print the hash string of the secret read on stdin (one trailing newline dropped)."""
    secret = stdin_text
    for ending in ("\r\n", "\n"):
        if secret.endswith(ending):
            secret = secret[: -len(ending)]
            break
    if not secret:
        return _fail("empty secret (type it at the prompt, or pipe it on stdin)")
    print(hash_opaque(secret) if opaque else scrypt_hash(secret))
    return 0
