"""Micro-benchmarks of the hot path's pieces, in-process, in microseconds per call.

Not a test. For each algorithm the gateway supports (ES256, RS256, EdDSA, HS256), with the
real ``gateway.oauth`` objects built from settings as the server builds them:

* ``TokenIssuer.mint``: one RFC 9068 token (what ``POST /oauth2/token`` signs);
* ``TokenVerifier.verify``, uncached: distinct fresh tokens, each verified once (a cache miss:
  parse, signature, claims, then the insert), what a new token costs the first time;
* ``TokenVerifier.verify``, cached: one token verified again and again (a cache hit), what
  every later push with that token costs;

and the ``aam-segments`` check of a 10- and a 10,000-user push, timed by
``micro_payload.py`` (reused, not copied). Medians of many calls, measured with
``time.perf_counter`` around each call.

    python bench/micro.py [--quick]
    python bench/run.py --micro          # the same, after the load rows
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from micro_payload import time_ms

from gateway.config import ClientSettings, SigningKeySettings, TokenSettings
from gateway.oauth.clients import ClientRegistry
from gateway.oauth.keys import KeySet, generate_key
from gateway.oauth.tokens import TokenIssuer, TokenVerifier
from gateway.stages.payload import validate_aam_segments
from gateway.tools.certs import write_private
from gateway.tools.payloads import make_payload_bytes

__all__ = ["ALGORITHMS", "format_micro", "run_micro"]

ALGORITHMS = ("ES256", "RS256", "EdDSA", "HS256")
_CLIENT = ClientSettings(client_id="aam-bench", scopes=("segments:write",))


def _median_us(call: Callable[[], object], runs: int) -> float:
    for _ in range(min(20, runs)):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def _objects(alg: str, folder: Path) -> tuple[TokenIssuer, TokenVerifier]:
    material = generate_key(alg)
    if alg == "HS256":
        key = SigningKeySettings(kid="k1", secret=material.decode())
    else:
        path = folder / f"{alg}.pem"
        write_private(path, material)
        key = SigningKeySettings(kid="k1", private_key_file=path)
    tokens = TokenSettings(algorithm=alg, keys=(key,))  # type: ignore[arg-type]
    keyset = KeySet.from_settings(tokens)
    registry = ClientRegistry([_CLIENT])
    return TokenIssuer(tokens, keyset), TokenVerifier(tokens, keyset, registry)


def _uncached_us(issuer: TokenIssuer, verifier: TokenVerifier, count: int) -> float:
    fresh = [issuer.mint(_CLIENT, _CLIENT.scopes)[0] for _ in range(count)]
    samples = []
    for token in fresh:
        start = time.perf_counter()
        verifier.verify(token)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def run_micro(*, quick: bool = False) -> list[dict[str, Any]]:
    """One row per measurement: {"what", "case", "us", "runs"}."""
    rows: list[dict[str, Any]] = []
    runs = 300 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="gateway-micro-") as tmp:
        for alg in ALGORITHMS:
            issuer, verifier = _objects(alg, Path(tmp))
            mint_runs = runs // 10 if alg == "RS256" else runs
            rows.append({"what": "TokenIssuer.mint", "case": alg,
                         "us": _median_us(lambda i=issuer: i.mint(_CLIENT, _CLIENT.scopes),
                                          mint_runs), "runs": mint_runs})
            fresh = max(50, runs // 10)
            rows.append({"what": "TokenVerifier.verify uncached", "case": alg,
                         "us": _uncached_us(issuer, verifier, fresh), "runs": fresh})
            token = issuer.mint(_CLIENT, _CLIENT.scopes)[0]
            rows.append({"what": "TokenVerifier.verify cached", "case": alg,
                         "us": _median_us(lambda v=verifier, t=token: v.verify(t), runs * 5),
                         "runs": runs * 5})
    for users in (10, 10_000):
        body = make_payload_bytes(users, random.Random(1))
        count = (200 if users > 100 else 2000) // (4 if quick else 1)
        median_ms = statistics.median(time_ms(validate_aam_segments, body, count))
        rows.append({"what": "validate_aam_segments", "case": f"{users:,} users "
                     f"({len(body) / 1000:,.0f} KB)", "us": median_ms * 1000, "runs": count})
    return rows


def format_micro(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of ``run_micro``'s rows."""
    lines = ["| what | case | median µs/call | calls timed |", "|---|---|---:|---:|"]
    lines += [f"| {r['what']} | {r['case']} | {r['us']:,.1f} | {r['runs']:,} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls timed")
    args = parser.parse_args(argv)
    print(format_micro(run_micro(quick=args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
