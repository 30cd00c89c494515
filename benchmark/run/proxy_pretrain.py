"""Pretrain the proxy CLIP on the clean proxy world (``clbench proxy pretrain --out PATH``; the options are declared with the
command in ``clbench.cli.main``, so `clbench --help` never imports torch).

The benchmark measures forgetting of pretrained knowledge, so the offline proxy needs a model that
knows something: this script trains the tiny open_clip CLIP ``proxy-vit-tiny`` (a model config of
``clbench.models``; its word list is written from ``world.vocabulary()``) contrastively (CLIP's
symmetric InfoNCE) plus cross-entropy against every class prompt, on captioned clean renders of
all 120 shape classes of ``world.py`` (half of each batch) and printed digits and letters of
``glyphs.py`` (the other half), never on the target camera and never on handwriting. It is the stand-in for CLIP's web pretraining in the LoRSU paper's setting, where
the model is good on DALL-E/ImageNet-like images and poor on the TSI camera's. A fixed step count
and seeded generators make it reproducible on CPU (same seed and thread count -> same weights).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from tqdm import tqdm

from clbench.backbones import PROXY_ARCH
from clbench.errors import UserError
from clbench.hashing import file_sha256
from clbench.models import PROXY_CHECKPOINT, build_clip, model_transform, tokenizer_for
from clbench.models.classifier import CLIPClassifier
from clbench.models.configs import write_vocabulary
from clbench.scenarios.proxy.data import make_split
from clbench.scenarios.proxy.world import (
    ALL_CLASSES,
    PRETRAIN_CLASSES,
    TEMPLATES,
    sample_glyph_batch,
    sample_pretraining_batch,
    vocabulary,
)
from clbench.schedules import warmup_cosine

DEFAULT_STEPS = 2400
DEFAULT_BATCH = 128
EVAL_SETS = ("proxy", "proxy-clean", "proxy-generic", "proxy-hand", "proxy-printed",
             "proxy-glyphs")
GLYPH_FRACTION = 0.7  # share of each batch that is printed glyphs (the rest: shapes)


@torch.no_grad()
def zero_shot_accuracy(model: open_clip.CLIP, tokenizer, dataset: str,
                       device: str = "cpu", split_name: str = "test") -> float:
    """Top-1 accuracy of the template-ensemble zero-shot head on ``dataset``'s test split."""
    split = make_split(dataset, split_name)
    classifier = CLIPClassifier(model, tokenizer)
    classifier.register_head(dataset, split.class_names, split.templates)
    transform = model_transform(model)
    correct = 0
    for i in range(0, len(split), 512):
        pred = classifier(transform(split.images[i : i + 512]).to(device)).argmax(-1)
        correct += int((pred.cpu() == split.targets[i : i + 512]).sum())
    return correct / len(split)


def check_out(out: Path) -> Path:
    """Fail in a second, not after the training: `out` must be a writable checkpoint file path."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a directory, not a checkpoint file path",
                        hint=f"pass a file path, e.g. --out {out / 'proxy.pt'}")
    existed = out.exists()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "ab"):
            pass
        if not existed:
            out.unlink()
    except OSError as err:
        raise UserError(f"--out {out} is not writable: {err.strerror or err}",
                        hint="pass a file path in a writable folder") from None
    return out


def pretrain(
    out: Path = PROXY_CHECKPOINT,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH,
    lr: float = 2e-3,
    weight_decay: float = 0.1,
    device: str = "cpu",
    evaluate: bool = True,
    progress: bool = True,
) -> dict:
    """Train from scratch, write the fp16 checkpoint to ``out`` and metadata beside it (.json)."""
    out = check_out(out)
    if write_vocabulary(PROXY_ARCH, vocabulary()):
        print(f"the proxy world's vocabulary changed: wrote it to the {PROXY_ARCH} model config",
              file=sys.stderr)
    # One thread: on a small, shared CPU the tiny model runs several times faster than with two
    # (no spinning on busy cores), and the weights do not depend on the machine's core count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _pretrain(out, seed, steps, batch_size, lr, weight_decay, device, evaluate,
                         progress)
    finally:
        torch.set_num_threads(threads)


def _pretrain(out: Path, seed: int, steps: int, batch_size: int, lr: float,
              weight_decay: float, device: str, evaluate: bool, progress: bool) -> dict:
    start = time.time()
    tok = tokenizer_for(PROXY_ARCH)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_clip(PROXY_ARCH).to(device)
    transform = model_transform(model)
    data_gen = torch.Generator().manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.98), eps=1e-6,
    )
    schedule = warmup_cosine(steps, warmup_steps=max(1, steps // 20))
    labels = torch.arange(batch_size, device=device)
    model.train()
    bar = tqdm(range(steps), desc="pretrain proxy CLIP", disable=not progress, file=sys.stderr)
    loss_value = float("nan")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr * schedule(step)
        n_glyph = round(GLYPH_FRACTION * batch_size)
        images, caps, classes = sample_pretraining_batch(batch_size - n_glyph, data_gen)
        g_images, g_caps, g_classes = sample_glyph_batch(n_glyph, data_gen)
        images, caps = torch.cat([images, g_images]), caps + g_caps
        classes = torch.cat([classes, g_classes + len(ALL_CLASSES)])  # into PRETRAIN_CLASSES
        tpl = torch.randint(0, len(TEMPLATES), (len(PRETRAIN_CLASSES),),
                            generator=data_gen).tolist()
        prompts = [TEMPLATES[t].format(c) for t, c in zip(tpl, PRETRAIN_CLASSES)]
        img = F.normalize(model.encode_image(transform(images).to(device)), dim=-1)
        txt = F.normalize(model.encode_text(tok(caps).to(device)), dim=-1)
        heads = F.normalize(model.encode_text(tok(prompts).to(device)), dim=-1)
        scale = model.logit_scale.exp()
        logits = scale * img @ txt.T
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        # UniCL-style term: the caption contrast alone treats same-class images as negatives and
        # learns class identity slowly; classifying against all class prompts fixes both.
        loss = loss + F.cross_entropy(scale * img @ heads.T, classes.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        loss_value = float(loss.detach())
        elapsed = time.time() - start
        bar.set_postfix(loss=f"{loss_value:.3f}", img_s=f"{(step + 1) * batch_size / elapsed:.0f}")
        if progress and (step + 1) % 400 == 0 and step + 1 < steps:
            model.eval()  # a glance at the small val splits (consumes no random numbers)
            glance = {name: round(zero_shot_accuracy(model, tok, name, device, "val"), 3)
                      for name in ("proxy-clean", "proxy-printed", "proxy-glyphs")}
            model.train()
            print(f"step {step + 1}: val zero-shot {glance}", file=sys.stderr)
    train_time = time.time() - start
    model.eval()

    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().half() for k, v in model.state_dict().items()}, out)
    accuracies = (
        {name: zero_shot_accuracy(model, tok, name, device) for name in EVAL_SETS}
        if evaluate else {}
    )
    meta = {
        "arch": PROXY_ARCH,
        "command": f"clbench proxy pretrain --seed {seed} --steps {steps}"
        f" --batch-size {batch_size} --lr {lr} --device {device}",
        "glyph_fraction": GLYPH_FRACTION,
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "device": device,
        "threads": torch.get_num_threads(),
        "train_seconds": round(train_time, 1),
        "final_loss": round(loss_value, 4),
        "parameters": sum(p.numel() for p in model.parameters()),
        "checkpoint": out.name,
        "checkpoint_bytes": out.stat().st_size,
        "sha256": file_sha256(out),
        "zero_shot_accuracy": accuracies,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "python": platform.python_version(),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def run(args: argparse.Namespace) -> int:
    """Pretrain with the options `clbench proxy pretrain` parsed (see `clbench.cli.main`) and print
    the provenance; a bad --out is a UserError raised before any training."""
    out = PROXY_CHECKPOINT if args.out is None else args.out
    meta = pretrain(out, args.seed, args.steps, args.batch_size, args.lr,
                    device=args.device, progress=not args.no_progress)
    print(json.dumps(meta, indent=2))
    return 0
