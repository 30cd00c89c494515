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

__all__ = ["read_yaml_mapping"]


def read_yaml_mapping(path: str | Path, what: str = "YAML file") -> dict[str, Any]:
    """The top-level mapping of the YAML file at `path` ({} for an empty file).

    `what` names the file's role in errors ("config file", "scenario file", ...).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory", hint=f"pass the path of a {what}")
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}", hint="check the path")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a BOM from Windows editors is harmless
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror or err}",
                          hint="check the file's permissions") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {err.start}: "
                          f"{err.object[err.start:err.start + 1]!r})",
                          hint="save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}",
                          hint="check the indentation and quoting on that line") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got "
                          f"{type(data).__name__}", hint=f"a {what} is `key: value` lines")
    return data
