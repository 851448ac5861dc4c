"""``python bench/floor.py``: the floor under the gateway's sample-push row, beside it.

Servers on the same certificate, the same sample backend and the same wrk script
(Adobe's sample push, or ``--payload``'s bodies, with a valid token), measured in turns:

* ``hello``: aiohttp with uvloop over TLS, answering 200 itself: no check, no forward;
* ``forward``: the same, forwarding every body to the backend through the gateway's own
  backend client (``gateway/forward/h1pool.py``), still no check;
* ``gateway``: ``gateway serve``, one worker, every check of docs/architecture.md;
* ``checked``: ``forward`` plus the gateway's token verification (cached) and
  ``aam-segments`` validation, so the server, not wrk, is the bottleneck;
* ``h1-hello``, ``h1-forward``, ``h1-checked``: the same three on a prototype listener of
  httptools under one ``asyncio.Protocol`` per connection instead of aiohttp's web server
  (``floor_h1.py``): what leaving aiohttp could save at most (``checked`` against
  ``h1-checked`` is the fair pair: aiohttp's server busy on its core, as the gateway is).

With ``--baseline DIR`` (another checkout of the project, e.g. ``git worktree add DIR
<commit>``) one more server, ``baseline``, is ``gateway serve`` from that tree, on the same
configuration: a before-and-after of a change, measured in turns in one run.

``gateway`` minus ``forward`` is what the checks, the guards, the access log and the
metrics cost; ``forward`` is what any aiohttp gateway on this machine pays before its first
check. With ``--pin`` each server runs on core 1 and wrk and the backend on core 0, so the
servers' CPU per request moves less between runs. ``--payload 1`` and ``2`` send the
10-user and the 1,000-user bodies instead of the sample push; ``--spool`` gives the
``gateway`` and ``baseline`` route ``delivery: spool`` (SQLite); ``--only SERVER`` (repeatable)
measures only those servers. Loopback only; every run is bounded by
``--duration``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fixtures import prepare
from load import have_wrk, run_wrk, write_script
from procs import Started, free_port, tree, wait_port
from spool_row import SpoolBench

if TYPE_CHECKING:
    from gateway.oauth.tokens import TokenVerifier

_SERVERS = ("hello", "h1-hello", "forward", "h1-forward", "checked", "h1-checked", "gateway")


def _serve(mode: str, port: int, cert: str, key: str, backend_port: int) -> None:
    """The ``hello`` and ``forward`` servers (run in a child process of this script)."""
    import uvloop
    from aiohttp import web

    from gateway.forward.h1pool import H1Pool
    from gateway.stages.payload import validate_aam_segments

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    verifier = _verifier() if mode.endswith("checked") else None
    if mode.startswith("h1-"):
        from floor_h1 import serve_h1

        uvloop.run(serve_h1(mode, port, context, backend_port, verifier))
        return
    head = b"POST /segments/aam HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"

    async def main() -> None:
        pool = H1Pool("127.0.0.1", backend_port, None, keepalive_timeout=30, max_idle=256)

        async def hello(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=b'{"ok":true}', content_type="application/json")

        async def forward(request: web.Request) -> web.Response:
            body = await request.read()
            if verifier is not None:
                verifier.verify(request.headers["Authorization"][7:])
                validate_aam_segments(body)
            loop = asyncio.get_running_loop()
            answer = await pool.exchange(
                head + b"Content-Length: %d\r\n\r\n" % len(body) + body,
                connect_timeout=2.0, deadline=loop.time() + 10.0)
            return web.Response(body=answer.body, status=answer.status,
                                content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", hello if mode == "hello" else forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
        print("floor listening", flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


def _verifier() -> TokenVerifier:
    """The ``checked`` servers' token verifier, from the gateway's own configuration."""
    from gateway.config.loader import load
    from gateway.oauth.clients import ClientRegistry
    from gateway.oauth.keys import KeySet
    from gateway.oauth.tokens import TokenVerifier

    settings = load(os.environ["FLOOR_CONFIG"])
    return TokenVerifier(settings.tokens, KeySet.from_settings(settings.tokens),
                         ClientRegistry.from_settings(settings.clients,
                                                      realm=settings.tokens.realm))


def _pin(pids: list[int], core: int) -> None:
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", hex(1 << core), str(pid)],
                       capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="turns of the three servers")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--pin", action="store_true", help="servers on core 1, the rest on 0")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also gateway serve from this checkout (before/after)")
    parser.add_argument("--payload", type=int, default=0, choices=(0, 1, 2),
                        help="0: Adobe's sample push, 1: 10 users, 2: 1,000 users")
    parser.add_argument("--spool", action="store_true",
                        help="the gateway and baseline route with delivery: spool (SQLite)")
    parser.add_argument("--only", action="append", default=[], metavar="SERVER",
                        help="measure only these servers (repeatable)")
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        mode, port, cert, key, backend = args.serve
        _serve(mode, int(port), cert, key, int(backend))
        return 0
    if not (1 <= args.duration <= 60 and 1 <= args.repeats <= 10
            and 1 <= args.connections <= 1000):
        parser.error("bounds: 1 <= --duration <= 60, 1 <= --repeats <= 10, "
                     "1 <= --connections <= 1000")
    if args.baseline is not None and not (args.baseline / "gateway" / "__main__.py").is_file():
        parser.error(f"--baseline: {args.baseline} is not a checkout of the gateway")
    if not have_wrk():
        parser.error("needs wrk (apt-get install wrk)")
    pin = args.pin and (os.cpu_count() or 1) >= 2
    with tempfile.TemporaryDirectory(prefix="gateway-floor-") as tmp:
        fx = prepare(Path(tmp), quick=True)
        if args.spool:
            fx = dataclasses.replace(fx, delivery="spool")
        ns = argparse.Namespace(quick=True, only=[], duration=args.duration, warmup=1.0,
                                connections=args.connections)
        bench = SpoolBench(ns, fx, {"checks": [], "skipped": [], "machine": {"cores": 2}}, [])
        try:
            return _measure(args, bench, pin)
        finally:
            bench.procs.stop_all()


def _measure(args: argparse.Namespace, bench: SpoolBench, pin: bool) -> int:
    bench.backend = bench.procs.start(
        "backend", [sys.executable, "-m", "gateway", "backend", "--port", "0"],
        ready="backend listening")
    bench.backend_port = int(bench.backend.line.rsplit(":", 1)[1])
    servers: dict[str, tuple[Started, int]] = {}
    config = bench.fx.gateway_config(
        workers=1, backend_url=f"http://127.0.0.1:{bench.backend_port}/segments/aam")
    env = {**os.environ, "FLOOR_CONFIG": str(config)}
    for mode in _SERVERS[:-1]:
        port = free_port()
        servers[mode] = (bench.procs.start(mode, [
            sys.executable, __file__, "--serve", mode, str(port), str(bench.fx.cert),
            str(bench.fx.key), str(bench.backend_port)], ready="floor listening", env=env),
            port)
        wait_port(port)
    servers["gateway"] = bench._start_gateway(1)
    token = bench._gateway_token(servers["gateway"][1])
    modes = list(_SERVERS)
    if args.baseline is not None:
        servers["baseline"] = _start_baseline(bench, args.baseline.resolve())
        modes.append("baseline")
    if args.only:
        modes = [mode for mode in modes if mode in args.only]
    payload = bench.fx.payloads[args.payload]
    script = write_script(bench.fx.workdir / "floor.lua", method="POST", target="/segments/aam",
                          headers={"Authorization": f"Bearer {token}",
                                   "Content-Type": "application/json",
                                   "Accept-Encoding": "gzip"}, bodies=payload.files)
    if pin:  # wrk, started later by this process, inherits core 0
        _pin([os.getpid(), *tree(bench.backend.pid)], 0)
        for started, _ in servers.values():
            _pin(tree(started.pid), 1)
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    for _ in range(args.repeats):
        for mode in modes:
            started, port = servers[mode]
            url = f"https://127.0.0.1:{port}/segments/aam"
            run_wrk(url, script, connections=args.connections, seconds=1.0)  # warm-up
            before = started.cpu()
            load = run_wrk(url, script, connections=args.connections, seconds=args.duration)
            used = started.cpu() - before
            if load.non_2xx or load.socket_errors or not load.requests:
                print(f"floor: {mode}: {load.non_2xx} non-2xx, {load.socket_errors} socket "
                      "errors", file=sys.stderr)
                return 1
            results[mode].append((load.rps, used / load.requests * 1e6))
            print(f"floor: {mode}: {load.rps:,.0f} req/s, {results[mode][-1][1]:.0f} us CPU "
                  "per request", file=sys.stderr, flush=True)
    command = "python " + " ".join(["bench/floor.py", *sys.argv[1:]])
    when = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    print(f"# The floor under the gateway's row, {payload.name} ({when})\n")
    print(f"`{command}`: wrk -t1 -c{args.connections}, {args.duration:g} s per run, "
          f"{args.repeats} turns, medians{', servers pinned to core 1' if pin else ''}\n")
    print("| server | req/s | CPU per request |")
    print("|---|---:|---:|")
    for mode in modes:
        rps = statistics.median(r for r, _ in results[mode])
        cpu = statistics.median(c for _, c in results[mode])
        print(f"| {mode} | {rps:,.0f} | {cpu:.0f} us |")
    return 0


def _start_baseline(bench: SpoolBench, tree_dir: Path) -> tuple[Started, int]:
    """``gateway serve`` from another checkout: its directory first on the path (``-m``
    puts the working directory there), the same settings otherwise. The token of the
    current tree's gateway is valid here too: same keys, issuer and audience."""
    config = bench.fx.gateway_config(
        workers=1, backend_url=f"http://127.0.0.1:{bench.backend_port}/segments/aam")
    baseline = config.with_name("baseline.yaml")
    baseline.write_text(config.read_text().replace(".db", "-baseline.db")
                        .replace(".pid", "-baseline.pid"))
    env = {**os.environ, "PYTHONPATH": str(tree_dir)}
    # That tree's own virtualenv when it has one; either way its directory comes first on
    # the path, and the check below proves which code runs.
    python = tree_dir / ".venv" / "bin" / "python"
    executable = str(python) if python.is_file() else sys.executable
    where = subprocess.run([executable, "-c", "import gateway; print(gateway.__file__)"],
                           env=env, cwd=tree_dir, capture_output=True, text=True, check=True)
    if not Path(where.stdout.strip()).is_relative_to(tree_dir):
        raise RuntimeError(f"baseline imports {where.stdout.strip()}, not {tree_dir}")
    started = bench.procs.start("baseline", [executable, "-m", "gateway", "serve", "-c",
                                             str(baseline)], ready="gateway serving",
                                env=env, cwd=tree_dir)
    ports = dict(p.split("=") for p in started.line[started.line.index("(") + 1:-1].split(", "))
    return started, int(ports["https"])


if __name__ == "__main__":
    raise SystemExit(main())
