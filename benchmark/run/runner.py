"""One benchmark run, top to bottom: config -> scenario -> model -> strategy -> train/eval -> store.

Avalanche runs the loop (`SessionTrainer`, one `train()` call per session so that the accuracy
matrix fills row by row); evaluation is an Avalanche metric and the results store is an
Avalanche logger. A run is written as "running" before training starts, session by session
while it trains (each session in one transaction), and ends "completed" or "failed" with its
error (exceptions and Ctrl-C alike). After every session its state is checkpointed
(`clbench.run.checkpoints`) so that `clbench.run.resume` can continue it from there.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clbench.config.run_config import RunConfig
from clbench.run.checkpoints import CheckpointPolicy, Resumed, SessionCheckpoints
from clbench.training.session_state import capture, restore_random_state


@dataclass
class RunResult:
    run_id: str
    summary: dict
    total_time_s: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from clbench.errors import UserError

        raise UserError(f"device '{name}' requested but CUDA is not available here",
                        hint="use --device cpu (or auto)")
    return torch.device(name)


def _raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def _say_store_lost(err: BaseException, run_id: str) -> None:
    """The run stopped and could not even be marked failed: the store is unreachable. Say what
    happens to the run and how to go on (as the error's hint when it is the user's kind)."""
    import sys

    from clbench.errors import UserError

    what = (f"the results database could not be reached to mark run {run_id} failed: the first "
            "reader once it is back marks it failed (no heartbeat for $CLBENCH_STALE_AFTER_S, "
            "60 s by default); the sessions stored are complete, continue from the last one with "
            f"`clbench run --resume {run_id}`")
    if isinstance(err, UserError):
        err.hint = what
    else:
        print(what, file=sys.stderr)


def preflight(config: RunConfig, *, data_root: str | None = None, skip_corrupt: bool = False,
              evaluate_on: str = "test", scenario: bool = True):
    """The checks on a config that need no weights: the strategy's parameters (also against
    the architecture, on a weightless copy), the device, then (with `scenario`) the scenario
    and its data. `clbench tune` runs them on every grid point before it stores anything.
    Returns the scenario (None without `scenario`)."""
    return _checked(config, data_root=data_root, skip_corrupt=skip_corrupt,
                    evaluate_on=evaluate_on, scenario=scenario)[3]


def _merges_between_sessions(plugin) -> bool:
    """Whether a strategy replaces the tensors it trains between sessions (its declaration,
    `StrategyPlugin.replaces_trainable_tensors`; the training loop also checks it as it runs)."""
    return bool(getattr(plugin, "replaces_trainable_tensors", False))


def _extra_plugins(config: RunConfig, plugin, planned_trainable: int, device) -> list:
    """The run's added Avalanche plugins, built and checked against its strategy."""
    from clbench.errors import UserError
    from clbench.strategies import registry
    from clbench.strategies.base import StrategyPlugin
    from clbench.training import extra_plugins

    if not config.plugins:
        return []
    loaded = extra_plugins.create_all(config.plugins)
    for extra in loaded:
        if isinstance(extra.plugin, StrategyPlugin):
            raise UserError(f"plugin {extra.key['class']}: a clbench strategy, not a plugin to "
                            "add to one", hint="choose the strategy with --strategy NAME; "
                            "--plugin adds an Avalanche plugin (e.g. avalanche:EWCPlugin)")
    if registry.info(config.strategy).reference:
        raise UserError(f"strategy {config.strategy} is a reference row (never ranked among "
                        "the methods), not a method to combine with a plugin",
                        hint="leave out --plugin, or choose a continual method (`clbench list "
                             "strategies`)")
    if planned_trainable == 0:
        raise UserError(f"strategy {config.strategy} trains nothing, so "
                        f"{', '.join(e.name for e in loaded)} would have nothing to act on",
                        hint="leave out --plugin, or choose a strategy that trains")
    penalties = [e.name for e in loaded if extra_plugins.regularises_parameters(e.plugin)]
    if penalties and _merges_between_sessions(plugin):
        raise UserError(
            f"{', '.join(penalties)} penalises parameters by name, but strategy "
            f"{config.strategy} merges its adapters into the weights after every session and "
            "starts new ones, so the penalty would not reach what trains",
            hint="combine it with a strategy that keeps training the same tensors (fft, ln, "
                 "lora, spu, llu), or use a plugin that acts on outputs or data "
                 "(avalanche:LwFPlugin, avalanche:ReplayPlugin)")
    for extra in loaded:
        problem = extra_plugins.device_problem(extra.plugin, device)
        if problem:
            raise UserError(problem, hint="run it on a GPU (--device cuda), or use another "
                            "plugin (e.g. avalanche:EWCPlugin or avalanche:MASPlugin)")
    return loaded


def _checked(config: RunConfig, *, data_root: str | None, skip_corrupt: bool,
             evaluate_on: str, scenario: bool = True):
    """(strategy plugin, effective training config, device, scenario or None, added plugins):
    everything that can fail on user input, checked before any weight is loaded or any run
    recorded."""
    from clbench.models.meta import build_on_meta
    from clbench.scenarios.stream import load_scenario
    from clbench.strategies import registry
    from clbench.strategies.base import effective_training

    plugin = registry.create(config.strategy, config.strategy_params)
    training = effective_training(config.training, [plugin])
    device = pick_device(config.device)
    # settings that need the architecture (rank vs width, top-k vs heads): the strategy plans
    # its trainable set on a weightless copy
    planned = plugin.planned_trainable(build_on_meta(config.model.arch))
    extras = _extra_plugins(config, plugin, planned, device)
    if not scenario:
        return plugin, training, device, None, extras
    loaded = load_scenario(config.scenario, config.seed, data_root, skip_corrupt,
                           config.controls, evaluate_on=evaluate_on,
                           replay_for=config.strategy if plugin.needs_replay else None)
    return plugin, training, device, loaded, extras


def summarize_scenario(evaluations: list[dict], scenario) -> dict:
    """A run's summary from its evaluation rows, with the roles its scenario gives the eval
    sets: a multi-dataset stream's datasets (each the target of its session), or a target and
    its controls."""
    from clbench.metrics import summarize

    datasets = scenario.datasets
    if datasets:
        controls = [e.name for e in scenario.eval_sets if e.name not in datasets]
        return summarize(evaluations, None, controls, len(scenario.sessions), datasets=datasets,
                         protocol=scenario.manifest.protocol)
    return summarize(evaluations, scenario.target.name, [e.name for e in scenario.eval_sets[1:]],
                     len(scenario.sessions), protocol=scenario.manifest.protocol)


def zero_shot_cache(bundle, *, device: torch.device, autocast_dtype: torch.dtype | None,
                    batch_size: int, strategy: str):
    """The cache for a run of the model `bundle` (None-keyed when its weights are not named)."""
    from clbench.caches import cache_base
    from clbench.training.eval_cache import ZeroShotCache

    base = cache_base()
    if bundle.checkpoint_sha256 is None and not bundle.pretrained:
        return ZeroShotCache(base, None)  # random weights: nothing identifies them
    from clbench.run.provenance import code_fingerprint

    code = code_fingerprint(strategy)
    common = {"arch": bundle.arch, "pretrained": bundle.pretrained,
              "checkpoint_sha256": bundle.checkpoint_sha256, "device": device.type,
              "autocast": str(autocast_dtype), "batch_size": batch_size,
              "threads": torch.get_num_threads(),
              "code": {"clbench": code["clbench_sources_sha256"], "packages": code["packages"]}}
    return ZeroShotCache(base, common)


def give_replay(plugin, scenario, transform, seed: int) -> dict | None:
    """Hand a strategy that replays (`needs_replay`) the scenario's replay data in the joint
    class space; returns what the stored config keeps about it (None for other strategies):
    the datasets and split replayed, their sizes, the joint class count and the draw per
    session."""
    if not plugin.needs_replay:
        return None
    dataset, class_names, templates = scenario.replay_data(transform)
    plugin.set_replay(dataset, class_names, templates, seed=seed)
    per_session = plugin.planned_replay([len(s.sample_indices) for s in scenario.sessions])
    return {**scenario.replay_record(), "joint_classes": len(class_names),
            "target_classes": len(scenario.train.class_names), "per_session": per_session,
            "replayed": sum(per_session)}


class _SessionFacts:
    """What the store logger records as a session's facts: the strategy's, and with added
    plugins `plugins: {Class: {loss_term}}`, the mean term each added to the loss per batch
    (0 where it adds none, as a replay plugin, or none yet, as EWC in the first session)."""

    def __init__(self, strategy_plugin):
        self.strategy_plugin = strategy_plugin
        self.trainer = None

    def session_facts(self) -> dict:
        facts = self.strategy_plugin.session_facts()
        extra = getattr(self.trainer, "plugin_facts", None)
        return {**facts, "plugins": extra} if extra else facts

    def __getattr__(self, name: str):  # anything else: the strategy's own
        if name == "strategy_plugin":
            raise AttributeError(name)
        return getattr(self.strategy_plugin, name)


@dataclass
class Prepared:
    """A run ready to train: its checked config and everything built from it before the store
    hears of it (the strategy, the scenario, the model wrapped as a classifier)."""

    config: RunConfig
    plugin: Any
    device: torch.device
    scenario: Any
    extras: list
    bundle: Any
    classifier: Any
    replay: dict | None
    evaluate_on: str
    total_params: int  # of the vision tower as loaded, before any strategy adds adapters

    @property
    def resume_problem(self) -> str | None:
        """Why a run of this strategy could not be resumed: its plugin does not declare how it
        resumes (`clbench.strategies.base.resume_problem`, which names what to implement)."""
        from clbench.strategies.base import resume_problem

        return resume_problem(self.plugin)

    @property
    def checkpointable(self) -> bool:
        """Added Avalanche plugins keep state as arbitrary Python objects (EWC's importances),
        which a checkpoint loaded without unpickling cannot hold, and a strategy plugin that
        does not declare how it resumes might keep state no checkpoint holds: such runs are
        not checkpointed (a resume of theirs could silently store other numbers)."""
        return not self.extras and self.resume_problem is None


def prepare(config: RunConfig, *, data_root: str | None = None, skip_corrupt: bool = False,
            evaluate_on: str = "test") -> Prepared:
    """Check `config` (everything that can fail on user input fails here), then build the
    scenario, the model and its classifier with a head per eval set, and hand a replaying
    strategy its data. Nothing is recorded."""
    from clbench.models import load_model
    from clbench.models.classifier import CLIPClassifier
    from clbench.training.speed import apply_speed_switches

    plugin, training, device, scenario, extras = _checked(
        config, data_root=data_root, skip_corrupt=skip_corrupt, evaluate_on=evaluate_on)
    # resolved (the class's public path, every argument) in a copy: the caller's stays as given
    config = dataclasses.replace(config, training=training, plugins=[e.key for e in extras])
    seed_everything(config.seed)
    bundle = load_model(config.model)
    classifier = CLIPClassifier(bundle.clip, bundle.tokenizer)
    for eval_set in scenario.eval_sets:
        classifier.register_head(eval_set.name, eval_set.data.class_names,
                                 eval_set.data.templates)
    classifier.active_head = scenario.target.name
    classifier.to(device)
    apply_speed_switches(classifier, config.training, device)
    replay = give_replay(plugin, scenario, bundle.transform, config.seed)
    total_params = sum(p.numel() for p in bundle.clip.visual.parameters())
    return Prepared(config, plugin, device, scenario, extras, bundle, classifier, replay,
                    evaluate_on, total_params)


def resolved_config(config: RunConfig, plugin) -> dict[str, Any]:
    """The config as stored with the run: every strategy parameter explicit."""
    from clbench.strategies import registry

    resolved = config.to_dict()
    resolved["strategy"] = {"name": config.strategy, **registry.resolved_params(plugin)}
    return resolved


def run(config: RunConfig, store, *, data_root: str | None = None, progress: bool = True,
        quiet: bool = False, skip_corrupt: bool = False, evaluate_on: str = "test",
        purpose: str | None = None, extra_config: dict | None = None,
        checkpoints: CheckpointPolicy | None = None) -> RunResult:
    """Run `config` and record it in `store`: a Store, or a function that opens one, called
    only once every check on the user's input has passed (so a refused run creates no file).

    `evaluate_on="validation"` (what `clbench tune` passes) evaluates the target's validation
    split and the controls' `val` splits instead of any test split; `purpose` (e.g. "tuning")
    is stored in the run's config and summary, and `extra_config` beside it in the config.
    With `checkpoints`, the run's state is saved after every session (`clbench.run.checkpoints`)
    so that `clbench run --resume` can continue it after a crash."""
    from clbench.run.provenance import collect_provenance, hardware_with_torch, strategy_source

    prepared = prepare(config, data_root=data_root, skip_corrupt=skip_corrupt,
                       evaluate_on=evaluate_on)
    config, plugin, scenario, extras, bundle = (prepared.config, prepared.plugin,
                                                prepared.scenario, prepared.extras,
                                                prepared.bundle)
    if not hasattr(store, "create_run"):
        store = store()
    provenance = collect_provenance()
    provenance["hardware"] = {**provenance["hardware"], **hardware_with_torch(prepared.device)}
    resolved = resolved_config(config, plugin)
    strategy_params = {k: v for k, v in resolved["strategy"].items() if k != "name"}
    # added plugins: their class, arguments and version in the config; class and arguments
    # (not the version, which is provenance) in the strategy's stored parameters as well, so
    # that the preset (strategy + strategy_config_hash + training) tells EWC apart
    strategy_config = dict(strategy_params)
    if extras:
        resolved["plugins"] = [e.record for e in extras]
        strategy_config["plugins"] = [e.key for e in extras]
    checkpoint_base = (checkpoints.base if checkpoints is not None and prepared.checkpointable
                       else None)
    not_resumable = prepared.resume_problem
    run_id = store.create_run(
        strategy=config.strategy, strategy_config=strategy_config, scenario=scenario.name,
        scenario_manifest_hash=scenario.manifest.hash, model_arch=bundle.arch,
        model_pretrained=bundle.pretrained, model_checkpoint_sha256=bundle.checkpoint_sha256,
        seed=config.seed, config={**resolved, "dataset_manifest_hashes": scenario.dataset_hashes,
                                  "data": {"skip_corrupt": skip_corrupt,
                                           "datasets": scenario.data_record(),
                                           "validation": scenario.validation_record(),
                                           **({"replay": prepared.replay}
                                              if prepared.replay else {})},
                                  **({"purpose": purpose} if purpose else {}),
                                  # built-in, or the plugin package, version and commit
                                  "strategy_source": strategy_source(config.strategy),
                                  # where `--resume` finds the run's checkpoint
                                  "checkpoint_dir": str(checkpoint_base)
                                  if checkpoint_base else None,
                                  # why it has none and `--resume` (a sweep too) refuses it
                                  **({"not_resumable": not_resumable} if not_resumable else {}),
                                  **(extra_config or {})},
        config_hash=config.hash(), training_config=resolved["training"], provenance=provenance)
    if not quiet:
        combined = "".join(f" + {e.label()}" for e in extras)
        print(f"run {run_id[:12]}: {config.strategy}{combined} on {scenario.name} "
              f"({len(scenario.sessions)} session(s)), model {bundle.arch}, seed {config.seed}, "
              f"device {prepared.device}")
    if not_resumable and checkpoints is not None and checkpoints.base is not None:
        import sys

        # printed even with --quiet: a crash of this run loses all of it
        print(f"warning: run {run_id[:12]} is not checkpointed and cannot be resumed after a "
              f"crash: {not_resumable}", file=sys.stderr)
    saving = None
    if checkpoint_base is not None:
        saving = SessionCheckpoints(checkpoints.folder(run_id), keep=checkpoints.keep,
                                    run_facts={"skip_corrupt": skip_corrupt,
                                               "evaluate_on": evaluate_on, "purpose": purpose})
    return train(prepared, store, run_id, progress=progress, quiet=quiet, purpose=purpose,
                 saving=saving)


def train(prepared: Prepared, store, run_id: str, *, progress: bool = True, quiet: bool = False,
          purpose: str | None = None, saving: SessionCheckpoints | None = None,
          resumed: Resumed | None = None) -> RunResult:
    """Train and evaluate the recorded run `run_id` session by session (from the session after
    `resumed`'s checkpoint when resuming), checkpoint after each session, and complete it; any
    exception (Ctrl-C and SIGTERM included) marks it failed with the error."""
    from avalanche.training.plugins import EvaluationPlugin

    from clbench.caches import cache_base
    from clbench.training.evaluation import SessionEvaluation, SubsetAccuracy
    from clbench.training.image_cache import ImageCache
    from clbench.training.loggers import ConsoleLogger, ProgressBar, StoreLogger
    from clbench.training.speed import loader_options, workers_for
    from clbench.training.text_cache import TextHeadCache

    config, plugin, scenario, classifier = (prepared.config, prepared.plugin, prepared.scenario,
                                            prepared.classifier)
    device = prepared.device
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    start = time.perf_counter()
    try:
        amp = torch.bfloat16 if config.training.precision == "bf16" else torch.float16
        autocast = amp if device.type == "cuda" and config.training.precision != "fp32" else None
        zero_shot = zero_shot_cache(prepared.bundle, device=device, autocast_dtype=autocast,
                                    batch_size=config.training.eval_batch_size,
                                    strategy=config.strategy)
        base = cache_base()
        evaluation = SessionEvaluation(scenario, prepared.bundle.transform,
                                       config.training.eval_batch_size, device, autocast,
                                       zero_shot, ImageCache(base),
                                       workers=workers_for(config.training, device))
        classifier.text_store = text_heads = TextHeadCache(base)
        facts = _SessionFacts(plugin)
        loggers = [StoreLogger(store, run_id, scenario, facts)]
        if not quiet:
            loggers.append(ConsoleLogger(scenario))
        from clbench.training.loop import SessionTrainer

        trainer = SessionTrainer(
            model=classifier, training=config.training, device=device, seed=config.seed,
            plugins=[plugin, ProgressBar(len(scenario.sessions), progress and not quiet)],
            evaluator=EvaluationPlugin(evaluation, loggers=loggers),
            extra_plugins=[e.plugin for e in prepared.extras])
        facts.trainer = trainer
        benchmark = scenario.to_avalanche(prepared.bundle.transform)
        if prepared.extras:  # what Avalanche's plugins expect of a dataset: task labels (all 0)
            from clbench.training.loop import in_one_task

            benchmark = in_one_task(benchmark)
        total_params = prepared.total_params
        max_trainable, done, elapsed_before = 0, 0, 0.0
        if resumed is not None:
            evaluation.evaluated_before_training = True  # the zero-shot rows are stored
            evaluation.results = [SubsetAccuracy(**row) for row in resumed.evaluations]
            max_trainable, done = resumed.max_trainable, resumed.after_session
            elapsed_before = resumed.elapsed_s
            restore_random_state(resumed.random_state, trainer)
            if not quiet:
                print(f"resuming after session {done}/{len(scenario.sessions)} from "
                      f"{resumed.folder}")
        # the heartbeat says, to any reader on any host, that this run is being worked on
        beating = store.heartbeat(run_id) if hasattr(store, "heartbeat") else nullcontext()
        with beating:
            for experience in list(benchmark.train_stream)[done:]:
                session_start = time.perf_counter()
                # the head the session trains with: its dataset's in a multi-dataset stream
                session = scenario.sessions[experience.current_experience]
                classifier.active_head = session.head or scenario.target.name
                trainer.train(experience, eval_streams=[], **loader_options(config.training,
                                                                             device))
                max_trainable = max(max_trainable, trainer.session_record["trainable_params"])
                if saving is not None:
                    saving.save(experience.current_experience + 1, session_start, {
                        **capture(classifier, plugin, trainer),  # model, strategy, random
                        "max_trainable": max_trainable,
                        "elapsed_s": elapsed_before + time.perf_counter() - start,
                        "sample_ids": [s.sample_ids for s in scenario.sessions],
                        "code": saving.code(config.strategy)})
        store.set_params(run_id, trainable_params=max_trainable, total_params=total_params)
        summary = summarize_scenario([r.as_row() for r in evaluation.results], scenario)
        summary["trainable_percent"] = 100.0 * max_trainable / max(1, total_params)
        summary["evaluated_on"] = prepared.evaluate_on
        summary["seeds_required"] = scenario.manifest.seeds  # what the leaderboard asks of a row
        if saving is not None and saving.cost:
            summary["checkpoint_cost"] = saving.cost_summary()
        reused = evaluation.reuse_record()  # what this run did not compute itself, and whence
        if text_heads.read:
            reused["text_heads"] = text_heads.read
        if reused:
            summary["reused"] = reused
        if purpose:
            summary["purpose"] = purpose
        elapsed = elapsed_before + time.perf_counter() - start
        store.complete_run(run_id, summary=summary, total_time_s=elapsed)
        if saving is not None:
            saving.finish()
        return RunResult(run_id, summary, elapsed)
    except BaseException as err:  # noqa: BLE001 - Ctrl-C and SIGTERM must mark the run failed too
        message = f"{type(err).__name__}: {err}".strip()
        if not isinstance(err, (KeyboardInterrupt,)) and os.environ.get("CLBENCH_TRACEBACK"):
            message += "\n" + traceback.format_exc()
        if not store.fail_run(run_id, message):
            _say_store_lost(err, run_id)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
