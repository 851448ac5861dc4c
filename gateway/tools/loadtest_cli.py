"""``gateway loadtest``: the IRIS simulator's command line (README.md, docs/operations.md).

Parses the options into ``loadtest.LoadOptions``, runs ``loadtest.run_load`` on uvloop when
it is installed, and prints the report (a table, or one JSON object with ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

from gateway.tools.loadtest import run_load
from gateway.tools.loadtest_html import write_report
from gateway.tools.loadtest_options import (
    DEFAULT_DURATION_S,
    IRIS_TIMEOUT_S,
    LoadOptions,
    LoadTestError,
    UsageError,
    basic_credential,
)

__all__ = ["add_arguments", "options_from_args", "run"]

# AEP's configurable aggregation sends 1,000 to 10,000 profiles a call: its smallest batch.
AEP_PROFILES = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``gateway loadtest`` options (README.md, docs/operations.md)."""
    parser.add_argument("url", help="segment endpoint, e.g. https://127.0.0.1:8443/segments/aam")
    auth = parser.add_argument_group("credentials: --client-id and --secret, or --credential")
    auth.add_argument("--client-id", help="client id (RFC 6749 §2.3.1 Basic form)")
    auth.add_argument("--secret", help="client secret (RFC 6749 §2.3.1 Basic form)")
    auth.add_argument("--credential", help="opaque credential, sent as 'Basic CREDENTIAL'")
    parser.add_argument("--token-url", help="default: the URL's origin + /oauth2/token")
    parser.add_argument("--admin-url", metavar="URL",
                        help="the gateway's admin listener (http://127.0.0.1:9090): its "
                             "/metrics tell whether the gateway or the backend was the limit")
    parser.add_argument("--method", type=str.upper, choices=("POST", "GET"), default="POST")
    parser.add_argument("--profile", choices=("iris", "aep"), default="iris",
                        help="the caller simulated: IRIS (Basic token request, aam-segments "
                             "pushes; the default) or Adobe Experience Platform (credentials "
                             "in the form body, batches of profiles; docs/aep.md)")
    parser.add_argument("--users-per-request", type=int, default=None, metavar="N",
                        help="IRIS: users in each push (default 10, IRIS's default maximum)")
    parser.add_argument("--profiles-per-request", type=int, default=None, metavar="N",
                        help=f"AEP: profiles in each batch (default {AEP_PROFILES})")
    parser.add_argument("--concurrency", type=int, default=16, metavar="N",
                        help="pushes in flight at once, one connection each (default 16)")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help=f"default {DEFAULT_DURATION_S:g}; with --requests, a safety cap")
    parser.add_argument("--requests", type=int, metavar="N", help="stop after N pushes")
    parser.add_argument("--rate", type=float, metavar="R", help="pace at R requests/s in all")
    parser.add_argument("--timeout", type=float, default=IRIS_TIMEOUT_S, metavar="SECONDS",
                        help="per request (IRIS allows 3 s)")
    parser.add_argument("--seed", type=int, default=0, help="payload generator seed")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--ca", metavar="FILE", help="CA certificate(s) to trust (PEM)")
    tls.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a target that is not loopback (only hosts you own)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--report", type=Path, metavar="FILE.html",
                        help="also write a self-contained HTML report with charts")


def _per_request(args: argparse.Namespace) -> int:
    """Users (IRIS) or profiles (AEP) per push; the other profile's flag is refused."""
    if args.profile == "aep":
        if args.users_per_request is not None:
            raise UsageError("--profile aep pushes profiles: use --profiles-per-request")
        given = args.profiles_per_request
        return AEP_PROFILES if given is None else int(given)
    if args.profiles_per_request is not None:
        raise UsageError("--profiles-per-request needs --profile aep")
    return 10 if args.users_per_request is None else int(args.users_per_request)


def options_from_args(args: argparse.Namespace) -> LoadOptions:
    if args.credential is not None and (args.client_id is not None or args.secret is not None):
        raise UsageError("give --client-id and --secret, or --credential, not both")
    per_request = _per_request(args)
    if args.profile == "aep":
        if args.credential is not None:
            raise UsageError("--profile aep sends --client-id and --secret in the form body; "
                             "AEP has no opaque credential")
        credential = ""
    elif args.credential is not None:
        credential = args.credential
    elif args.client_id is not None and args.secret is not None:
        credential = basic_credential(args.client_id, args.secret)
    else:
        raise UsageError("credentials missing: give --client-id and --secret, or --credential")
    return LoadOptions(
        url=args.url, credential=credential, token_url=args.token_url, method=args.method,
        profile=args.profile, client_id=args.client_id, client_secret=args.secret,
        users_per_request=per_request, concurrency=args.concurrency,
        duration=args.duration, requests=args.requests, rate=args.rate, timeout=args.timeout,
        ca_file=args.ca, insecure=args.insecure, allow_remote=args.allow_remote, seed=args.seed,
        progress=not (args.json or args.no_progress) and sys.stdout.isatty(),
        admin_url=args.admin_url,
    )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _check_writable(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report {path}: cannot create its folder: "
                         f"{exc.strerror or exc}") from None
    if path.is_dir():
        raise UsageError(f"--report {path}: is a folder, give a file name")


def run(args: argparse.Namespace) -> int:
    """0: the run completed and at least one push got 200; 1: none did; 2: usage error."""
    try:
        options = options_from_args(args)
        if args.report is not None:  # before the run, not after it: a wasted run loses data
            _check_writable(args.report)
        if options.insecure:
            print("gateway loadtest: WARNING: --insecure, the server certificate is not "
                  "verified", file=sys.stderr)
        if urlsplit(options.url).scheme == "http":
            print("gateway loadtest: WARNING: plain http; IRIS only ever uses https",
                  file=sys.stderr)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            report = runner.run(run_load(options))
    except UsageError as exc:
        print(f"gateway loadtest: {exc}", file=sys.stderr)
        return 2
    except LoadTestError as exc:
        print(f"gateway loadtest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gateway loadtest: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report.to_dict(), sort_keys=True))
    elif sys.stdout.isatty():
        report.render(Console())
    else:
        print(report.format_text())  # whole lines, never wrapped to a console's width
    if args.report is not None:
        try:
            written = write_report(report, report.samples, args.report)
        except OSError as exc:
            print(f"gateway loadtest: cannot write {args.report}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        print(f"gateway loadtest: report written to {written}", file=sys.stderr)
    return 0 if report.successes else 1
