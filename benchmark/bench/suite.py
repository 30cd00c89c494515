"""`clbench bench`: how fast clbench runs the protocol, each figure against a reference measured in
the same process on the same inputs, and the ratio.

- `eval_throughput`: images/s of clbench's evaluator (`evaluation.predict`, the loop every
  session's evaluation runs) against a minimal hand-written open_clip loop (encode, normalise,
  dot with the class embeddings, argmax) on the same model and the same preprocessed images
  already in memory. Target: ratio >= 0.95.
- `zero_shot_reuse`: the zero-shot evaluation of the proxy scenario's eval sets read from the
  cache (`clbench.training.eval_cache`) against computing it. Target: >= 20x faster.
- `session_eval_*`, `image_cache_reads`, `text_head_reuse`: a session's evaluation of an eval
  set of JPEG files with the caches against what it cost before them (decoding, preprocessing
  and encoding every image; the text head was kept within a run already): for a frozen image
  encoder (features kept; target >= 5x faster) and for one that trained (the image cache
  only); the image cache alone; and the text head read by a later run against computing it.
- `step_<strategy>_vs_lora`, `step_<strategy>_vs_fft`: a training step (forward, FLYP loss,
  backward, optimizer step) of each strategy against plain LoRA's and full fine-tuning's, same
  model and batch. Targets: LoRSU <= 1.2x LoRA, gated LoRA <= 1.3x LoRA.
- `selection_<strategy>`: LoRSU's and SPU's mask and head selection at the start of a session
  against one epoch over the session's data. Target: <= 1x.
  `selection_<strategy>_vs_gradient_pass`: the same against that epoch's forward, loss and
  backward alone, the gradient pass over the session's data that a selection consists of
  (LoRSU's also takes the attention's weight gradients, which its training does not).
- `flops_train_step`, `flops_eval`: achieved FLOP/s (counted by torch's FlopCounterMode) as a
  fraction of this machine's matrix-multiply peak, a large fp32 matmul timed in the same run.
- `memory`: the peak memory of a LoRSU (and a full fine-tuning) session in a fresh process
  against that of the model loaded alone (`--model ViT-L-14 --only memory` for the papers'
  model; resident memory on the CPU, allocated memory on CUDA).
- `switch_*` (`clbench.bench.switches`): each speed switch (gradient checkpointing,
  channels-last, torch.compile, DataLoader workers, fused attention) on against off.
- `whole_command`: the wall clock of `clbench run --strategy lorsu --scenario proxy-20shot` (a
  fresh process) against the run's own training and evaluation time as it stores it, the
  median ratio of `--repeats` runs. Target: <= 1.5x. `whole_command_import_floor`: that run's
  work plus the time a fresh Python takes only to import what every run needs (torch with
  `torch._dynamo`, which a torch optimizer imports; open_clip; `avalanche.training`;
  SQLAlchemy), against the work: the ratio below which no program built on these packages can
  start that work on this machine.

Random weights are fine for speed: by default ViT-B-16 as open_clip builds it, on the CPU.
Timings are the median of repeats after a warm-up.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clbench.bench.timing import bench_model, median_time, session_peak_mb, timed_session

if TYPE_CHECKING:  # the module imports torch only when a benchmark runs (`clbench --help`
    import torch  # and the CLI's parser load it)

STRATEGIES = ("fft", "lora", "lorsu", "gated-lora", "spu", "ln", "llu")
SELECTING = ("lorsu", "spu")  # strategies that choose what trains from a gradient pass
# (figure name, the target as text, a test of the ratio)
TARGETS = {"eval_throughput": (">= 0.95", lambda r: r >= 0.95),
           "zero_shot_reuse": (">= 20", lambda r: r >= 20),
           "session_eval_frozen_encoder": (">= 5", lambda r: r >= 5),
           "step_lorsu_vs_lora": ("<= 1.2", lambda r: r <= 1.2),
           "step_gated-lora_vs_lora": ("<= 1.3", lambda r: r <= 1.3),
           "selection_lorsu": ("<= 1", lambda r: r <= 1.0),
           "selection_spu": ("<= 1", lambda r: r <= 1.0),
           "whole_command": ("<= 1.5", lambda r: r <= 1.5)}
GROUPS = ("eval_throughput", "zero_shot_reuse", "session_eval", "train_steps", "flops", "whole_command",
          "memory", "switches")


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


def eval_throughput(arch: str, device: torch.device, images: int, batch: int,
                    repeats: int) -> list[Figure]:
    import torch
    import torch.nn.functional as F

    from clbench.training.evaluation import predict

    model, size = bench_model(arch, device)
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

    reference = images / median_time(hand_written, repeats)
    value = images / median_time(clbench_loop, repeats)
    return [Figure("eval_throughput", value, reference, value / reference, "images/s",
                   f"clbench's evaluator vs a hand-written open_clip loop ({arch}, {images} "
                   f"images, batch {batch})")]


@contextmanager
def _cache_folder(folder: str):
    """$CLBENCH_CACHE_DIR set to `folder` for the block (restored after)."""
    previous = os.environ.get("CLBENCH_CACHE_DIR")
    os.environ["CLBENCH_CACHE_DIR"] = folder
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CLBENCH_CACHE_DIR", None)
        else:
            os.environ["CLBENCH_CACHE_DIR"] = previous


def zero_shot_reuse(repeats: int) -> list[Figure]:
    """On the proxy scenario (the proxy's weights are named by its checkpoint: cacheable)."""
    import torch

    from clbench.config.run_config import ModelConfig
    from clbench.models import load_model
    from clbench.run.runner import zero_shot_cache
    from clbench.scenarios.stream import load_scenario
    from clbench.training.evaluation import SessionEvaluation
    from clbench.training.strategy_kit import classifier

    device = torch.device("cpu")
    bundle = load_model(ModelConfig())
    scenario = load_scenario("proxy-20shot", 0)
    model = classifier(bundle.clip, scenario.eval_sets[0].data.class_names,
                       scenario.eval_sets[0].data.templates, bundle.tokenizer)
    for eval_set in scenario.eval_sets:
        model.register_head(eval_set.name, eval_set.data.class_names, eval_set.data.templates)
    with tempfile.TemporaryDirectory() as folder, _cache_folder(folder):
        def evaluation(cache: bool) -> SessionEvaluation:
            zero_shot = zero_shot_cache(bundle, device=device, autocast_dtype=None,
                                        batch_size=256, strategy="zeroshot")
            if not cache:
                zero_shot.area.folder = None  # computing every time
            return SessionEvaluation(scenario, bundle.transform, 256, device, None, zero_shot)

        computing = median_time(lambda: evaluation(False).evaluate(model, 0), repeats)
        evaluation(True).evaluate(model, 0)  # fills the cache
        reusing = median_time(lambda: evaluation(True).evaluate(model, 0), repeats)
    images = sum(len(e.data) for e in scenario.eval_sets)
    return [Figure("zero_shot_reuse", reusing, computing, computing / reusing, "s",
                   f"the zero-shot evaluation of proxy-20shot ({images} images, "
                   f"{len(scenario.eval_sets)} eval sets) reused vs computed")]


def _photo_split(folder: Path, images: int, classes: int, templates: int):
    """`images` JPEG photos of 500x375 (the size of a typical dataset photo) on disk, as the
    split of a prepared dataset (its index's sha256 named, as `clbench data prepare` gives)."""
    import numpy as np
    import torch
    from PIL import Image

    from clbench.scenarios.datasets import SplitData

    rng = np.random.default_rng(0)
    paths = []
    for i in range(images):
        # smooth noise compresses like a photo, unlike white noise
        small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(small).resize((500, 375), Image.BICUBIC).save(path, quality=90)
        paths.append(path)

    def load(i: int):
        with Image.open(paths[i]) as image:
            return image.convert("RGB")

    return SplitData(dataset="bench-photos", split="test",
                     class_names=[f"class {c}" for c in range(classes)],
                     templates=[f"a photo number {t} of a {{}}." for t in range(templates)],
                     targets=torch.arange(images) % classes,
                     sample_ids=[p.name for p in paths], load=load,
                     prepared_sha256="bench-photos")


def session_eval(arch: str, device: torch.device, images: int, batch: int,
                 repeats: int) -> list[Figure]:
    """One session's evaluation of an eval set of JPEG files, with the caches against what
    clbench did before them: decoding and preprocessing every file and encoding every image
    (the text head kept in memory from the session before, as it was then); and the text head
    (50 classes x 4 templates) read by a later run against computing it."""
    import torch

    from clbench.scenarios.datasets import ImageSplitDataset
    from clbench.training.evaluation import predict, predict_from_features
    from clbench.training.image_cache import ImageCache
    from clbench.training.text_cache import TextHeadCache

    model, _ = bench_model(arch, device)
    model.requires_grad_(False)  # frozen towers, as in evaluation: the text store is used
    transform = model.transform
    classes, templates = 50, 4
    with tempfile.TemporaryDirectory() as folder:
        data = _photo_split(Path(folder), images, classes, templates)
        model.register_head("photos", data.class_names, data.templates)
        cache = Path(folder) / "cache"

        def session(dataset) -> torch.Tensor:
            return predict(model, dataset, "photos", batch, device)[0]

        files = ImageSplitDataset(data, transform)
        computing = median_time(lambda: session(files), repeats)

        images_cache = ImageCache(cache)
        cached = images_cache.dataset("photos", data, transform,
                                      images_cache.key(data, None, transform))
        model.text_store = TextHeadCache(cache)
        kept: list[torch.Tensor] = []
        first = predict(model, cached, "photos", batch, device, features=kept)[0]
        features = torch.cat(kept)

        def frozen_session() -> torch.Tensor:
            model.visual_sha256()  # what evaluation computes to know the tower unchanged
            return predict_from_features(model, features, "photos", batch, device)

        assert torch.equal(frozen_session(), first) and torch.equal(session(files), first)
        frozen = median_time(frozen_session, repeats)
        trained = median_time(lambda: session(cached), repeats)

        def load_all(dataset) -> None:
            for i in range(len(dataset)):
                dataset[i]

        decoding = median_time(lambda: load_all(files), repeats)
        reading = median_time(lambda: load_all(cached), repeats)

        def text_head(store) -> None:
            model.text_store = store
            model.invalidate_text_cache()
            model.class_embeddings("photos")

        head_computed = median_time(lambda: text_head(None), repeats)
        head_read = median_time(lambda: text_head(TextHeadCache(cache)), repeats)
        model.text_store = None
    what = f"({arch}, {images} JPEGs of 500x375, {classes} classes x {templates} templates)"
    return [
        Figure("session_eval_frozen_encoder", frozen, computing, computing / frozen, "s",
               f"a session's evaluation of a frozen image encoder (zero-shot, LLU) from its "
               f"kept features vs decoding, preprocessing and encoding every image {what}"),
        Figure("session_eval_trained_encoder", trained, computing, computing / trained, "s",
               f"a session's evaluation after the image encoder trained, from the image "
               f"cache vs decoding, preprocessing and encoding every image {what}"),
        Figure("image_cache_reads", reading, decoding, decoding / reading, "s",
               f"loading the preprocessed images from the cache vs decoding and preprocessing "
               f"the files {what}"),
        Figure("text_head_reuse", head_read, head_computed, head_computed / head_read, "s",
               f"the text head read from the cache by a later run vs computed {what}")]


def train_steps(arch: str, device: torch.device, batch: int, epochs: int) -> list[Figure]:
    steps, selection, epoch_time, gradient_pass = {}, {}, {}, {}
    for strategy in STRATEGIES:
        # the selecting strategies: 3 sessions, for a median of 3 selections
        sessions = 3 if strategy in SELECTING else 1
        clock = timed_session(strategy, arch, device, batch, epochs, sessions=sessions)
        steps[strategy] = statistics.median(clock.steps[1:] or clock.steps)  # first: warm-up
        selection[strategy] = statistics.median(clock.selections)
        # a session's first epoch also sets up the optimizer's state: left out when possible
        epoch_time[strategy] = statistics.median(clock.later_epochs or clock.epochs)
        gradient_pass[strategy] = statistics.median(clock.later_passes or clock.passes)
    figures = []
    for strategy in STRATEGIES:
        for base in ("lora", "fft"):
            if strategy != base:
                figures.append(Figure(
                    f"step_{strategy}_vs_{base}", steps[strategy], steps[base],
                    steps[strategy] / steps[base], "s",
                    f"a training step of {strategy} vs {base} ({arch}, batch {batch})"))
    for strategy in SELECTING:
        figures.append(Figure(
            f"selection_{strategy}", selection[strategy], epoch_time[strategy],
            selection[strategy] / epoch_time[strategy], "s",
            f"{strategy}'s mask/head selection at a session's start vs one epoch over the "
            f"session's data ({2 * batch} images; medians over 3 sessions)"))
        # what a selection cannot go below: the forward and backward over the same data
        figures.append(Figure(
            f"selection_{strategy}_vs_gradient_pass", selection[strategy],
            gradient_pass[strategy], selection[strategy] / gradient_pass[strategy], "s",
            f"{strategy}'s selection vs the forward, loss and backward of that epoch's steps "
            "alone (no optimizer step, no masking): the gradient pass a selection is made of"))
    return figures


def matmul_peak(device: torch.device, n: int = 2048) -> float:
    import torch
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def multiply():
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return 2 * n**3 / median_time(multiply, 5)


def flops(arch: str, device: torch.device, batch: int, repeats: int) -> list[Figure]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model, size = bench_model(arch, device)
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
        achieved = counter.get_total_flops() / median_time(fn, repeats)
        figures.append(Figure(name, achieved / 1e9, peak / 1e9, achieved / peak, "GFLOP/s",
                              f"{what} ({arch}, batch {batch}) vs this machine's fp32 matmul "
                              "peak"))
    return figures


def whole_command(repeats: int) -> list[Figure]:
    """The README's command in a fresh process, `repeats` times (its work varies by a few
    seconds between runs on a busy machine): the run of median ratio. After each run, the
    imports alone (`_import_time`), so that both meet the machine in the same state."""
    timings = []  # (wall, work, imports alone)
    for _ in range(max(1, repeats)):
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
        timings.append((wall, json.loads(done.stdout)["total_time_s"], _import_time()))
    middle = len(timings) // 2
    wall, work, _ = sorted(timings, key=lambda t: t[0] / t[1])[middle]
    _, floor_work_s, imports = sorted(timings, key=lambda t: t[2] / t[1])[middle]
    each = ", ".join(f"{w / t:.2f}" for w, t, _ in timings)
    floors = ", ".join(f"{(t + i) / t:.2f}" for _, t, i in timings)
    return [Figure("whole_command", wall, work, wall / work, "s",
                   "`clbench run --strategy lorsu --scenario proxy-20shot` wall clock vs its "
                   f"own training and evaluation (stored total_time_s); the median ratio of "
                   f"{len(timings)} run(s): {each}"),
            Figure("whole_command_import_floor", floor_work_s + imports, floor_work_s,
                   (floor_work_s + imports) / floor_work_s, "s",
                   f"a run's work plus {imports:.2f} s, a fresh Python importing only what "
                   f"every run needs (timed after each run), vs the work; median of: {floors}")]


# What any run must import, with clbench's deferral of the packages it never uses (wandb,
# gdown), and ended as `clbench.cli.main.console` ends, without the interpreter's teardown.
# `torch._dynamo`: torchvision imports it, and so does a torch optimizer's first param group.
_IMPORT_FLOOR = ("from clbench.deferred_imports import defer; defer(); "
                 "import torch, torch._dynamo, open_clip, avalanche.training, sqlalchemy, os; "
                 "os._exit(0)")


def _import_time() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-W", "ignore", "-c", _IMPORT_FLOOR], check=True,
                   capture_output=True)
    return time.perf_counter() - start


def memory(arch: str, device: torch.device, batch: int) -> list[Figure]:
    loaded = session_peak_mb(arch, device, batch, "-")
    figures = []
    for strategy in ("lorsu", "fft"):
        peak = session_peak_mb(arch, device, batch, strategy)
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
        elif group == "session_eval":
            figures += session_eval(arch, device, images, batch, repeats)
        elif group == "train_steps":
            figures += train_steps(arch, device, batch, epochs)
        elif group == "flops":
            figures += flops(arch, device, batch, repeats)
        elif group == "whole_command":
            figures += whole_command(repeats)
        elif group == "memory":
            figures += memory(arch, device, batch)
        elif group == "switches":
            from clbench.bench.switches import switches

            figures += [Figure(**figure) for figure in switches(arch, device, batch, repeats)]
    return figures


def as_json(figures: list[Figure]) -> dict[str, Any]:
    return {f.name: {k: v for k, v in asdict(f).items() if k in ("value", "reference", "ratio",
                                                                 "unit")} for f in figures}
