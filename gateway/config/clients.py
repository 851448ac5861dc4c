"""The ``clients`` section: ids, hash strings (never secrets), scopes, source ranges and
the optional per-client rate limit.
"""

from __future__ import annotations

from typing import Any

from gateway.config.hashes import HashFormatError, PasswordHash, parse_hash
from gateway.config.model import (
    TTL_MAX_SECONDS,
    TTL_MIN_SECONDS,
    ClientSettings,
    RateLimitSettings,
    TokenSettings,
)
from gateway.config.yamlpath import Reader

# Each key refuses the other's form. A sha256$ hash under secret_hash would pass the load
# and then fail every RFC-form Basic request with 401, locking IRIS out; so it is refused
# here, naming the key it belongs to.
_WRONG_KEY = {
    "sha256": "must be a sha256$ lookup hash: an opaque credential names no client, so it "
              "is found by its digest (`gateway hash-secret --opaque`); an scrypt$ hash "
              "belongs in secret_hash",
    "scrypt": "must be an scrypt$ hash (`gateway hash-secret`); a sha256$ hash is the "
              "lookup hash of an opaque credential and belongs in credential_hash",
}


def read_client(r: Reader, value: Any, path: str, tokens: TokenSettings) -> ClientSettings:
    m = r.mapping(value, path, ("client_id", "secret_hash", "credential_hash", "scopes",
                                "allowed_cidrs", "rate_limit", "client_secret_post",
                                "ttl_seconds"))
    secret_hashes = _read_hashes(r, m.get("secret_hash"), f"{path}.secret_hash", "scrypt")
    credential_hashes = _read_hashes(r, m.get("credential_hash"), f"{path}.credential_hash",
                                     "sha256")
    if m.get("secret_hash") is None and m.get("credential_hash") is None:
        r.fail(path, "needs secret_hash, credential_hash or both")
    rate = m.get("rate_limit")
    rate_limit = None
    if rate is not None:
        rm = r.mapping(rate, f"{path}.rate_limit", ("requests_per_second", "burst"))
        rate_limit = RateLimitSettings(
            requests_per_second=r.number(rm.get("requests_per_second"),
                                         f"{path}.rate_limit.requests_per_second", positive=True),
            burst=r.integer(rm.get("burst"), f"{path}.rate_limit.burst", minimum=1),
        )
    return ClientSettings(
        client_id=r.string(m.get("client_id"), f"{path}.client_id"),
        secret_hashes=secret_hashes,
        credential_hashes=credential_hashes,
        scopes=r.string_list(m.get("scopes"), f"{path}.scopes"),
        allowed_cidrs=r.networks(m.get("allowed_cidrs"), f"{path}.allowed_cidrs"),
        rate_limit=rate_limit,
        client_secret_post=r.boolean(m.get("client_secret_post"), f"{path}.client_secret_post",
                                     default=False),
        ttl_seconds=_read_ttl(r, m.get("ttl_seconds"), f"{path}.ttl_seconds"),
    )


def _read_ttl(r: Reader, value: Any, path: str) -> int | None:
    """A client's own token lifetime, within the bounds of ``tokens.ttl_seconds``; None
    (absent or null) leaves the client on the section's lifetime."""
    if value is None:
        return None
    return r.integer(value, path, minimum=TTL_MIN_SECONDS, maximum=TTL_MAX_SECONDS)

def _read_hashes(r: Reader, value: Any, path: str, scheme: str) -> tuple[PasswordHash, ...]:
    result: list[PasswordHash] = []
    entries = [(path, value)] if isinstance(value, str) else r.items(value, path)
    for item_path, item in entries:
        text = r.string(item, item_path)
        try:
            parsed = parse_hash(text)
        except HashFormatError as exc:
            opaque = " --opaque" if scheme == "sha256" else ""
            r.fail(item_path, f"{exc} (make one with `gateway hash-secret{opaque}`)")
            continue
        if parsed.scheme != scheme:
            r.fail(item_path, _WRONG_KEY[scheme])
            continue
        result.append(parsed)
    return tuple(result)
