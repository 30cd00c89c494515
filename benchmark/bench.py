"""`clbench bench`: how fast clbench runs the protocol, each figure against a reference measured in
the same process on the same inputs, and the ratio.

- `eval_throughput`: images/s of clbench's evaluator (`evaluation.predict`, the loop every
  session's evaluation runs) against a minimal hand-written open_clip loop (encode, normalise,
  dot with the class embeddings, argmax) on the same model and the same preprocessed images
  already in memory. Target: ratio >= 0.95.
- `zero_shot_reuse`: the zero-shot evaluation of the proxy scenario's eval sets read from the
  cache (`clbench.eval_cache`) against computing it. Target: >= 20x faster.
- `step_<strategy>_vs_lora`, `step_<strategy>_vs_fft`: a training step (forward, FLYP loss,
  backward, optimizer step) of each strategy against plain LoRA's and full fine-tuning's, same
  model and batch. Targets: LoRSU <= 1.2x LoRA, gated LoRA <= 1.3x LoRA.
- `selection_<strategy>`: LoRSU's and SPU's mask and head selection at the start of a session
  against one epoch over the session's data. Target: <= 1x.
- `flops_train_step`, `flops_eval`: achieved FLOP/s (counted by torch's FlopCounterMode) as a
  fraction of this machine's matrix-multiply peak, a large fp32 matmul timed in the same run.
- `memory`: the peak memory of a LoRSU (and a full fine-tuning) session in a fresh process
  against that of the model loaded alone (`--model ViT-L-14 --only memory` for the papers'
  model; resident memory on the CPU, allocated memory on CUDA).
- `whole_command`: the wall clock of `clbench run --strategy lorsu --scenario proxy-20shot` (a
  fresh process) against the run's own training and evaluation time as it stores it. Target:
  <= 1.5x.

Random weights are fine for speed: by default ViT-B-16 as open_clip builds it, on the CPU.
Timings are the median of repeats after a warm-up.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the module imports torch only when a benchmark runs (`clbench --help`
    import torch  # and the CLI's parser load it)

STRATEGIES = ("fft", "lora", "lorsu", "gated-lora", "spu", "ln", "llu")
# (figure name, the target as text, a test of the ratio)
TARGETS = {"eval_throughput": (">= 0.95", lambda r: r >= 0.95),
           "zero_shot_reuse": (">= 20", lambda r: r >= 20),
           "step_lorsu_vs_lora": ("<= 1.2", lambda r: r <= 1.2),
           "step_gated-lora_vs_lora": ("<= 1.3", lambda r: r <= 1.3),
           "selection_lorsu": ("<= 1", lambda r: r <= 1.0),
           "selection_spu": ("<= 1", lambda r: r <= 1.0),
           "whole_command": ("<= 1.5", lambda r: r <= 1.5)}
GROUPS = ("eval_throughput", "zero_shot_reuse", "train_steps", "flops", "whole_command",
          "memory")


@dataclass
class Figure:
    name: str
    value: float
    reference: float
    ratio: float
    unit: str
    what: str  # the value and the reference, in words

    @property
    def target(self) -> str:
        return TARGETS[self.name][0] if self.name in TARGETS else "-"

    @property
    def met(self) -> bool | None:
        return TARGETS[self.name][1](self.ratio) if self.name in TARGETS else None


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _model(arch: str, device: torch.device, classes: int = 10):
    """A classifier of `arch` (random weights unless it has a committed checkpoint) with one
    head of `classes` classes, and its image size."""
    import torch

    from clbench.config import ModelConfig
    from clbench.models import load_model
    from clbench.strategies.testing import classifier

    torch.manual_seed(0)
    bundle = load_model(ModelConfig(arch=arch))
    names = [f"class {i}" for i in range(classes)]
    model = classifier(bundle.clip, names, ["a photo of a {}.", "a {}."], bundle.tokenizer)
    return model.to(device).eval(), bundle.image_size


def eval_throughput(arch: str, device: torch.device, images: int, batch: int,
                    repeats: int) -> list[Figure]:
    import torch
    import torch.nn.functional as F

    from clbench.evaluation import predict

    model, size = _model(arch, device)
    x = torch.randn(images, 3, size, size, generator=torch.Generator().manual_seed(1))
    y = torch.arange(images) % 10
    dataset = torch.utils.data.TensorDataset(x, y)
    weights = model.class_embeddings("toy").detach()  # the head, computed once (both sides)
    clip = model.clip

    @torch.no_grad()
    def hand_written():
        for start in range(0, images, batch):
            features = F.normalize(clip.encode_image(x[start:start + batch].to(device)).float(),
                                   dim=-1)
            (features @ weights.t()).argmax(dim=1).cpu()

    def clbench_loop():
        predict(model, dataset, "toy", batch, device)

    reference = images / _median_time(hand_written, repeats)
    value = images / _median_time(clbench_loop, repeats)
    return [Figure("eval_throughput", value, reference, value / reference, "images/s",
                   f"clbench's evaluator vs a hand-written open_clip loop ({arch}, {images} "
                   f"images, batch {batch})")]


def zero_shot_reuse(repeats: int) -> list[Figure]:
    """On the proxy scenario (the proxy's weights are named by its checkpoint: cacheable)."""
    import os

    import torch

    from clbench.config import ModelConfig
    from clbench.evaluation import SessionEvaluation
    from clbench.models import load_model
    from clbench.runner import zero_shot_cache
    from clbench.scenarios.stream import load_scenario
    from clbench.strategies.testing import classifier

    device = torch.device("cpu")
    bundle = load_model(ModelConfig())
    scenario = load_scenario("proxy-20shot", 0)
    model = classifier(bundle.clip, scenario.eval_sets[0].data.class_names,
                       scenario.eval_sets[0].data.templates, bundle.tokenizer)
    for eval_set in scenario.eval_sets:
        model.register_head(eval_set.name, eval_set.data.class_names, eval_set.data.templates)
    with tempfile.TemporaryDirectory() as folder:
        previous = os.environ.get("CLBENCH_CACHE_DIR")
        os.environ["CLBENCH_CACHE_DIR"] = folder
        try:
            def evaluation(cache: bool) -> SessionEvaluation:
                zero_shot = zero_shot_cache(bundle, device=device, autocast_dtype=None,
                                            batch_size=256, strategy="zeroshot")
                if not cache:
                    zero_shot.folder = None  # computing every time
                return SessionEvaluation(scenario, bundle.transform, 256, device, None,
                                         zero_shot)

            computing = _median_time(lambda: evaluation(False).evaluate(model, 0), repeats)
            evaluation(True).evaluate(model, 0)  # fills the cache
            reusing = _median_time(lambda: evaluation(True).evaluate(model, 0), repeats)
        finally:
            if previous is None:
                os.environ.pop("CLBENCH_CACHE_DIR", None)
            else:
                os.environ["CLBENCH_CACHE_DIR"] = previous
    images = sum(len(e.data) for e in scenario.eval_sets)
    return [Figure("zero_shot_reuse", reusing, computing, computing / reusing, "s",
                   f"the zero-shot evaluation of proxy-20shot ({images} images, "
                   f"{len(scenario.eval_sets)} eval sets) reused vs computed")]


def _step_clock():
    """An Avalanche plugin timing a session: from its start to the first batch (the
    strategy's selection), each training step, each epoch. (Made here: Avalanche is imported
    only when a benchmark runs.)"""
    from avalanche.core import SupervisedPlugin

    class _StepClock(SupervisedPlugin):

        def __init__(self):
            super().__init__()
            self.session_start = self.first_epoch = 0.0
            self.steps: list[float] = []
            self.epochs: list[float] = []
            self._step = self._epoch = 0.0

        def before_training_exp(self, strategy, **kwargs):
            self.session_start = time.perf_counter()

        def before_training_epoch(self, strategy, **kwargs):
            self._epoch = time.perf_counter()
            if not self.first_epoch:
                self.first_epoch = self._epoch

        def after_training_epoch(self, strategy, **kwargs):
            self.epochs.append(time.perf_counter() - self._epoch)

        def before_training_iteration(self, strategy, **kwargs):
            self._step = time.perf_counter()

        def after_training_iteration(self, strategy, **kwargs):
            self.steps.append(time.perf_counter() - self._step)

    return _StepClock()


def _session_times(strategy: str, arch: str, device: torch.device, batch: int,
                   epochs: int):
    """The timings (`_step_clock`) of one session of `strategy` (2 classes, 2 batches of data)
    through clbench's loop."""
    import torch
    from avalanche.training.plugins import EvaluationPlugin

    from clbench.config import TrainingConfig
    from clbench.loop import SessionTrainer
    from clbench.strategies import registry
    from clbench.strategies.testing import TinyImages, train_stream

    model, size = _model(arch, device)
    model.train()
    clock = _step_clock()
    plugin = registry.create(strategy, {})
    training = TrainingConfig(epochs=epochs, batch_size=batch, lr=1e-5)
    trainer = SessionTrainer(model=model, training=training, device=device, seed=0,
                             plugins=[clock, plugin], evaluator=EvaluationPlugin(loggers=[]))
    data = TinyImages(2 * batch, seed=3, classes=2, size=size)
    # warm: in a run, evaluations and earlier sessions have already run through the model, so
    # a session's selection never meets a cold allocator
    x = torch.stack([data[i][0] for i in range(batch)]).to(device)
    model.clip.encode_image(x).float().sum().backward()
    model.zero_grad(set_to_none=True)
    trainer.train(train_stream(data)[0], eval_streams=[], num_workers=0)
    return clock


def train_steps(arch: str, device: torch.device, batch: int, epochs: int) -> list[Figure]:
    steps, selection, epoch_time = {}, {}, {}
    for strategy in STRATEGIES:
        clock = _session_times(strategy, arch, device, batch, epochs)
        steps[strategy] = statistics.median(clock.steps[1:] or clock.steps)  # first: warm-up
        selection[strategy] = clock.first_epoch - clock.session_start
        epoch_time[strategy] = statistics.median(clock.epochs[1:] or clock.epochs)
    figures = []
    for strategy in STRATEGIES:
        for base in ("lora", "fft"):
            if strategy != base:
                figures.append(Figure(
                    f"step_{strategy}_vs_{base}", steps[strategy], steps[base],
                    steps[strategy] / steps[base], "s",
                    f"a training step of {strategy} vs {base} ({arch}, batch {batch})"))
    for strategy in ("lorsu", "spu"):
        figures.append(Figure(
            f"selection_{strategy}", selection[strategy], epoch_time[strategy],
            selection[strategy] / epoch_time[strategy], "s",
            f"{strategy}'s mask/head selection at a session's start vs one epoch over the "
            f"session's data ({2 * batch} images)"))
    return figures


def matmul_peak(device: torch.device, n: int = 2048) -> float:
    import torch
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def multiply():
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return 2 * n**3 / _median_time(multiply, 5)


def flops(arch: str, device: torch.device, batch: int, repeats: int) -> list[Figure]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model, size = _model(arch, device)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.arange(batch, device=device) % 10
    templates = torch.zeros(batch, dtype=torch.long)
    optimizer = torch.optim.Adam([p for p in model.clip.visual.parameters()], lr=1e-5)
    for p in model.clip.parameters():
        p.requires_grad_(False)
    for p in model.clip.visual.parameters():
        p.requires_grad_(True)
    model.train()

    def step():
        optimizer.zero_grad()
        model.flyp_loss(model.encode_image(x), y, templates, "toy").backward()
        optimizer.step()

    @torch.no_grad()
    def evaluate():
        model.logits(model.encode_image(x), "toy").argmax(dim=1)

    figures = []
    peak = matmul_peak(device)
    for name, fn, what in (("flops_train_step", step, "a full fine-tuning training step"),
                           ("flops_eval", evaluate, "an evaluation pass")):
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        achieved = counter.get_total_flops() / _median_time(fn, repeats)
        figures.append(Figure(name, achieved / 1e9, peak / 1e9, achieved / peak, "GFLOP/s",
                              f"{what} ({arch}, batch {batch}) vs this machine's fp32 matmul "
                              "peak"))
    return figures


def whole_command() -> list[Figure]:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.db"
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "clbench", "run", "--strategy", "lorsu", "--scenario",
             "proxy-20shot", "--db", str(db), "--no-progress", "--quiet", "--json"],
            capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"clbench run failed: {done.stderr[-2000:]}")
    work = json.loads(done.stdout)["total_time_s"]
    return [Figure("whole_command", wall, work, wall / work, "s",
                   "`clbench run --strategy lorsu --scenario proxy-20shot` wall clock vs its "
                   "own training and evaluation (stored total_time_s)")]


_MEMORY_SCRIPT = """
import json, sys, torch
from clbench import bench
from clbench.loop import peak_memory_mb
arch, device, batch, strategy = sys.argv[1], torch.device(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if strategy == "-":
    bench._model(arch, device)
else:
    bench._session_times(strategy, arch, device, batch, 1)
print(json.dumps(peak_memory_mb(device)))
"""


def _peak_mb(arch: str, device: torch.device, batch: int, strategy: str) -> float:
    """Peak memory (MB: resident on the CPU, allocated on CUDA) of a fresh process that loads
    `arch` and, unless `strategy` is "-", trains one session of it (2 batches)."""
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, arch, str(device), str(batch),
                           strategy], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the memory probe failed: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def memory(arch: str, device: torch.device, batch: int) -> list[Figure]:
    loaded = _peak_mb(arch, device, batch, "-")
    figures = []
    for strategy in ("lorsu", "fft"):
        peak = _peak_mb(arch, device, batch, strategy)
        figures.append(Figure(f"memory_{strategy}", peak, loaded, peak / loaded, "MB",
                              f"peak memory of a {strategy} session ({arch}, batch {batch}) vs "
                              "the model loaded"))
    return figures


def run_benchmarks(groups: list[str], *, arch: str, device: torch.device, batch: int,
                   images: int, repeats: int, epochs: int, progress=print) -> list[Figure]:
    figures: list[Figure] = []
    for group in groups:
        progress(f"bench: {group} ...")
        if group == "eval_throughput":
            figures += eval_throughput(arch, device, images, batch, repeats)
        elif group == "zero_shot_reuse":
            figures += zero_shot_reuse(repeats)
        elif group == "train_steps":
            figures += train_steps(arch, device, batch, epochs)
        elif group == "flops":
            figures += flops(arch, device, batch, repeats)
        elif group == "whole_command":
            figures += whole_command()
        elif group == "memory":
            figures += memory(arch, device, batch)
    return figures


def as_json(figures: list[Figure]) -> dict[str, Any]:
    return {f.name: {k: v for k, v in asdict(f).items() if k in ("value", "reference", "ratio",
                                                                 "unit")} for f in figures}
