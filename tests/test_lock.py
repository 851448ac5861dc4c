"""The installed set is the locked set, and the lock holds every dependency pyproject names.

``requirements/test.txt`` (runtime, test extra, CI's tools) and ``requirements/gateway.txt``
(runtime only) pin exact versions with hashes; ``requirements/lock.sh`` writes both from
``pyproject.toml``. These tests fail when the environment drifted from the lock (a package
installed at another version) or when ``pyproject.toml`` gained a dependency, or a range,
that the lock was not regenerated for.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def read_lock(path: Path) -> dict[str, tuple[Version, Marker | None]]:
    """``name → (version, marker)`` of every pin in a lock file; each pin carries hashes."""
    pins: dict[str, tuple[Version, Marker | None]] = {}
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        found = PIN.match(line)
        if found is None:
            continue
        name, version, marker = found.groups()
        assert lines[index + 1].strip().startswith("--hash=sha256:"), f"{name}: no hash"
        pins[canonicalize_name(name)] = (Version(version), Marker(marker) if marker else None)
    return pins


def project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]  # type: ignore[no-any-return]


TEST_LOCK = read_lock(ROOT / "requirements" / "test.txt")
RUNTIME_LOCK = read_lock(ROOT / "requirements" / "gateway.txt")


def test_every_installed_package_of_the_lock_is_the_locked_version() -> None:
    drifted = []
    for name, (version, marker) in TEST_LOCK.items():
        if marker is not None and not marker.evaluate():
            continue
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            drifted.append(f"{name}: locked {version}, not installed")
            continue
        if installed != version:
            drifted.append(f"{name}: locked {version}, installed {installed}")
    assert drifted == [], "install with pip install -r requirements/test.txt"


@pytest.mark.parametrize("extra", [None, "test"])
def test_every_dependency_of_pyproject_is_locked_within_its_range(extra: str | None) -> None:
    meta = project()
    if extra is None:
        names, lock = meta["dependencies"], RUNTIME_LOCK
    else:
        names, lock = meta["optional-dependencies"][extra], TEST_LOCK  # type: ignore[index]
    missing = []
    for text in names:  # type: ignore[attr-defined]
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pinned = lock.get(canonicalize_name(requirement.name))
        if pinned is None or pinned[0] not in requirement.specifier:
            missing.append(f"{text}: locked {pinned[0] if pinned else 'nothing'}")
    assert missing == [], "run requirements/lock.sh (docs/dependencies.md)"


def test_the_runtime_lock_pins_what_the_test_lock_pins() -> None:
    differ = {name: (pin[0], TEST_LOCK.get(name, (None,))[0])
              for name, pin in RUNTIME_LOCK.items() if TEST_LOCK.get(name, (None,))[0] != pin[0]}
    assert differ == {}


def test_the_build_backend_is_locked() -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        requires = tomllib.load(file)["build-system"]["requires"]
    for text in requires:
        requirement = Requirement(text)
        for lock in (RUNTIME_LOCK, TEST_LOCK):
            assert lock[canonicalize_name(requirement.name)][0] in requirement.specifier


def test_read_lock_sees_a_drifted_pin(tmp_path: Path) -> None:
    """The parser the checks above rely on reads pins, markers and hashes."""
    lock = tmp_path / "lock.txt"
    lock.write_text("uvloop==0.23.0 ; sys_platform != 'win32' \\\n    --hash=sha256:ab\n"
                    "pyjwt==2.15.1 \\\n    --hash=sha256:cd\n    # via x\n")
    pins = read_lock(lock)
    assert pins["pyjwt"] == (Version("2.15.1"), None)
    assert str(pins["uvloop"][1]) == 'sys_platform != "win32"'
