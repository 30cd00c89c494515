"""Declared options: dataclass fields that carry a help text and an allowed range.

Run configs and strategy configs alike declare their fields with `option(...)` and are built from
plain mappings (YAML, `--set`) by `build_dataclass`, which coerces each value to its annotated
type and checks its range, so every option explains itself in `--help`, in `clbench list
strategies -v` and in its error. Light on purpose: the quick CLI commands import it without torch.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import field
from typing import Any, Literal

from clbench.errors import ConfigError
from clbench.names import closest

__all__ = ["build_dataclass", "coerce", "describe_options", "option", "range_text"]


def option(default: Any, help: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, **kwargs: Any) -> Any:
    """A dataclass field with a help text and an optional allowed range.

    `low`/`high` bound numeric values (inclusive; `low_open=True` excludes `low`). Used by run
    configs and strategy configs alike, so every option explains itself in `--help` and errors.
    """
    metadata = {"help": help, "low": low, "high": high, "low_open": low_open}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    return field(default=default, metadata=metadata, **kwargs)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert `value` to the annotated type `tp`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        is_null = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_null and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(key, value, arg)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        near = closest(str(value), [str(c) for c in choices])
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"{key}: {value!r} is not {_type_name(tp)}{hint}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (inner,) = typing.get_args(tp)[:1] or (Any,)
        return [coerce(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if origin is dict or tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _number(value: float) -> str:
    """A bound as a person writes it: 0 (not 0.0), 100, 0.15, 1e-08."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def range_text(meta: typing.Mapping[str, Any]) -> str | None:
    """The allowed range of an option (its field's metadata) as a person reads it: "> 0",
    "≥ 1", "≤ 100", "0 to 1", "> 0 and ≤ 1"; None when it has no bound. The same words
    appear in `clbench list strategies -v` and in the error of a value outside it."""
    low, high = meta.get("low"), meta.get("high")
    if low is None and high is None:
        return None
    if low is None:
        return f"≤ {_number(high)}"
    above = f"> {_number(low)}" if meta.get("low_open") else f"≥ {_number(low)}"
    if high is None:
        return above
    if meta.get("low_open"):
        return f"{above} and ≤ {_number(high)}"
    return f"{_number(low)} to {_number(high)}"


def _check_range(key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    low, high = meta.get("low"), meta.get("high")
    too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        raise ConfigError(f"{key}: {value!r} is outside the allowed range ({range_text(meta)})")


def build_dataclass(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """Instantiate dataclass `cls` from a plain mapping, validating every key and value.

    Errors name the full key (`prefix.field`) and suggest the closest field for unknown keys.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in values.items():
        if name not in fields:
            near = closest(name, fields)
            hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
            raise ConfigError(f"unknown config key '{prefix}{name}'{hint}",
                              hint=f"valid keys: {', '.join(prefix + f for f in fields)}")
        coerced = coerce(prefix + name, value, hints[name])
        _check_range(prefix + name, coerced, fields[name].metadata)
        kwargs[name] = coerced
    try:
        obj = cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {err}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()  # cross-field checks; raise ConfigError themselves
    return obj


def describe_options(cls: type) -> list[dict[str, Any]]:
    """Every field as {name, type, default, help, range} (`range_text`; None when unbounded):
    what `clbench list strategies -v` shows of each parameter."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        rows.append({"name": f.name, "type": _type_name(hints[f.name]), "default": default,
                     "help": f.metadata.get("help", ""), "range": range_text(f.metadata)})
    return rows
