"""What an idle TLS connection costs a worker, and whether TLS handshakes leave anything behind.

    python bench/connection_memory.py             # 100 and 250 idle connections held, then closed
    python bench/connection_memory.py --held 500

Starts ``gateway serve`` on loopback with the soak's configuration (``soak.write_setup``),
holds N idle TLS connections open (from 127.0.0.2 upwards, 200 per address, under
``max_connections_per_address``), and prints the gateway's RSS and main-heap RSS idle,
while they are held, and once they are closed and a heap trim has passed. Then it runs
2,000 TLS 1.2 and TLS 1.3 handshakes against a server context made by the gateway's own
``server_context`` and prints how many sessions that context caches (``session_stats``).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import free_port, wait_port
from soak import proc_figures, write_setup

from gateway.config import TLSSettings
from gateway.serve.malloc import TRIM_SECONDS
from gateway.serve.tls import server_context


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, the [heap] mapping's Rss) of ``pid``, in MiB."""
    total = proc_figures(pid)[0]
    heap, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if "-" in line.split(" ", 1)[0]:
            inside = line.endswith("[heap]")
        elif inside and line.startswith("Rss:"):
            heap += int(line.split()[1])
    return total / 1024, heap / 1024


def figures(label: str, pid: int) -> str:
    total, heap = rss_mib(pid)
    return f"{label}: RSS {total:.1f} MiB, heap {heap:.1f} MiB"


async def hold(pid: int, port: int, context: ssl.SSLContext, counts: list[int]) -> None:
    await asyncio.sleep(1.0)
    print(figures("idle", pid))
    for count in counts:
        streams = [await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost",
            local_addr=(f"127.0.0.{2 + i // 200}", 0)) for i in range(count)]
        await asyncio.sleep(1.0)
        print(figures(f"{count} held", pid))
        for _, writer in streams:
            writer.close()
        await asyncio.sleep(TRIM_SECONDS + 2.0)
        print(figures(f"{count} closed", pid))


async def handshakes(directory: Path, count: int) -> None:
    settings = TLSSettings(cert_file=directory / "server.crt", key_file=directory / "server.key")
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        server_side = server_context(settings)
        client = ssl.create_default_context(cafile=str(directory / "ca.crt"))
        client.maximum_version = version

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_side)
        port = server.sockets[0].getsockname()[1]
        for _ in range(count):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname="localhost")
            writer.write(b"x")
            await reader.read()
            writer.close()
        server.close()
        stats = server_side.session_stats()
        print(f"{version.name}: {stats['accept_good']} handshakes, "
              f"{stats['number']} sessions cached")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held", type=int, action="append",
                        help="connections to hold (repeatable; default 100 and 250)")
    args = parser.parse_args()
    counts = args.held or [100, 250]
    if not all(1 <= n <= 1000 for n in counts):
        parser.error("--held: 1 to 1000")
    directory = Path(tempfile.mkdtemp(prefix="gateway-connmem-"))
    https, admin, backend = free_port(), free_port(), free_port()
    config = write_setup(directory, https, admin, backend)
    gateway = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(config)],
                               stdout=subprocess.DEVNULL)
    try:
        wait_port(https, 30)
        context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
        asyncio.run(hold(gateway.pid, https, context, counts))
        asyncio.run(handshakes(directory, 2_000))
    finally:
        gateway.terminate()
        gateway.wait(timeout=40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
