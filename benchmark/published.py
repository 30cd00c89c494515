"""Published ("reported") numbers: what a paper reports for a method on a scenario, which the
leaderboard shows beside the measured runs of that scenario, marked as reported and never ranked
with them unless asked.

A file of published numbers is YAML with one key, `published`, a list of entries:

    published:
      - method: ZSCL
        paper: Zheng et al., Preventing Zero-Shot Transfer Degradation ..., ICCV 2023
        table: Table 1
        backbone: ViT-B-16@openai       # ARCH@TAG as the leaderboard names it ("ARCH TAG" too)
        scenario: mtil-order1
        metrics: {mtil_transfer: 68.1, mtil_avg: 75.4, mtil_last: 83.6}
        source: https://arxiv.org/abs/2303.06628
        note: ...                       # optional: what was left out, and why
        reference: true                 # optional: a reference row (zero-shot), never numbered

`metrics` maps a declared metric's name (`clbench.metrics.METRICS`; a control set's as
`control:<set>:<part>`, e.g. control:imagenet:final) to its value in the unit the metric is
shown in (68.1 for 68.1 %, +3.2 for 3.2 points), as a paper prints it. A number a paper reports
that no clbench metric defines the same way is left out (and said so in `note`) rather than
mapped loosely. Every mistake in a file is one ConfigError naming the file and the entry.
The built-in file is `data_manifests/published.yaml` (package data). Pure Python: the
leaderboard and the CLI read it without torch or pandas.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from clbench.errors import ConfigError
from clbench.metrics import (
    METRICS,
    PERCENT,
    POINTS,
    SESSION,
    Metric,
    declaration_of,
    split_control_column,
)
from clbench.names import unknown_name_message
from clbench.yaml_files import load_yaml_file

__all__ = ["FIELDS", "OPTIONAL", "Published", "PublishedError", "built_in_path", "load",
           "load_file", "metric_of"]

TOP_KEY = "published"
FIELDS = ("method", "paper", "table", "backbone", "scenario", "metrics", "source")
OPTIONAL = ("note", "reference")
HINT = ("an entry holds method, paper, table, backbone, scenario, metrics (metric name: value in "
        "its shown unit) and source; `clbench published list` shows the built-in file's")


class PublishedError(ConfigError):
    """A file of published numbers is wrong; the message names the file and the entry."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint or HINT)


@dataclass(frozen=True)
class Published:
    """One reported row: a method's numbers from a paper's table, for one scenario."""

    method: str
    paper: str
    table: str
    backbone: str  # ARCH@TAG, as the leaderboard's backbone filter shows it
    scenario: str
    metrics: dict[str, float]  # metric column name -> value in the metric's shown unit
    source: str
    note: str = ""
    reference: bool = False  # a reference row (the zero-shot model): never given a rank
    file: str = field(default="", compare=False)  # where it was read

    @property
    def cited(self) -> str:
        """"<paper>, <table>": what the reported row says it comes from."""
        return f"{self.paper}, {self.table}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def built_in_path() -> Path:
    """The published numbers clbench ships (`data_manifests/published.yaml`). Read as package
    data, as the scenario declarations are: nothing of the scenarios layer is imported."""
    return Path(str(resources.files("clbench.data_manifests"))) / "published.yaml"


def metric_of(name: str) -> Metric | None:
    """The declaration behind a metric name of a published entry: a summary key of a metric
    with one value per run, or control:<set>:<part> for a per-control one (None: unknown, or
    a label rather than a key)."""
    if name not in METRICS and split_control_column(name) is None:
        return None
    metric = declaration_of(name)
    return metric if metric is not None and metric.per != SESSION else None


def _known_names(name: str) -> list[str]:
    """The names an entry may use, for the closest-name suggestion (a control metric's under
    the set the unknown name gives, if any)."""
    parsed = split_control_column(name)
    control = parsed[0] if parsed else "SET"
    return [m.name if m.per is None else m.column(control) for m in METRICS.values()
            if m.per != SESSION]


# the range a value in a metric's shown unit can take (accuracies in %, changes in points)
_RANGES = {PERCENT: (0.0, 100.0), POINTS: (-100.0, 100.0)}


def _number(where: str, name: str, value: Any, metric: Metric) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PublishedError(f"{where}: metrics.{name}: expected a number, got {value!r}",
                             hint=f"write the value in {metric.unit} as the paper prints it, "
                             "e.g. 68.1")
    if not math.isfinite(value):
        raise PublishedError(f"{where}: metrics.{name}: {value} is not a finite number")
    low, high = _RANGES.get(metric.unit, (-math.inf, math.inf))
    if not low <= value <= high:
        raise PublishedError(
            f"{where}: metrics.{name}: {value} is outside [{low:g}, {high:g}] {metric.unit}",
            hint=f"values are in the metric's shown unit ({metric.unit}): 68.1 for 68.1 %, "
            "not the fraction 0.681")
    return float(value)


def _metrics(where: str, raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict) or not raw:
        raise PublishedError(f"{where}: metrics: expected a mapping of metric name to value, "
                             f"got {raw!r}", hint="e.g. metrics: {mtil_avg: 75.4, mtil_last: "
                             "83.6}")
    out = {}
    for name, value in raw.items():
        name = str(name)
        metric = metric_of(name)
        if metric is None:
            listed = METRICS.get(name)
            if listed is not None and listed.per == SESSION:
                raise PublishedError(f"{where}: metrics.{name} is a list per session, which "
                                     "no reported row holds", hint="give the metric of its "
                                     "mean instead")
            raise PublishedError(
                f"{where}: {unknown_name_message('metric', name, _known_names(name))}",
                hint="a metric's name is its key in a run's summary (`clbench show RUN "
                "--json`); a control set's is control:<set>:<part>, e.g. "
                "control:imagenet:final")
        out[name] = _number(where, name, value, metric)
    return out


def _text(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PublishedError(f"{where}: {key}: expected text, got {value!r}",
                             hint="write it as text (in quotes where YAML would read a "
                             "number, a date or true/false)")
    return value.strip()


def _backbone(where: str, value: Any) -> str:
    """ARCH@TAG ("ARCH TAG" read too): the form of the leaderboard's backbone filter."""
    parts = _text(where, "backbone", value).replace("@", " ").split()
    if len(parts) > 2:
        raise PublishedError(f"{where}: backbone: expected ARCH@TAG, got {value!r}",
                             hint="e.g. backbone: ViT-B-16@openai")
    return "@".join(parts)


def _entry(path: Path, index: int, raw: Any) -> Published:
    where = f"{path}: entry {index}"
    if not isinstance(raw, dict):
        raise PublishedError(f"{where}: expected a mapping of {', '.join(FIELDS)}, got "
                             f"{type(raw).__name__}")
    if isinstance(raw.get("method"), str) and raw["method"].strip():
        where += f" ({raw['method'].strip()})"
    for key in raw:
        if key not in FIELDS + OPTIONAL:
            raise PublishedError(
                f"{where}: {unknown_name_message('field', str(key), FIELDS + OPTIONAL)}")
    missing = [key for key in FIELDS if key not in raw]
    if missing:
        raise PublishedError(f"{where}: missing field{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(missing)}")
    reference = raw.get("reference", False)
    if not isinstance(reference, bool):
        raise PublishedError(f"{where}: reference: expected true or false, got {reference!r}")
    note = raw.get("note", "")
    return Published(
        method=_text(where, "method", raw["method"]), paper=_text(where, "paper", raw["paper"]),
        table=_text(where, "table", raw["table"]), backbone=_backbone(where, raw["backbone"]),
        scenario=_text(where, "scenario", raw["scenario"]),
        metrics=_metrics(where, raw["metrics"]), source=_text(where, "source", raw["source"]),
        note=_text(where, "note", note) if note else "", reference=reference, file=str(path))


def load_file(path: str | Path) -> list[Published]:
    """The entries of one file of published numbers, validated (PublishedError otherwise)."""
    path = Path(path)
    data, _ = load_yaml_file(path, "published-numbers file", error=PublishedError)
    if not data or TOP_KEY not in data:
        raise PublishedError(f"{path}: no `{TOP_KEY}:` list",
                             hint=f"the file holds `{TOP_KEY}:` followed by entries "
                             "(`- method: ...`)")
    extra = [str(k) for k in data if k != TOP_KEY]
    if extra:
        raise PublishedError(
            f"{path}: {unknown_name_message('top-level key', extra[0], [TOP_KEY])}")
    entries = data[TOP_KEY]
    if not isinstance(entries, list) or not entries:
        raise PublishedError(f"{path}: `{TOP_KEY}:` must be a non-empty list of entries, got "
                             f"{entries!r}")
    out = [_entry(path, i, raw) for i, raw in enumerate(entries, start=1)]
    seen: dict[tuple, int] = {}
    for i, entry in enumerate(out, start=1):
        key = (entry.method, entry.paper, entry.table, entry.backbone, entry.scenario)
        if key in seen:
            raise PublishedError(f"{path}: entry {i} ({entry.method}) repeats entry "
                                 f"{seen[key]}: same method, paper, table, backbone and "
                                 "scenario", hint="merge their metrics into one entry")
        seen[key] = i
    return out


def load(paths: list[str | Path] | tuple = (), built_in: bool = True) -> list[Published]:
    """The built-in published numbers (unless `built_in` is False), then each file's."""
    files = ([built_in_path()] if built_in else []) + [Path(p) for p in paths]
    return [entry for path in files for entry in load_file(path)]
