"""The ``gateway`` command (README.md). Nothing else imports this module.

Each command imports what it needs when it runs, so ``gateway hash-secret`` does not pay
for the server's imports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]

DEFAULT_CONFIG = Path("config.yaml")


def _cmd_serve(args: argparse.Namespace) -> int:
    from gateway.serve.server import WorkerOptions, serve

    worker = None
    if args.worker_index is not None:
        # Set by the supervisor only (supervisor.py): this process is one of its workers.
        https, _, http = args.worker_ports.partition(":")
        worker = WorkerOptions(index=args.worker_index, https_port=int(https),
                               http_port=int(http) if http else None,
                               metrics_dir=args.metrics_dir)
    return serve(args.config, worker)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.serve.control import check_config

    return check_config(args.config)


def _cmd_reload(args: argparse.Namespace) -> int:
    from gateway.serve.control import reload_gateway

    return reload_gateway(args.config)


def _cmd_stop(args: argparse.Namespace) -> int:
    from gateway.serve.control import stop_gateway

    return stop_gateway(args.config, args.wait)


def _cmd_certs(args: argparse.Namespace) -> int:
    from gateway.tools.certs import DEFAULT_HOSTS, create_dev_certificates

    hosts = tuple(dict.fromkeys((*DEFAULT_HOSTS, *args.host)))
    written = create_dev_certificates(args.dir, hosts, force=args.force)
    if not written:
        print(f"{args.dir}: certificates exist (use --force to replace them)")
        return 0
    for path in written:
        print(f"wrote {path}")
    print(f"trust {args.dir / 'ca.crt'} in clients (curl --cacert, loadtest --ca)")
    return 0


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    from gateway.oauth.commands import keys_generate

    return keys_generate(args.alg, args.kid, args.out)


def _cmd_client_add(args: argparse.Namespace) -> int:
    from gateway.oauth.commands import client_add

    return client_add(args.id, tuple(args.scope or ("segments:write",)), args.opaque,
                      post=args.post)


def _cmd_hash_secret(args: argparse.Namespace) -> int:
    from gateway.oauth.commands import hash_secret, read_secret

    return hash_secret(read_secret(sys.stdin, opaque=args.opaque), args.opaque)


def _cmd_backend(args: argparse.Namespace) -> int:
    from gateway.tools.backend import run_backend

    return run_backend(args.host, args.port, args.status, args.delay, args.record)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway.tools.demo import run_demo

    return run_demo(workdir=args.dir, load_seconds=args.load_seconds,
                    spool_redis=args.spool_redis)


def _cmd_spool(args: argparse.Namespace) -> int:
    from gateway.spool.commands import run

    return run(args)


def _cmd_loadtest(args: argparse.Namespace) -> int:
    from gateway.tools.loadtest_cli import run

    return run(args)


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; the options of ``spool`` and ``loadtest`` come from their own
    modules, imported only when that is the command (``serve`` and each worker start
    without the load tester's imports)."""
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="OAuth 2.0 enforcing gateway for Adobe Audience Manager real-time pushes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG,
                       help="configuration file (default: ./config.yaml)")

    p = commands.add_parser("serve", help="run the gateway until SIGTERM/SIGINT")
    config_option(p)
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-ports", default="", help=argparse.SUPPRESS)
    p.add_argument("--metrics-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_serve)

    p = commands.add_parser("check-config", help="validate the configuration file")
    config_option(p)
    p.set_defaults(func=_cmd_check_config)

    p = commands.add_parser("reload", help="check the file, then SIGHUP the running gateway "
                                           "(found through server.pid_file)")
    config_option(p)
    p.set_defaults(func=_cmd_reload)

    p = commands.add_parser("stop", help="SIGTERM the running gateway (found through "
                                         "server.pid_file) and wait for it to drain")
    config_option(p)
    p.add_argument("--wait", type=float, default=45.0, metavar="SECONDS",
                   help="how long to wait for it to exit (default 45: a 30 s drain and more)")
    p.set_defaults(func=_cmd_stop)

    p = commands.add_parser("certs", help="a development CA and a server certificate")
    p.add_argument("--dir", type=Path, default=Path("certs"))
    p.add_argument("--host", action="append", default=[], help="another DNS name or IP")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func=_cmd_certs)

    keys = commands.add_parser("keys", help="token signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION")
    p = keys.add_parser("generate", help="a new signing key (HS256: a random secret)")
    p.add_argument("--alg", default="ES256", choices=("ES256", "RS256", "EdDSA", "HS256"))
    p.add_argument("--kid", required=True)
    p.add_argument("--out", type=Path, default=None, help="PEM file (mode 0600)")
    p.set_defaults(func=_cmd_keys_generate)

    client = commands.add_parser("client", help="OAuth clients").add_subparsers(
        dest="client_command", required=True, metavar="ACTION")
    p = client.add_parser("add", help="a new client credential and its YAML snippet")
    p.add_argument("--id", required=True)
    p.add_argument("--scope", action="append")
    p.add_argument("--opaque", action="store_true",
                   help="an opaque credential, as Adobe's sample (docs/adobe.md)")
    p.add_argument("--post", action="store_true",
                   help="also accept client_id/client_secret in the form body "
                        "(client_secret_post, the default of some OAuth libraries)")
    p.set_defaults(func=_cmd_client_add)

    p = commands.add_parser("hash-secret", help="prompt for a secret (or read it from "
                                                "stdin), print its hash")
    p.add_argument("--opaque", action="store_true",
                   help="a lookup hash for a high-entropy opaque credential (credential_hash)")
    p.set_defaults(func=_cmd_hash_secret)

    p = commands.add_parser("backend", help="the sample legacy backend")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--record", type=Path, default=None)
    p.set_defaults(func=_cmd_backend)

    p = commands.add_parser("demo", help="the whole flow on loopback, then exit")
    p.add_argument("--dir", type=Path, default=Path("."),
                   help="where certs/ and the demo's files go (default: here)")
    p.add_argument("--load-seconds", type=float, default=5.0)
    p.add_argument("--spool-redis", metavar="URL", default=None,
                   help="the spool route on Redis Streams at URL (spool.backend: redis) "
                        "instead of the local SQLite file")
    p.set_defaults(func=_cmd_demo)

    p = commands.add_parser("spool", help="the spool: stats, list, retry, purge")
    if command == "spool":
        from gateway.spool.commands import add_arguments as spool_arguments

        spool_arguments(p, DEFAULT_CONFIG)
    p.set_defaults(func=_cmd_spool)

    p = commands.add_parser("loadtest", help="the IRIS simulator under load")
    if command == "loadtest":
        from gateway.tools.loadtest_cli import add_arguments

        add_arguments(p)
    p.set_defaults(func=_cmd_loadtest)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(argv[0] if argv else None).parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
