"""Fixtures of the deployment tests: podman with the CI machine's settings and the image
built from the Dockerfile, once per session (container_harness.py)."""

from __future__ import annotations

import pytest

from container_harness import Podman, missing_tools

GATEWAY_TAG = "localhost/gateway-test:latest"


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    return Podman(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    """The gateway's image, on the local stand-in for python:3.11-slim-bookworm."""
    try:
        base = podman.base_image()
    except RuntimeError as exc:  # no cached base and no mmdebstrap to make one
        pytest.skip(str(exc))
    podman.build(base, GATEWAY_TAG)
    return GATEWAY_TAG
