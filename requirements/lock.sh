#!/usr/bin/env bash
# Regenerates the locks from pyproject.toml (and requirements/build.in):
#   requirements/test.txt     runtime + the test extra + the tools CI runs, with hashes
#   requirements/gateway.txt  runtime only, the same pins (constrained by test.txt)
# Existing pins are kept unless asked to move: pass --upgrade (all) or
# --upgrade-package NAME (one). Needs uv (pip install uv). See docs/dependencies.md.
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--universal --python-version 3.11 --generate-hashes --quiet
        --custom-compile-command "requirements/lock.sh")
uv pip compile pyproject.toml requirements/build.in --extra test "${common[@]}" "$@" \
    --output-file requirements/test.txt
uv pip compile pyproject.toml requirements/build.in "${common[@]}" \
    --constraint requirements/test.txt --output-file requirements/gateway.txt
