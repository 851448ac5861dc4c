"""The listeners over real sockets (docs/security.md, docs/operations.md, docs/architecture.md):
TLS only on the public port,
the http_port refusal, HSTS, the admin listener, 404/405, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.serve.server import RunningGateway
from gateway.serve.tls import INTERMEDIATE_CIPHERS

from e2e_harness import CLIENT_ID, CLIENT_SECRET, basic


async def test_tls12_handshake_with_the_configured_chain(
        gateway: RunningGateway, client_ssl_ctx: ssl.SSLContext) -> None:
    # Verification against the dev CA proves the configured chain is the one served.
    _, writer = await asyncio.open_connection(
        "127.0.0.1", gateway.ports["https"], ssl=_pinned(client_ssl_ctx, ssl.TLSVersion.TLSv1_2),
        server_hostname="localhost")
    ssl_object = writer.get_extra_info("ssl_object")
    assert ssl_object.version() == "TLSv1.2"
    assert ssl_object.cipher()[0] in INTERMEDIATE_CIPHERS.split(":")
    writer.close()
    await writer.wait_closed()


def _pinned(base: ssl.SSLContext, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=_ca_pem(base))
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1 clients; this one exists to be refused.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    return context


def _ca_pem(context: ssl.SSLContext) -> str:
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in context.get_ca_certs(binary_form=True))


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
async def test_old_tls_versions_are_refused(gateway: RunningGateway,
                                            client_ssl_ctx: ssl.SSLContext,
                                            version: ssl.TLSVersion) -> None:
    context = _pinned(client_ssl_ctx, version)
    context.set_ciphers("ALL:@SECLEVEL=0")

    def handshake() -> None:
        with socket.create_connection(("127.0.0.1", gateway.ports["https"]), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="localhost"):
            pass

    with pytest.raises(ssl.SSLError) as refused:
        await asyncio.to_thread(handshake)
    # The server refused (an alert, or asyncio's abort without one), not the client: a
    # client unable to offer the version would fail with NO_PROTOCOLS_AVAILABLE instead.
    assert refused.value.reason in ("TLSV1_ALERT_PROTOCOL_VERSION",
                                    "UNEXPECTED_EOF_WHILE_READING")


async def test_tls13_is_accepted(gateway: RunningGateway, client_ssl_ctx: ssl.SSLContext) -> None:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", gateway.ports["https"], ssl=_pinned(client_ssl_ctx, ssl.TLSVersion.TLSv1_3),
        server_hostname="localhost")
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
    writer.close()
    await writer.wait_closed()


async def test_plain_http_on_the_tls_port_gets_nothing_useful(gateway: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.ports["https"])
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    assert b"HTTP/1.1 200" not in answer
    assert b"access_token" not in answer


async def test_http_port_answers_403_json_without_reading_credentials(
        gateway: RunningGateway) -> None:
    async with aiohttp.ClientSession() as client:
        for method, path in (("POST", "/oauth2/token"), ("GET", "/segments/aam"),
                             ("GET", "/nothing-here")):
            async with client.request(
                    method, f"http://127.0.0.1:{gateway.ports['http']}{path}",
                    headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)},
                    data="grant_type=client_credentials") as response:
                assert response.status == 403
                assert response.content_type == "application/json"
                assert await response.json() == {"error": "invalid_request",
                                                  "error_description": "HTTPS is required"}
                assert "Strict-Transport-Security" not in response.headers


async def test_hsts_on_every_tls_response(gateway: RunningGateway,
                                          session: aiohttp.ClientSession) -> None:
    base = f"https://localhost:{gateway.ports['https']}"
    for method, path in (("GET", "/.well-known/jwks.json"), ("GET", "/nowhere"),
                         ("GET", "/oauth2/token"), ("POST", "/segments/aam")):
        async with session.request(method, base + path) as response:
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_hsts_on_answers_made_before_any_middleware(
        gateway: RunningGateway, client_ssl_ctx: ssl.SSLContext) -> None:
    # A head that does not parse and a refused HTTP version are answered by the
    # connection handler itself, not the application: HSTS all the same.
    for request in (b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
                    b"GET /x HTTP/2.0\r\nHost: a\r\n\r\n"):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", gateway.ports["https"], ssl=client_ssl_ctx,
            server_hostname="localhost")
        writer.write(request)
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).lower()
        writer.close()
        assert head.split(b" ")[1] in (b"400", b"505")
        assert b"\r\nstrict-transport-security: max-age=31536000" in head


async def test_unknown_path_404_and_wrong_method_405(gateway: RunningGateway,
                                                     session: aiohttp.ClientSession) -> None:
    base = f"https://localhost:{gateway.ports['https']}"
    async with session.get(base + "/nowhere") as response:
        assert response.status == 404
        body = await response.json()  # no "error": a 404 is no OAuth error (errors/http.py)
        assert set(body) == {"error_description"}
        assert body["error_description"].startswith("No route matches this path.")
    async with session.delete(base + "/segments/aam") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, POST"
        assert (await response.json())["error"] == "method_not_allowed"
    async with session.get(base + "/oauth2/token") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize("path", ["/livez", "/healthz"])
async def test_healthz_on_the_admin_port_only(gateway: RunningGateway,
                                              session: aiohttp.ClientSession,
                                              path: str) -> None:
    async with aiohttp.ClientSession() as plain, \
            plain.get(f"http://127.0.0.1:{gateway.ports['admin']}{path}") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
    async with session.get(f"https://localhost:{gateway.ports['https']}{path}") as response:
        assert response.status == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_exits_0_on_sigterm(tmp_path: Path, cert_dir: Path,
                                  signing_keys: dict[str, Path], secret_hash: str) -> None:
    from e2e_harness import base_config

    config: dict[str, Any] = base_config(cert_dir, signing_keys, secret_hash,
                                         "http://127.0.0.1:9/x")
    config["server"]["port"] = _free_port()
    config["server"]["admin"]["port"] = _free_port()
    config["server"]["http_port"] = None
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
        _stop_and_check(process)


def _stop_and_check(process: subprocess.Popen[str]) -> None:
    try:
        assert process.stdout is not None
        while True:
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "no output"
            if line.startswith("gateway serving"):
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        remaining = process.stdout.read()
        assert any(json.loads(x).get("reason_id") == "stopped"
                   for x in remaining.splitlines() if x.startswith("{"))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(
        cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        write_config: Any, start: Any) -> None:
    from e2e_harness import base_config

    config = base_config(cert_dir, signing_keys, secret_hash, "http://127.0.0.1:9/x")
    config["server"]["trusted_proxies"] = ["127.0.0.1/32"]
    trusted = await start(write_config(config))
    config["server"]["trusted_proxies"] = ["10.0.0.0/8"]
    untrusted = await start(write_config(config))
    jwks = "/.well-known/jwks.json"
    async with aiohttp.ClientSession() as client:
        async def status(port: int, headers: list[tuple[str, str]]) -> int:
            async with client.get(f"http://127.0.0.1:{port}{jwks}", headers=headers) as r:
                return r.status

        https_once = [("X-Forwarded-Proto", "https")]
        assert await status(trusted.ports["http"], https_once) == 200
        assert await status(trusted.ports["http"], []) == 403
        assert await status(trusted.ports["http"], [("X-Forwarded-Proto", "http")]) == 403
        assert await status(trusted.ports["http"], https_once * 2) == 403
        assert await status(untrusted.ports["http"], https_once) == 403


async def test_client_certificates_required_when_client_ca_is_set(
        cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        write_config: Any, start: Any, client_ssl_ctx: ssl.SSLContext, tmp_path: Path) -> None:
    import trustme

    from e2e_harness import base_config

    client_ca = trustme.CA()
    client_ca.cert_pem.write_to_path(str(tmp_path / "client-ca.pem"))
    config = base_config(cert_dir, signing_keys, secret_hash, "http://127.0.0.1:9/x")
    config["server"]["tls"]["client_ca_file"] = str(tmp_path / "client-ca.pem")
    running = await start(write_config(config))
    url = f"https://localhost:{running.ports['https']}/.well-known/jwks.json"

    without = _pinned(client_ssl_ctx, ssl.TLSVersion.TLSv1_2)
    with pytest.raises(aiohttp.ClientError):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=without)) as c, \
                c.get(url) as response:
            await response.read()

    with_cert = _pinned(client_ssl_ctx, ssl.TLSVersion.TLSv1_2)
    client_ca.issue_cert("iris.client.example").configure_cert(with_cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=with_cert)) as c, \
            c.get(url) as response:
        assert response.status == 200
