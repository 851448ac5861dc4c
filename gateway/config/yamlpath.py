"""Reading untrusted YAML into typed values while collecting every error with its path.

A ``Reader`` reads one value of a kind (an integer in bounds, a URL, a file that exists)
and says where it went wrong (``routes[0].upstream: must be an http(s) URL``). Errors are
collected, not raised, so that ``gateway check-config`` names every problem at once.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from gateway.config.hints import did_you_mean, one_of

__all__ = ["STATE_DIR_ENV", "ConfigError", "Reader", "load_yaml", "unique"]

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Relative paths of the files the gateway writes (pid file, state and spool) resolve against
# this directory when the variable is set (the container image sets /var/lib/gateway), so a
# configuration mounted read-only names none of them. Files it reads resolve against the
# configuration's own directory either way.
STATE_DIR_ENV = "GATEWAY_STATE_DIR"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The configuration is invalid; ``errors`` holds every ``path: reason`` line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Interpolated(str):
    """A string that came from ``${VAR}``; typed readers may convert it (a port from env)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` keeps the last of two equal keys silently; a config must not."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in mapping:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark)
        mapping[key] = loader.construct_object(value_node)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML text; a syntax error becomes a ConfigError naming the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise ConfigError([f"{source}: {where}: {problem}"]) from None


@dataclass
class Reader:
    """Typed access to a YAML tree, recording ``path: reason`` for every problem."""

    base_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    errors: list[str] = field(default_factory=list)
    # Valid but probably not meant (a direct route slower than IRIS waits, say): reported by
    # check-config and logged by serve, never a reason to refuse the file.
    warnings: list[str] = field(default_factory=list)
    # Where relative runtime paths resolve: $GATEWAY_STATE_DIR, else base_dir.
    state_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.state_dir = self.base_dir
        given = self.env.get(STATE_DIR_ENV, "")
        if not given:
            return
        if os.path.isabs(os.path.expanduser(given)):
            self.state_dir = Path(os.path.expanduser(given))
        else:
            self.fail(STATE_DIR_ENV, f"must be an absolute path, not {given!r} (environment)")

    def fail(self, path: str, reason: str) -> None:
        self.errors.append(f"{path}: {reason}")

    def warn(self, path: str, reason: str) -> None:
        self.warnings.append(f"{path}: {reason}")

    # -- structure -------------------------------------------------------------------
    def mapping(self, value: Any, path: str, allowed: Iterable[str]) -> dict[str, Any]:
        """A mapping with only ``allowed`` keys; ``None`` reads as empty."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, "expected a mapping")
            return {}
        allowed_list = list(allowed)
        for key in value:
            if key not in allowed_list:
                self.fail(_join(path, str(key)),
                          "unknown key" + did_you_mean(key, allowed_list))
        return {str(k): v for k, v in value.items() if k in allowed_list}

    def items(self, value: Any, path: str) -> list[tuple[str, Any]]:
        """The entries of a list with their paths; ``None`` reads as empty."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, "expected a list")
            return []
        return [(f"{path}[{i}]", item) for i, item in enumerate(value)]

    # -- scalars ---------------------------------------------------------------------
    def interpolate(self, value: Any, path: str) -> Any:
        if not isinstance(value, str) or "${" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            self.fail(path, f"environment variable {name} is not set")
            return ""

        return _Interpolated(_VAR.sub(substitute, value))

    def string(self, value: Any, path: str, *, default: str | None = None,
               choices: Iterable[str] | None = None, allow_empty: bool = False) -> str:
        value = self.interpolate(value, path)
        if value is None:
            if default is None:
                self.fail(path, "is required")
                return ""
            return default
        if not isinstance(value, str):
            self.fail(path, "expected a string")
            return default or ""
        if not value and not allow_empty:
            self.fail(path, "must not be empty")
        if choices is not None:
            options = list(choices)
            if value not in options:
                self.fail(path, one_of(value, options))
                # What follows reads a known value, never the refused one (a table keyed
                # by the enumeration would fail on it); the error already stops the load.
                return default if default is not None else options[0]
        return str(value)

    def choice(self, value: Any, path: str, choices: Sequence[str], *,
               default: str) -> str | None:
        """One of ``choices`` (``default`` when absent); None, after recording the error,
        when the value is none of them, so that checks depending on it can be skipped."""
        raw = self.interpolate(value, path)
        if raw is None:
            return default
        if not isinstance(raw, str):
            self.fail(path, "expected a string: " + one_of("", choices))
            return None
        if raw not in choices:
            self.fail(path, one_of(raw, choices))
            return None
        return str(raw)

    def optional_string(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        return self.string(value, path)

    def integer(self, value: Any, path: str, *, default: int | None = None,
                minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.interpolate(value, path)
        if value is None and default is not None:
            return default
        if isinstance(value, _Interpolated) and re.fullmatch(r"-?\d+", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "expected an integer")
            return default if default is not None else 0
        if minimum is not None and value < minimum:
            self.fail(path, f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            self.fail(path, f"must be at most {maximum}")
        return value

    def number(self, value: Any, path: str, *, default: float | None = None,
               minimum: float | None = None, maximum: float | None = None,
               positive: bool = False) -> float:
        value = self.interpolate(value, path)
        if value is None and default is not None:
            return default
        if isinstance(value, _Interpolated):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, "expected a number")
            return default if default is not None else 0.0
        if positive and value <= 0:
            self.fail(path, "must be greater than 0")
        if minimum is not None and value < minimum:
            self.fail(path, f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            self.fail(path, f"must be at most {maximum}")
        return float(value)

    def boolean(self, value: Any, path: str, *, default: bool) -> bool:
        value = self.interpolate(value, path)
        if value is None:
            return default
        if isinstance(value, _Interpolated) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.fail(path, "expected true or false")
            return default
        return value

    def string_list(self, value: Any, path: str, *, allow_scalar: bool = False) -> tuple[str, ...]:
        """A list of strings (or one string when ``allow_scalar``)."""
        if value is None:
            return ()
        if allow_scalar and isinstance(value, str):
            return (self.string(value, path),)
        return tuple(self.string(item, item_path) for item_path, item in self.items(value, path))

    # -- domain values ---------------------------------------------------------------
    def url(self, value: Any, path: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
        text = self.string(value, path)
        if not text:
            return text
        parts = urlsplit(text)
        if parts.scheme not in schemes or not parts.hostname:
            self.fail(path, "must be an " + "/".join(schemes).replace("http/https", "http(s)")
                      + " URL")
        return text

    def file(self, value: Any, path: str, *, check: Callable[[Path], str | None] | None = None,
             hint: str = "") -> Path:
        """A path relative to the config file that must exist (and pass ``check``)."""
        text = self.string(value, path)
        if not text:
            return Path()
        resolved = (self.base_dir / os.path.expanduser(text)).resolve()
        if not resolved.is_file():
            self.fail(path, f"file not found: {resolved}{hint}")
        elif check is not None and (problem := check(resolved)):
            self.fail(path, problem)
        return resolved

    def optional_file(self, value: Any, path: str,
                      *, check: Callable[[Path], str | None] | None = None) -> Path | None:
        return None if value is None else self.file(value, path, check=check)

    def networks(self, value: Any, path: str) -> tuple[Network, ...]:
        result: list[Network] = []
        for item_path, item in self.items(value, path):
            text = self.string(item, item_path)
            try:
                result.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                self.fail(item_path, "must be an IP address or CIDR (10.0.0.0/8, ::1/128)")
        return tuple(result)

    def check(self, condition: bool, path: str, reason: str) -> None:
        if not condition:
            self.fail(path, reason)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def unique(r: Reader, entries: list[tuple[str, str]], what: str) -> None:
    seen: dict[str, str] = {}
    for path, value in entries:
        if value and value in seen:
            r.fail(f"{path}.{what}", f"duplicate of {seen[value]}")
        seen.setdefault(value, path)

