#!/usr/bin/env bash
# Installs the newest release of everything pyproject.toml allows, in a scratch venv, and runs
# CI's checks there: what the next lock refresh would break, before it breaks anything.
# Usage: requirements/try-newest.sh [PYTEST ARGS...]   (docs/dependencies.md says when)
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
# shellcheck disable=SC1091
. "$scratch/venv/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
echo "newest versions that differ from requirements/test.txt:"
python - <<'PY'
import importlib.metadata, re
from packaging.utils import canonicalize_name
pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", open("requirements/test.txt").read(), re.M))
pins = {canonicalize_name(k): v for k, v in pins.items()}
for dist in sorted(importlib.metadata.distributions(), key=lambda d: d.metadata["Name"].lower()):
    name = canonicalize_name(dist.metadata["Name"])
    if name in pins and pins[name] != dist.version:
        print(f"  {name}: {pins[name]} -> {dist.version}")
PY
status=0
ruff check gateway tests bench || status=1
mypy gateway || status=1
pytest --deselect tests/test_lock.py "$@" || status=1
exit "$status"
