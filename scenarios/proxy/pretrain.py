"""Pretrain the proxy CLIP on the clean proxy world (``python -m clbench.scenarios.proxy.pretrain``).

The benchmark measures forgetting of pretrained knowledge, so the offline proxy needs a model that
knows something: this script trains the tiny open_clip CLIP of ``model.py`` contrastively (CLIP's
symmetric InfoNCE) on captioned clean renders of all 120 classes of ``world.py``, never on the
target camera. It is the stand-in for CLIP's web pretraining in the LoRSU paper's setting, where
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

from clbench.hashing import file_sha256
from clbench.scenarios.proxy.data import make_split
from clbench.scenarios.proxy.model import (
    CHECKPOINT_PATH,
    IMAGE_MEAN,
    IMAGE_STD,
    PROXY_ARCH,
    build_proxy_clip,
)
from clbench.scenarios.proxy.tokenizer import ProxyTokenizer
from clbench.scenarios.proxy.world import ALL_CLASSES, TEMPLATES, sample_pretraining_batch

DEFAULT_STEPS = 800
DEFAULT_BATCH = 128
EVAL_SETS = ("proxy", "proxy-clean", "proxy-generic")


def normalize(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGE_MEAN, device=images.device)[:, None, None]
    std = torch.tensor(IMAGE_STD, device=images.device)[:, None, None]
    return (images - mean) / std


@torch.no_grad()
def zero_shot_accuracy(
    model: open_clip.CLIP, tokenizer: ProxyTokenizer, dataset: str, device: str = "cpu"
) -> float:
    """Top-1 accuracy of the template-ensemble zero-shot head on ``dataset``'s test split."""
    split = make_split(dataset, "test")
    heads = []
    for name in split.class_names:
        t = model.encode_text(tokenizer([tpl.format(name) for tpl in split.templates]).to(device))
        heads.append(F.normalize(F.normalize(t, dim=-1).mean(0), dim=-1))
    head = torch.stack(heads)
    correct = 0
    for i in range(0, len(split), 512):
        img = normalize(split.images[i : i + 512].to(device))
        pred = (F.normalize(model.encode_image(img), dim=-1) @ head.T).argmax(-1)
        correct += int((pred.cpu() == split.targets[i : i + 512]).sum())
    return correct / len(split)


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def pretrain(
    out: Path = CHECKPOINT_PATH,
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
    out = Path(out)
    start = time.time()
    tok = ProxyTokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_proxy_clip(tok).to(device)
    data_gen = torch.Generator().manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.98), eps=1e-6,
    )
    warmup = max(1, steps // 20)
    labels = torch.arange(batch_size, device=device)
    model.train()
    bar = tqdm(range(steps), desc="pretrain proxy CLIP", disable=not progress, file=sys.stderr)
    loss_value = float("nan")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr, warmup)
        images, caps, classes = sample_pretraining_batch(batch_size, data_gen)
        tpl = torch.randint(0, len(TEMPLATES), (len(ALL_CLASSES),), generator=data_gen).tolist()
        prompts = [TEMPLATES[t].format(c) for t, c in zip(tpl, ALL_CLASSES)]
        img = F.normalize(model.encode_image(normalize(images.to(device))), dim=-1)
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
        "command": f"python -m clbench.scenarios.proxy.pretrain --seed {seed} --steps {steps}"
        f" --batch-size {batch_size} --lr {lr} --device {device}",
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=CHECKPOINT_PATH, help="checkpoint path (.pt)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="fixed for reproducibility")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    meta = pretrain(args.out, args.seed, args.steps, args.batch_size, args.lr,
                    device=args.device, progress=not args.no_progress)
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
