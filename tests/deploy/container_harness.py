"""Podman for the image tests: a local base image, the gateway's image built from the
Dockerfile, and containers that are removed whatever the test did.

No registry is reachable in CI, so the base is made here: Debian's ``mmdebstrap`` writes a
bookworm root file system with Debian's Python 3.11 (``python3``, ``python3-venv``), cached
as a tarball between runs, and ``podman import`` makes it an image; the Dockerfile's ``BASE``
build argument names it in place of ``python:3.11-slim-bookworm``. The build reaches the
package index through the host network with this machine's CA bundle and ``pip.conf``
mounted read-only; the run stage runs no command, so neither stays in the image.

Findings on the CI machine: ``crun`` cannot set rlimits there, hence ``--runtime runc`` and
a ``containers.conf`` with ``default_ulimits = []``; podman's health-check timers need
systemd, which a CI container lacks, hence ``--health-interval disable`` and explicit
``podman healthcheck run``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["BASE_PACKAGES", "Podman", "free_port", "http_get", "missing_tools"]

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Documentation and translations are not needed to run Python.
_EXCLUDE = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")
_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_PIP_CONF = Path("/etc/pip.conf")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """Status and body of a plain GET on loopback; 0 while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def missing_tools() -> str | None:
    """Why the image tests cannot run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (.ci/run installs podman, runc and mmdebstrap)"
    if shutil.which("runc") is None:
        return "runc is not installed"
    if os.geteuid() != 0:
        return "the image tests run rootful podman (CI runs as root)"
    return None


def _cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "gateway-tests"


class Podman:
    """``podman`` with the CI machine's settings; every call has a deadline."""

    def __init__(self, config_dir: Path) -> None:
        conf = config_dir / "containers.conf"
        conf.write_text('[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(self, *args: str, check: bool = True, timeout: float = 120.0
                 ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: exit {done.returncode}\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def base_image(self, name: str = "python3", packages: tuple[str, ...] = BASE_PACKAGES
                   ) -> str:
        """A bookworm image of ``packages``: the local stand-in for
        python:3.11-slim-bookworm by default, made once and cached."""
        key = hashlib.sha256(" ".join((SUITE, *packages, *_EXCLUDE)).encode()
                             ).hexdigest()[:12]
        tag = f"localhost/gateway-test-{name}:{SUITE}-{key}"
        if self("image", "exists", tag, check=False).returncode == 0:
            return tag
        tarball = _cache_dir() / f"{SUITE}-{name}-{key}.tar"
        if not tarball.exists():
            if shutil.which("mmdebstrap") is None:
                raise RuntimeError("mmdebstrap is not installed")
            tarball.parent.mkdir(parents=True, exist_ok=True)
            partial = tarball.with_suffix(".partial.tar")
            subprocess.run(
                ["mmdebstrap", "--variant=essential", "--include=" + ",".join(packages),
                 *(f"--dpkgopt=path-exclude={p}" for p in _EXCLUDE), SUITE, str(partial),
                 MIRROR], check=True, capture_output=True, timeout=900)
            partial.rename(tarball)
        self("import", "--quiet", str(tarball), tag, timeout=300)
        return tag

    def build(self, base: str, tag: str) -> subprocess.CompletedProcess[str]:
        """``podman build`` of the repository's Dockerfile on ``base`` (layers cached)."""
        mounts: list[str] = []
        for path in (_CA_BUNDLE, _PIP_CONF):
            if path.exists():
                mounts += ["--volume", f"{path}:{path}:ro"]
        return self("build", "--pull=never", "--runtime", "runc", "--network", "host",
                    "--format", "docker", "--build-arg", f"BASE={base}", *mounts,
                    "--tag", tag, str(REPO), timeout=900)
