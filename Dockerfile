# The gateway's container image (docs/deploy.md, "Container image").
#
#   podman build --format docker -t gateway .      # --format docker keeps the HEALTHCHECK
#   podman run --read-only -v ./etc:/etc/gateway:ro -p 8443:8443 gateway
#
# Base: Python's official slim image of Debian 12 (bookworm): maintained by the Docker
# official-images team and rebuilt for every Python and Debian security release, the Python
# (3.11) the lock is made for, and glibc, so every locked package installs from its
# manylinux wheel (no compiler in any stage). BASE may name a local image of the same
# Python on the same Debian (tests/deploy/test_image.py builds one with mmdebstrap).
ARG BASE=docker.io/library/python:3.11-slim-bookworm

# -- build: the locked set and the project, into a venv ---------------------------------
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/gateway
# The lock first, so a change to the code alone reuses this layer.
COPY requirements/gateway.txt /tmp/gateway.txt
RUN /opt/gateway/bin/pip install --quiet --require-hashes --only-binary=:all: \
        -r /tmp/gateway.txt
COPY pyproject.toml README.md /src/
COPY gateway /src/gateway
# --no-deps: nothing beyond the lock; --no-build-isolation: built with the locked setuptools.
RUN /opt/gateway/bin/pip install --quiet --no-deps --no-build-isolation /src \
    && /opt/gateway/bin/pip check \
    && /opt/gateway/bin/python -m pip uninstall --quiet --yes setuptools pip
# What the run stage adds to the base besides the venv, staged here so that stage runs no
# command at all: a numeric user without a home or shell, and its state directory.
RUN mkdir -p /stage/etc/gateway /stage/var/lib/gateway \
    && cp /etc/passwd /etc/group /stage/etc/ \
    && echo 'gateway:x:10001:10001:gateway:/var/lib/gateway:/usr/sbin/nologin' \
        >> /stage/etc/passwd \
    && echo 'gateway:x:10001:' >> /stage/etc/group \
    && chown 10001:10001 /stage/var/lib/gateway && chmod 0750 /stage/var/lib/gateway

# -- run ---------------------------------------------------------------------------------
FROM ${BASE}
COPY --from=build /stage/ /
COPY --from=build /opt/gateway /opt/gateway
# GATEWAY_STATE_DIR: relative pid, state and spool paths resolve here, not beside the
# read-only configuration (docs/configuration.md, "Relative paths").
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_STATE_DIR=/var/lib/gateway \
    HOME=/var/lib/gateway
WORKDIR /var/lib/gateway
VOLUME /var/lib/gateway
USER 10001:10001
EXPOSE 8443 9090
STOPSIGNAL SIGTERM
# The admin listener's liveness answer, without curl. GATEWAY_HEALTHCHECK_URL follows a
# configuration whose admin listener is elsewhere than 127.0.0.1:9090.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('GATEWAY_HEALTHCHECK_URL', 'http://127.0.0.1:9090/livez'), timeout=2)"]
# No key, certificate or secret is in the image: mount them (docs/deploy.md).
CMD ["gateway", "serve", "-c", "/etc/gateway/config.yaml"]
