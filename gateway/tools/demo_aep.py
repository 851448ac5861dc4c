"""``gateway demo``, step 2b: one Adobe Experience Platform push after IRIS's (docs/aep.md).

The demo's configuration gets an AEP client (credentials accepted in the form body, tokens
that live 24 h where IRIS's live the section's hour) and an AEP route with a body bound of
its own (16 MiB beside the server's 1 MiB) checked against the shipped
``docs/schemas/aep-profiles.json``. The step fetches a token as AEP does (``grant_type``,
``client_id`` and ``client_secret`` form-encoded in the body) and pushes one batch of
10,000 profiles, Adobe's largest configurable aggregation, several MB.
"""

from __future__ import annotations

import io
import json
import random
import secrets
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from gateway.config.hashes import hash_secret
from gateway.tools.aep_payloads import MAX_PROFILES_PER_BATCH, make_aep_batch_bytes
from gateway.tools.loadtest_aep import AEP_TOKEN_CONTENT_TYPE, aep_token_body

__all__ = ["AEP_CLIENT", "AEP_PATH", "aep_config", "aep_walkthrough"]

AEP_CLIENT = "aep-demo"
AEP_PATH = "/segments/aep"
AEP_MAX_BODY = 16 << 20
# The shipped schema, when the demo runs from a checkout (docs/ is not in the package).
_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "aep-profiles.json"


def aep_config() -> tuple[dict[str, Any], dict[str, Any], str]:
    """(the AEP client's entry, the AEP route's entry, the client's fresh secret)."""
    secret = secrets.token_urlsafe(24)
    client = {"client_id": AEP_CLIENT, "secret_hash": hash_secret(secret),
              "client_secret_post": True, "ttl_seconds": 86400, "scopes": ["segments:write"]}
    payload: Any = {"schema": str(_SCHEMA)} if _SCHEMA.is_file() else "none"
    route = {"path": AEP_PATH, "methods": ["POST"], "upstream": "${BACKEND_URL}",
             "scope": "segments:write", "payload": payload, "max_body_bytes": AEP_MAX_BODY}
    return client, route, secret


async def aep_walkthrough(console: Console, https: str, client: aiohttp.ClientSession,
                          secret: str) -> None:
    """Token as AEP asks for it, then one 10,000-profile batch."""
    console.rule("2b. Adobe Experience Platform: a token by form body, then one large batch")
    async with client.post(https + "/oauth2/token", data=aep_token_body(AEP_CLIENT, secret),
                           headers={"Content-Type": AEP_TOKEN_CONTENT_TYPE}) as response:
        answer = await response.json()
    if response.status != 200:
        raise RuntimeError(f"AEP token request answered {response.status}")
    console.print(f"  POST /oauth2/token (client_id and client_secret in the form body) → "
                  f"[bold]{response.status}[/], token_type {answer['token_type']}, "
                  f"expires_in {answer['expires_in']} (the AEP client's own 24 h)")
    batch = make_aep_batch_bytes(MAX_PROFILES_PER_BATCH, random.Random(7))  # noqa: S311
    checked = "docs/schemas/aep-profiles.json" if _SCHEMA.is_file() else "any JSON"
    async with client.post(https + AEP_PATH, data=io.BytesIO(batch), headers={
            "Authorization": f"Bearer {answer['access_token']}",
            "Content-Type": "application/json"}) as response:
        console.print(f"  POST {AEP_PATH} ({MAX_PROFILES_PER_BATCH:,} profiles, "
                      f"{len(batch):,} bytes, checked against {checked}; the route's "
                      f"max_body_bytes {AEP_MAX_BODY >> 20} MiB, the server's 1 MiB) → "
                      f"[bold]{response.status}[/], the backend's answer relayed: "
                      f"received {json.dumps((await response.json()).get('received'))}")
    if response.status != 200:
        raise RuntimeError(f"the AEP push answered {response.status}")
