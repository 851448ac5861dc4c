"""SIGHUP: re-read the configuration and swap it in without a restart (README.md,
docs/architecture.md).

A valid file replaces clients, keys, routes and upstream pools in one assignment
(``RuntimeSlot.swap``): new requests use the new ones, in-flight ones finish on the old.
The public listener's certificate chain is loaded into the live TLS context, which serves
every new handshake with it (certificate renewal without a restart). An invalid file
changes nothing: the running configuration keeps serving and every error is logged with
its YAML path. What a running listener cannot change (addresses, ports, workers, the
admin listener, trusted proxies, the body bound, the state file, the spool section, the log
format) keeps
its running value, and a warning says it needs a restart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import ssl

from aiohttp import web

from gateway import keys
from gateway.config import ConfigError, Settings, TLSSettings, load
from gateway.serve.runtime import Runtime
from gateway.serve.tls import server_context

__all__ = ["apply_tls", "log_refusal", "merge_restart_only", "prepare_reload", "reload_app"]

log = logging.getLogger("gateway.reload")

_RESTART_ONLY = ("host", "port", "workers", "http_port", "trusted_proxies", "max_body_bytes",
                 "admin", "pid_file", "max_connections_per_address")


def merge_restart_only(running: Settings, new: Settings) -> tuple[Settings, list[str]]:
    """``new`` with the running values of what needs a restart, and the names of those
    that the file changed."""
    changed = [f"server.{name}" for name in _RESTART_ONLY
               if getattr(running.server, name) != getattr(new.server, name)]
    if running.state != new.state:
        changed.append("state")
    if running.spool != new.spool:
        changed.append("spool")
    if running.logging.format != new.logging.format:
        changed.append("logging.format")
    merged = dataclasses.replace(
        new,
        server=dataclasses.replace(running.server, tls=new.server.tls),
        state=running.state,
        spool=running.spool,
        logging=dataclasses.replace(new.logging, format=running.logging.format),
    )
    return merged, changed


def apply_tls(context: ssl.SSLContext, tls: TLSSettings) -> None:
    """Load ``tls`` into a live server context; later handshakes use it."""
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    context.minimum_version = server_context(tls).minimum_version
    if tls.client_ca_file is not None:
        context.load_verify_locations(cafile=str(tls.client_ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE


def prepare_reload(running: Settings) -> tuple[Settings, list[str]]:
    """Read ``running``'s file again and check what a reload would load; raises
    ConfigError with YAML paths. Returns the settings to swap in and the restart-only
    names the file changed."""
    settings, restart = merge_restart_only(running, load(running.source))
    try:
        server_context(settings.server.tls)  # the new chain and key must load together
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError([f"server.tls: cannot load the certificate chain and key: "
                           f"{exc.__class__.__name__}"]) from None
    return settings, restart


def log_refusal(exc: Exception) -> None:
    """Log a reload that did not happen: every ``path: reason`` of a ConfigError, or the
    type of anything else that failed while the new configuration was being built (only
    the type: an exception's text may quote a secret from the file)."""
    lines = exc.errors if isinstance(exc, ConfigError) else [
        f"the new configuration could not be built: {exc.__class__.__name__}"]
    for line in lines:
        log.error("reload refused, the running configuration stays: %s", line,
                  extra={"reason_id": "reload_invalid"})


async def reload_app(app: web.Application) -> bool:
    """Reload ``app``'s configuration file; True when the new one is now serving."""
    metrics = app[keys.METRICS]
    runtime = None
    try:
        settings, restart = prepare_reload(app[keys.SETTINGS])
        runtime = Runtime(settings, app[keys.SHARED_STATE], metrics, app[keys.SPOOL])
        await runtime.forwarder.start()
    except Exception as exc:  # any failure is a refused reload, never a dead task
        if runtime is not None:
            with contextlib.suppress(Exception):  # its pools, if any opened
                await runtime.forwarder.close()
        log_refusal(exc)
        metrics.count("gateway_config_reloads_total", "error")
        return False
    app[keys.RUNTIME].swap(runtime)
    apply_tls(app[keys.TLS_CONTEXT], settings.server.tls)
    logging.getLogger().setLevel(settings.logging.level.upper())
    for name in restart:
        log.warning("%s changed; it takes effect after a restart", name,
                    extra={"reason_id": "restart_required"})
    metrics.count("gateway_config_reloads_total", "ok")
    log.info("configuration reloaded", extra={
        "reason_id": "reloaded", "clients": len(settings.clients),
        "routes": len(settings.routes), "keys": [k.kid for k in settings.tokens.keys]})
    return True
