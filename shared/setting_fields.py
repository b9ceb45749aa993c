"""How a `Settings` field (shared/config.py) declares its environment variable once: its
parser, default, alias and how a child process gets it (`setting`), and the parsers' errors
(`ConfigError`, naming the variable). Apart from the fields themselves, which are many."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, field
from typing import Any, NamedTuple

__all__ = [
    "ConfigError",
    "Parse",
    "Variable",
    "int_at_least",
    "on_off",
    "positive_float",
    "setting",
    "text",
]


class ConfigError(ValueError):
    """An environment variable holds a value ganforge cannot use; the message names it."""


# A parser turns (variable name for its error message, non-empty text) into a value, or None
# for "not given": the field's default.
Parse = Callable[[str, str], Any]


def text(name: str, raw: str) -> str:
    return raw


def int_at_least(minimum: int) -> Parse:
    """Parses an integer of at least `minimum`."""

    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    return parse


def positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def on_off(name: str, raw: str) -> bool | None:
    word = raw.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    if word:
        raise ConfigError(f"{name} must be 1 or 0, got {word!r}")
    return None


class Variable(NamedTuple):
    """How one Settings field is read from the environment and written for a child process:
    from `name` (else `alias`) by `parse`; when neither is set, `default`, or `derive(the fields
    read so far)` for a default that depends on another setting (no dataclass default then).
    `empty`, when given, is the value of a variable set to the empty string (which otherwise
    means "not given"). `to_env` writes it with `write`, unless `child` is False or it is an
    unset optional (None-default) setting, which the child then leaves unset too."""

    name: str
    default: Any = MISSING
    parse: Parse = text
    derive: Callable[[dict[str, Any]], Any] | None = None
    alias: str | None = None
    child: bool = True
    write: Callable[[Any], str] = str
    empty: Any = MISSING


def setting(env: str, default: Any = MISSING, parse: Parse = text, **options: Any) -> Any:
    """A Settings field whose `Variable` (in its metadata) `from_env` and `to_env` walk."""
    return field(default=default, metadata={"env": Variable(env, default, parse, **options)})
