"""The rows of the benchmark: start each target, check it answers as it should, measure it.

Before measuring, each target is checked by hand over TLS: a good token gets ``200`` and,
for the rows that verify tokens, an expired one, one for another audience and one with a
broken signature get ``401`` (so a misconfigured anchor cannot look fast by checking
nothing). During the measured run the backend's own counter (``GET /_stats``) must grow by
at least the number of answers wrk counted, so no row is fast by not forwarding.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import ssl
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from anchors import start_haproxy, start_nginx
from fixtures import AUDIENCE, CLIENT_ID, ISSUER, SCOPE, Fixtures, PayloadSet
from fleet import FleetRow
from load import LoadResult, have_wrk, run_loadtest, run_wrk, write_script
from procs import Processes, Started, free_port, tree
from report import Row, ratios

__all__ = ["ROWS", "Bench"]

ROWS = {
    "direct": "1. backend direct (HTTP)",
    "nginx": "2. nginx TLS proxy",
    "haproxy-es256": "3a. HAProxy jwt_verify ES256",
    "haproxy-hs256": "3b. HAProxy jwt_verify HS256",
    "haproxy-rs256": "3c. HAProxy jwt_verify RS256",
    "gateway": "4. gateway, 1 worker, ES256",
    "gateway-spool": "4b. gateway, 1 worker, spool",  # bench/spool_row.py
    "gateway-spool-redis": "4d. gateway, 1 worker, spool on Redis Streams",  # spool_row.py
    "gateway-2x": "4c. 2 gateways behind HAProxy, Redis state",
    "gateway-auto": "5. gateway, workers: auto",
    "token-gateway": "6a. token endpoint: gateway",
    "token-oidc": "6b. token endpoint: oidc-provider 9",
}
OIDC_DIR = Path(__file__).resolve().parent / ".oidc"
_TOKEN_BODY = b"grant_type=client_credentials"


class Bench(FleetRow):
    """Runs the selected rows in order, appending to ``rows`` and ``meta``."""

    def __init__(self, args: argparse.Namespace, fx: Fixtures, meta: dict[str, Any],
                 rows: list[Row]) -> None:
        self.args, self.fx, self.meta, self.rows = args, fx, meta, rows
        self.procs = Processes()
        self.tls = ssl.create_default_context(cafile=str(fx.ca))
        self.basic = base64.b64encode(
            f"{quote_plus(CLIENT_ID)}:{quote_plus(fx.client_secret)}".encode()).decode()
        self.backend: Started | None = None
        self.backend_port = 0

    def _log(self, text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)

    def run(self) -> None:
        self.backend = self.procs.start(
            "backend", [sys.executable, "-m", "gateway", "backend", "--port", "0"],
            ready="backend listening")
        self.backend_port = int(self.backend.line.rsplit(":", 1)[1])
        for key in self.args.only:
            self._log(f"row {key}")
            getattr(self, "_row_" + key.replace("-", "_"))(key)
        ratios(self.rows)

    # -- the rows -------------------------------------------------------------------------

    def _row_direct(self, key: str) -> None:
        self._push_rows(key, f"http://127.0.0.1:{self.backend_port}", self.fx.mint("ES256"),
                        None)

    def _row_nginx(self, key: str) -> None:
        proxy, port = start_nginx(self.procs, self.fx.workdir, cert=self.fx.cert,
                                  key=self.fx.key, backend_port=self.backend_port)
        self._measure_proxy(key, proxy, port, self.fx.mint("ES256"), verifies=False)

    def _row_haproxy_es256(self, key: str) -> None:
        self._haproxy(key, "ES256", str(self.fx.es256_public))

    def _row_haproxy_hs256(self, key: str) -> None:
        self._haproxy(key, "HS256", self.fx.hs256_secret)

    def _row_haproxy_rs256(self, key: str) -> None:
        self._haproxy(key, "RS256", str(self.fx.rs256_public))

    def _haproxy(self, key: str, alg: str, material: str) -> None:
        proxy, port = start_haproxy(self.procs, self.fx.workdir, pem=self.fx.pem,
                                    backend_port=self.backend_port, alg=alg, key=material,
                                    issuer=ISSUER, audience=AUDIENCE)
        self._measure_proxy(key, proxy, port, self.fx.mint(alg), verifies=True, alg=alg)

    def _row_gateway(self, key: str) -> None:
        proxy, port = self._start_gateway(1)
        token = self._gateway_token(port)
        self._measure_proxy(key, proxy, port, token, verifies=True)

    def _row_gateway_auto(self, key: str) -> None:
        proxy, port = self._start_gateway("auto")
        time.sleep(1.0)  # workers, if any, are forked around start-up
        processes = len(tree(proxy.pid))
        if processes < 2:
            reason = (f"server.workers: auto (= {self.meta['machine']['cores']} cores) is "
                      f"accepted by the config, but `gateway serve` ran {processes} process: "
                      "gateway/server.py does not start workers yet")
            self._skip(key, reason)
            self.procs.stop(proxy)
            return
        self.meta["checks"].append(f"{key}: {processes} processes in the gateway's tree")
        token = self._gateway_token(port)
        self._measure_proxy(key, proxy, port, token, verifies=True)

    def _row_token_gateway(self, key: str) -> None:
        proxy, port = self._start_gateway(1)
        self._check_token_endpoint(key, port, "/oauth2/token")
        self._token_row(key, proxy, port, "/oauth2/token")

    def _row_token_oidc(self, key: str) -> None:
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            self._skip(key, "oidc-provider is not installed: `npm install --prefix bench/.oidc "
                            "oidc-provider@9` (bench/README.md)")
            return
        port = free_port()
        opts = {"module_dir": str(OIDC_DIR), "port": port, "cert": str(self.fx.cert),
                "key": str(self.fx.key), "jwk": self.fx.es256_jwk, "client_id": CLIENT_ID,
                "client_secret": self.fx.client_secret, "audience": AUDIENCE,
                "resource": "https://partner-api.example/", "scope": SCOPE}
        script = Path(__file__).resolve().parent / "oidc_server.mjs"
        try:
            proxy = self.procs.start("oidc-provider", ["node", str(script), json.dumps(opts)],
                                     ready="oidc listening")
            self._check_token_endpoint(key, port, "/token")
        except (RuntimeError, OSError, ValueError) as exc:
            self._skip(key, f"oidc-provider did not work: {exc}")
            return
        self._token_row(key, proxy, port, "/token")

    # -- helpers --------------------------------------------------------------------------

    def _skip(self, key: str, reason: str) -> None:
        self.rows.append(Row(key, ROWS[key], "-", skipped=reason))
        self.meta["skipped"].append(f"{ROWS[key]}: {reason}")
        self._log(f"skipped {key}: {reason}")

    def _start_gateway(self, workers: int | str) -> tuple[Started, int]:
        config = self.fx.gateway_config(
            workers=workers, backend_url=f"http://127.0.0.1:{self.backend_port}/segments/aam")
        proxy = self.procs.start(f"gateway-{workers}",
                                 [sys.executable, "-m", "gateway", "serve", "-c", str(config)],
                                 ready="gateway serving")
        ports = dict(p.split("=") for p in proxy.line[proxy.line.index("(") + 1:-1].split(", "))
        return proxy, int(ports["https"])

    def _request(self, port: int, path: str, body: bytes,
                 headers: dict[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=self.tls, timeout=10)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _token_headers(self) -> dict[str, str]:
        return {"Authorization": f"Basic {self.basic}",
                "Content-Type": "application/x-www-form-urlencoded"}

    def _gateway_token(self, port: int) -> str:
        status, body = self._request(port, "/oauth2/token", _TOKEN_BODY, self._token_headers())
        if status != 200:
            raise RuntimeError(f"the gateway's token endpoint answered {status}")
        return str(json.loads(body)["access_token"])

    def _check_token_endpoint(self, key: str, port: int, path: str) -> None:
        status, body = self._request(port, path, _TOKEN_BODY, self._token_headers())
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {body[:200]!r}")
        token = json.loads(body)["access_token"]
        head = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        self.meta["checks"].append(
            f"{key}: 200, token header alg={head.get('alg')} typ={head.get('typ')}, "
            f"aud={claims.get('aud')!r}, {len(token)} characters")

    def _check_refusals(self, key: str, port: int, good: str, alg: str) -> None:
        body = self.fx.payloads[0].files[0].read_bytes()
        cases = {"good": good, "expired": self.fx.mint(alg, ttl=-120),
                 "other audience": self.fx.mint(alg, audience="someone-else"),
                 "bad signature": good[:-6] + ("AAAAAA" if good[-6:] != "AAAAAA" else "BBBBBB")}
        seen = {}
        for name, token in cases.items():
            seen[name], _ = self._request(port, "/segments/aam", body, {
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        expected = {name: 200 if name == "good" else 401 for name in cases}
        if seen != expected:
            raise RuntimeError(f"{key} does not verify tokens as configured: {seen}")
        self.meta["checks"].append(f"{key}: good token 200; expired, other audience, bad "
                                   "signature 401")

    def _measure_proxy(self, key: str, proxy: Started, port: int, token: str, *,
                       verifies: bool, alg: str = "ES256") -> None:
        if verifies:
            self._check_refusals(key, port, token, alg)
        else:
            status, _ = self._request(port, "/segments/aam",
                                      self.fx.payloads[0].files[0].read_bytes(),
                                      {"Content-Type": "application/json"})
            if status != 200:
                raise RuntimeError(f"{key}: Adobe's sample push got {status}")
        try:
            self._push_rows(key, f"https://127.0.0.1:{port}", token, proxy)
        finally:
            self.procs.stop(proxy)

    def _backend_count(self) -> int:
        url = f"http://127.0.0.1:{self.backend_port}/_stats"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(json.load(answer)["requests"])

    def _push_rows(self, key: str, origin: str, token: str, proxy: Started | None) -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "Accept-Encoding": "gzip"}
        for payloads in self.fx.payloads:
            script = write_script(self.fx.workdir / f"{key}-{payloads.users}.lua",
                                  method="POST", target="/segments/aam", headers=headers,
                                  bodies=payloads.files)
            row = self._measure(key, payloads.name, origin + "/segments/aam", script, proxy,
                                token=token, payloads=payloads)
            if row.backend_seen is not None and row.backend_seen < row.requests:
                row.notes.append(f"⚠ backend saw only {row.backend_seen:,}")
            self.rows.append(row)

    def _token_row(self, key: str, proxy: Started, port: int, path: str) -> None:
        try:
            if not have_wrk():
                self._skip(key, "wrk is missing; `gateway loadtest` cannot drive a token "
                                "endpoint")
                return
            body = self.fx.workdir / "token-body.txt"
            body.write_bytes(_TOKEN_BODY)
            script = write_script(self.fx.workdir / f"{key}.lua", method="POST", target=path,
                                  headers={**self._token_headers(), "Accept-Encoding": "gzip"},
                                  bodies=[body])
            row = self._measure(key, "client_credentials, Basic (RFC form)",
                                f"https://127.0.0.1:{port}{path}", script, proxy)
            row.backend_seen = None
            row.backend_cpu_s_per_1k = None
            self.rows.append(row)
        finally:
            self.procs.stop(proxy)

    def _measure(self, key: str, payload: str, url: str, script: Path, proxy: Started | None,
                 *, token: str = "", payloads: PayloadSet | None = None) -> Row:
        args = self.args
        assert self.backend is not None
        if have_wrk():
            if args.warmup > 0:
                run_wrk(url, script, connections=args.connections, seconds=args.warmup)
        elif payloads is not None and args.warmup > 0:
            run_loadtest(url, token, users=payloads.users, connections=args.connections,
                         seconds=args.warmup)
        seen0, proxy0, backend0 = self._backend_count(), proxy.cpu() if proxy else 0.0, \
            self.backend.cpu()
        result: LoadResult
        if have_wrk():
            result = run_wrk(url, script, connections=args.connections, seconds=args.duration)
        else:
            assert payloads is not None
            result = run_loadtest(url, token, users=payloads.users,
                                  connections=args.connections, seconds=args.duration)
        per_1k = 1000 / result.requests if result.requests else 0.0
        proxy_cpu = (proxy.cpu() - proxy0) * per_1k if proxy else None
        backend_cpu = (self.backend.cpu() - backend0) * per_1k
        self._log(f"  {key} {payload}: {result.rps:,.0f} req/s, {result.non_2xx} non-2xx")
        return Row(key, ROWS[key], payload, rps=result.rps, p50_ms=result.p50_ms,
                   p99_ms=result.p99_ms, requests=result.requests,
                   proxy_cpu_s_per_1k=proxy_cpu, backend_cpu_s_per_1k=backend_cpu,
                   backend_seen=self._backend_count() - seen0, non_2xx=result.non_2xx,
                   socket_errors=result.socket_errors, tool=result.tool)
