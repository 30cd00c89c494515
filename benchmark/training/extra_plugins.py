"""Avalanche plugins added to a clbench strategy: `--plugin SPEC`, `--set plugin.KEY=VALUE`.

A run may combine its strategy with any Avalanche `SupervisedPlugin` (EWC, LwF, replay, SI,
MAS, ...): SPEC is `avalanche:ClassName` (looked up in `avalanche.training.plugins`) or
`package.module:ClassName`. Its keyword arguments come from the config's `plugin:` section
(`--set plugin.KEY=VALUE` with one plugin, `--set plugin.CLASS.KEY=VALUE` with several) and are
coerced by the class's `__init__` signature: its type annotations, else the kind of its default.

The config layer checks the shape of these keys without importing anything
(`clbench.config.plugin_specs.normalise`); this module's `create` imports the class, checks that
it is a `SupervisedPlugin`, resolves the arguments (defaults included) and builds the instance,
turning every failure (an import that raises, a class that is not a plugin, an argument the
constructor rejects) into a one-line `UserError`. The runner calls it before a run is recorded.
A plugin's `key`, {class, args} with the class's public path and every argument, enters the
run's config hash and the strategy's stored parameters (its preset); its `record` adds the
distribution and version that provide it, stored in the run's config as provenance (an Avalanche
upgrade does not make another preset). The `--plugin` flag is `clbench.cli.plugin_option`.

Light on purpose: torch and Avalanche are imported only inside the functions that need them.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import operator
import sys
import types
import typing
from dataclasses import dataclass
from functools import cache, reduce
from importlib import import_module
from typing import Any, Literal

from clbench.config.plugin_specs import (
    AVALANCHE,
    AVALANCHE_MODULE,
    SPEC_HINT,
    class_name,
    split_spec,
)
from clbench.errors import ConfigError, UserError
from clbench.names import closest, unknown_name_message
from clbench.options import coerce

# Avalanche plugins whose penalty keeps each parameter, by name, near its value after earlier
# sessions: they need a strategy that keeps training the same tensors from session to session
PARAMETER_REGULARISERS = ("EWCPlugin", "SynapticIntelligencePlugin", "MASPlugin", "RWalkPlugin")
# plugins whose whole effect is a term added to the loss: one that adds exactly nothing through
# a session after the first did nothing (the training loop refuses to store that as their run)
LOSS_TERM_PLUGINS = (*PARAMETER_REGULARISERS, "LwFPlugin")
# the types of the parameters Avalanche 0.6 leaves unannotated in its common regularisers (a
# parameter of any other plugin without an annotation goes by the kind of its default)
UNANNOTATED_TYPES: dict[str, dict[str, Any]] = {
    "EWCPlugin": {"ewc_lambda": float, "mode": Literal["separate", "online"],
                  "decay_factor": float | None, "keep_importance_data": bool},
    "LwFPlugin": {"alpha": float | list[float], "temperature": float},
    "MASPlugin": {"verbose": bool},
}


# --------------------------------------------------------------------------- importing (heavy)


@dataclass
class Loaded:
    """A plugin instance with what the run stores about it."""

    plugin: Any
    name: str  # class name: the key of plugin.CLASS.KEY and of the session facts
    key: dict[str, Any]  # {class, args}: in the run's config hash and the strategy's preset
    package: str | None
    version: str | None

    @property
    def record(self) -> dict[str, Any]:
        """{class, args, package, version}: the stored config's entry."""
        return {**self.key, "package": self.package, "version": self.version}

    def label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.key["args"].items())
        return f"{self.name}({args})"


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _avalanche_plugins() -> dict[str, type]:
    from avalanche.core import SupervisedPlugin

    module = import_module(AVALANCHE_MODULE)
    return {n: v for n, v in vars(module).items() if isinstance(v, type)
            and issubclass(v, SupervisedPlugin) and v is not SupervisedPlugin}


def load_class(spec: str) -> type:
    """The plugin class of `spec`; any failure to import it is a one-line UserError."""
    from avalanche.core import SupervisedPlugin

    module_name, attr = split_spec(spec)
    try:
        module = import_module(module_name)
    except Exception as err:  # noqa: BLE001 - a broken module raises anything on import
        raise UserError(f"plugin {spec}: cannot import {module_name} ({_one_line(err)})",
                        hint="is the package installed in this environment? " + SPEC_HINT
                        ) from None
    try:
        cls = getattr(module, attr)
    except AttributeError:
        if module_name == AVALANCHE_MODULE:
            raise UserError(unknown_name_message("Avalanche plugin", attr, _avalanche_plugins()),
                            hint="avalanche:NAME is a class of avalanche.training.plugins; any "
                                 "other SupervisedPlugin is package.module:ClassName") from None
        near = closest(attr, [n for n, v in vars(module).items() if isinstance(v, type)])
        did = f" (did you mean: {', '.join(near)}?)" if near else ""
        raise UserError(f"plugin {spec}: {module_name} has no class {attr!r}{did}",
                        hint=SPEC_HINT) from None
    except Exception as err:  # noqa: BLE001 - a module-level __getattr__ may raise anything
        raise UserError(f"plugin {spec}: cannot read {attr} from {module_name} "
                        f"({_one_line(err)})", hint=SPEC_HINT) from None
    if not (isinstance(cls, type) and issubclass(cls, SupervisedPlugin)):
        what = f"class {cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else \
            f"a {type(cls).__name__}, not a class"
        raise UserError(f"plugin {spec}: {what} is not an Avalanche SupervisedPlugin",
                        hint="--plugin takes a subclass of avalanche.core.SupervisedPlugin "
                             "(the plugins of avalanche.training.plugins are)")
    if cls is SupervisedPlugin:
        raise UserError(f"plugin {spec}: SupervisedPlugin is the base class, which adds nothing",
                        hint="name a plugin, e.g. avalanche:EWCPlugin")
    return cls


def public_name(cls: type) -> str:
    """`avalanche.training.plugins.EWCPlugin` for a class Avalanche exports there (the same
    whichever module defines it in a given version), else `module.Class` of its definition."""
    if cls.__module__.startswith(AVALANCHE + ".") and \
            getattr(sys.modules.get(AVALANCHE_MODULE), cls.__name__, None) is cls:
        return f"{AVALANCHE_MODULE}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


@cache
def _distributions() -> dict[str, list[str]]:
    from importlib.metadata import packages_distributions

    return packages_distributions()


def distribution_of(cls: type) -> tuple[str | None, str | None]:
    """(distribution, version) that provides the class's top-level package, e.g.
    (avalanche-lib, 0.6.0); (None, None) for a module that no installed distribution owns."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in _distributions().get(cls.__module__.split(".")[0], []):
        try:
            return dist, version(dist)
        except PackageNotFoundError:
            continue
    return None, None


# ---- arguments: coerced by the signature

_UNSETTABLE = object()  # an annotation no text value can satisfy (an object such as a buffer)
_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence,
              collections.abc.Iterable, collections.abc.Collection)


def _plain_type(tp: Any) -> Any:
    """The annotation in the terms `clbench.options.coerce` understands, or _UNSETTABLE."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = [_plain_type(a) for a in typing.get_args(tp)]
        members = [m for m in members if m is not _UNSETTABLE]
        if not [m for m in members if m is not type(None)]:
            return _UNSETTABLE
        return reduce(operator.or_, members)
    if origin is Literal:
        return tp
    if origin in _SEQUENCES or tp in (list, tuple):
        args = typing.get_args(tp)
        inner = _plain_type(args[0]) if args and args[0] is not Ellipsis else Any
        return list[Any] if inner is _UNSETTABLE else list[inner]
    if origin in (dict, collections.abc.Mapping) or tp is dict:
        return dict
    if tp in (int, float, bool, str, Any, type(None)):
        return tp
    return _UNSETTABLE


def _annotations(cls: type, params: list[inspect.Parameter]) -> dict[str, Any]:
    """Each parameter's annotation, resolved where it can be (one unresolved forward reference,
    such as a type imported only for type checking, spoils only its own parameter)."""
    init = getattr(cls, "__init__", None)
    module = sys.modules.get(getattr(init, "__module__", None) or cls.__module__)
    namespace = dict(vars(module)) if module is not None else {}
    out: dict[str, Any] = {}
    known = UNANNOTATED_TYPES.get(cls.__name__, {}) if public_name(cls).startswith(
        AVALANCHE_MODULE + ".") else {}
    for p in params:
        if p.annotation is inspect.Parameter.empty:
            if p.name in known:
                out[p.name] = known[p.name]
            continue
        holder = types.SimpleNamespace(__annotations__={p.name: p.annotation})
        try:
            out[p.name] = _plain_type(typing.get_type_hints(holder, namespace)[p.name])
        except Exception:  # noqa: BLE001 - NameError, or anything an odd annotation raises
            out[p.name] = _UNSETTABLE
    return out


def _number(key: str, value: Any) -> Any:
    """An unannotated numeric parameter: a number (or a list, e.g. a weight per session)."""
    if isinstance(value, (list, tuple)) or (isinstance(value, (int, float))
                                            and not isinstance(value, bool)):
        return list(value) if isinstance(value, tuple) else value
    if isinstance(value, str):
        for kind in (int, float):
            try:
                number = kind(value)
            except ValueError:
                continue
            if math.isfinite(number):
                return number
    raise ConfigError(f"{key}: expected a number, got {value!r}")


def _loose(value: Any) -> Any:
    """An unannotated parameter without a telling default: YAML's value, and a number written
    as text (YAML reads `1e4` as a string) as that number."""
    if isinstance(value, str):
        try:
            return _number("", value)
        except ConfigError:
            return value
    return value


def _coerce_arg(key: str, value: Any, annotation: Any, default: Any) -> Any:
    if annotation is _UNSETTABLE:
        raise ConfigError(f"{key}: takes an object that cannot be given as a value",
                          hint="leave it at its default")
    if annotation is not None:
        return coerce(key, value, annotation)
    if isinstance(default, bool):
        return coerce(key, value, bool)
    if isinstance(default, (int, float)):
        return _number(key, value)
    if isinstance(default, str):
        return coerce(key, value, str)
    return _loose(value)


def _plain(value: Any) -> bool:
    """A value that stores and hashes as itself (JSON)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def resolve_args(cls: type, given: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The constructor's keyword arguments: `given` coerced by the signature, every other
    parameter at its default (left out when the default is an object, which has no stored
    form). Unknown keys and missing required ones are ConfigErrors naming `prefix` + key."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        signature = None
    if signature is None:
        if given:
            raise ConfigError(f"{prefix}{next(iter(given))}: the signature of {cls.__name__} "
                              "cannot be read, so it takes no arguments here")
        return {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = [p for p in signature.parameters.values() if p.kind in kinds]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD
                    for p in signature.parameters.values())
    by_name = {p.name: p for p in params}
    annotations = _annotations(cls, params)
    accepted = ", ".join(prefix + p.name for p in params) or "none"
    coerced: dict[str, Any] = {}
    for key, value in given.items():
        if key not in by_name:
            if takes_any:
                coerced[key] = _loose(value)
                continue
            near = closest(key, by_name)
            did = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
            raise ConfigError(f"unknown argument '{prefix}{key}' of {cls.__name__}{did}",
                              hint=f"{cls.__name__} accepts: {accepted}")
        p = by_name[key]
        default = None if p.default is inspect.Parameter.empty else p.default
        try:
            coerced[key] = _coerce_arg(prefix + key, value, annotations.get(key), default)
        except ConfigError as err:
            raise ConfigError(str(err), hint=err.hint if err.hint and "cannot be given" in
                              str(err) else f"{cls.__name__}{signature}") from None
    missing = [p.name for p in params
               if p.default is inspect.Parameter.empty and p.name not in coerced]
    if missing:
        raise ConfigError(f"{cls.__name__} needs {', '.join(prefix + m for m in missing)}",
                          hint=f"pass --set {prefix}{missing[0]}=VALUE")
    args: dict[str, Any] = {}
    for p in params:
        if p.name in coerced:
            args[p.name] = _jsonable(coerced[p.name])
        elif _plain(p.default):
            args[p.name] = _jsonable(p.default)
    args.update({k: _jsonable(v) for k, v in coerced.items() if k not in by_name})
    for key, value in args.items():
        if not _plain(value):
            raise ConfigError(f"{prefix}{key}: {value!r} has no stored form",
                              hint="give numbers, strings, booleans or lists of them")
    return args


def create(entry: dict[str, Any], prefix: str = "plugin.") -> Loaded:
    """Import, check and build one plugin of `normalise`'s output."""
    cls = load_class(entry["class"])
    args = resolve_args(cls, entry.get("args") or {}, prefix)
    try:
        plugin = cls(**args)
    except Exception as err:  # noqa: BLE001 - a constructor rejects its arguments as it likes
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise UserError(f"plugin {entry['class']}: {cls.__name__}({shown}) failed: "
                        f"{_one_line(err)}",
                        hint=f"fix its arguments (--set {prefix}KEY=VALUE)") from None
    package, version = distribution_of(cls)
    return Loaded(plugin, cls.__name__, {"class": public_name(cls), "args": args}, package,
                  version)


def create_all(entries: list[dict[str, Any]]) -> list[Loaded]:
    """Every plugin of a run, in order; `plugin.CLASS.` prefixes errors when there are
    several (the form their arguments take)."""
    several = len(entries) > 1
    return [create(e, f"plugin.{class_name(e['class'])}." if several else "plugin.")
            for e in entries]


def _is_one_of(plugin: Any, names: tuple[str, ...]) -> bool:
    module = sys.modules.get(AVALANCHE_MODULE)
    classes = tuple(c for c in (getattr(module, n, None) for n in names) if isinstance(c, type))
    return bool(classes) and isinstance(plugin, classes)


def regularises_parameters(plugin: Any) -> bool:
    """Whether `plugin` is one of Avalanche's penalties on named parameters (EWC, SI, MAS,
    RWalk), which act only on tensors that stay the same from session to session."""
    return _is_one_of(plugin, PARAMETER_REGULARISERS)


def acts_through_loss(plugin: Any) -> bool:
    """Whether `plugin`'s whole effect is a term it adds to the loss (the parameter penalties
    and LwF's distillation), so that a session after the first in which it adds exactly
    nothing is a session in which it did nothing."""
    return _is_one_of(plugin, LOSS_TERM_PLUGINS)


def device_problem(plugin: Any, device: Any) -> str | None:
    """Why `plugin` cannot work on `device`, found by trying it; None when nothing is known.

    Avalanche 0.6's Synaptic Intelligence records parameter values with
    `param.detach().cpu().flatten()`, a view of the live parameter on the CPU (a copy only on a
    GPU): its "old" and "new" values are then the same tensor, so its importances and its
    penalty stay exactly 0 and the run would be the strategy alone."""
    module = sys.modules.get(AVALANCHE_MODULE)
    si = getattr(module, "SynapticIntelligencePlugin", None)
    if not (isinstance(si, type) and isinstance(plugin, si)):
        return None
    try:
        import torch

        layer = torch.nn.Linear(2, 1).to(device)
        syn: dict[str, Any] = {k: {} for k in ("old_theta", "new_theta", "grad", "trajectory",
                                               "cum_trajectory")}
        si.create_syn_data(layer, ({}, {}), syn, set())
        si.pre_update(layer, syn, set())  # what it does before every optimizer step
        before = syn["old_theta"]["weight"].data.clone()
        with torch.no_grad():
            layer.weight.add_(1.0)  # the step
        aliased = not torch.equal(syn["old_theta"]["weight"].data, before)
    except Exception:  # noqa: BLE001 - another version's internals: nothing known
        return None
    if aliased:
        return (f"SynapticIntelligencePlugin records parameter values on {device} without "
                "copying them (avalanche-lib's `param.detach().cpu()` is the parameter "
                "itself there), so its importances and penalty would stay 0")
    return None
