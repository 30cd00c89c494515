"""Reading a YAML file a user wrote (run configs, scenario and dataset declarations).

Every way such a file can be wrong (missing, a directory, unreadable, not UTF-8, malformed,
not a mapping) becomes one ConfigError that names the file and, for malformed YAML, the line,
so no caller shows a traceback for a file someone typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from clbench.errors import ConfigError

__all__ = ["deep_merge", "load_yaml_file", "read_yaml_mapping"]


def read_yaml_mapping(path: str | Path, what: str = "YAML file") -> dict[str, Any]:
    """The top-level mapping of the YAML file at `path` ({} for an empty file).

    `what` names the file's role in errors ("config file", "scenario file", ...).
    """
    data, _ = load_yaml_file(path, what)
    return data if data is not None else {}


def load_yaml_file(path: str | Path, what: str = "YAML file",
                   error: type[ConfigError] = ConfigError) -> tuple[dict[str, Any] | None, str]:
    """(top-level mapping or None for an empty file, the decoded text) of the YAML file at
    `path`; every problem raises `error` (a ConfigError subclass) naming the file."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {path} is a directory", hint=f"pass the path of a {what}")
    if not path.is_file():
        raise error(f"{what} not found: {path}", hint="check the path")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise error(f"cannot read {what} {path}: {err.strerror or err}",
                    hint="check the file's permissions") from None
    try:
        text = raw.decode("utf-8-sig")  # a BOM from Windows editors is harmless
    except UnicodeDecodeError as err:
        raise error(f"{what} {path} is not UTF-8 text (byte {raw[err.start]:#04x} at offset "
                    f"{err.start})", hint="save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise error(f"malformed YAML in {path}{where}: {problem}",
                    hint="check the indentation and quoting on that line") from None
    if data is not None and not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}",
                    hint=f"a {what} is `key: value` lines")
    return data, text


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`: mappings merge recursively, anything else replaces (config
    layers, and a scenario's keys over the declaration it includes)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
