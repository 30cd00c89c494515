"""`clbench bench [--json]`: speed figures, each against a reference measured in the same run
(`clbench.bench.suite`)."""

from __future__ import annotations

import argparse
import json
import sys

from clbench.errors import UserError


def add_parser(sub) -> None:
    from clbench.bench.suite import GROUPS

    bench = sub.add_parser(
        "bench", help="speed benchmarks: each figure, its reference measured in the same run, "
        "the ratio", description="Measure clbench's evaluation, caches, training steps and "
        "start-up against hand-written references on the same model and inputs (not unit "
        "tests: numbers to read). Random weights: nothing is downloaded.")
    bench.add_argument("--only", nargs="+", choices=GROUPS, metavar="GROUP",
                       help=f"run only these groups ({', '.join(GROUPS)}; default: all)")
    bench.add_argument("--model", default="ViT-B-16", metavar="ARCH",
                       help="architecture for the throughput, step and FLOP figures (default "
                       "ViT-B-16, random weights; proxy-vit-tiny is quick)")
    bench.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    bench.add_argument("--batch", type=int, default=8, help="batch size (default 8, the papers')")
    bench.add_argument("--images", type=int, default=32, help="images per evaluation pass for "
                       "eval_throughput (default 32)")
    bench.add_argument("--repeats", type=int, default=3, help="timed repeats after a warm-up; "
                       "the median is reported (default 3)")
    bench.add_argument("--epochs", type=int, default=2, help="epochs of the timed session of "
                       "each strategy (default 2)")
    bench.add_argument("--json", action="store_true", help="print {name: {value, reference, "
                       "ratio, unit}}")


def _table(figures) -> str:
    from clbench.run.report import table

    rows = [[f.name, f"{f.value:.4g}", f"{f.reference:.4g}", f"{f.ratio:.3f}", f.unit, f.target,
             {True: "yes", False: "NO", None: "-"}[f.met]] for f in figures]
    lines = [table(["figure", "value", "reference", "ratio", "unit", "target", "met"], rows), ""]
    lines += [f"  {f.name}: {f.what}" for f in figures]
    return "\n".join(lines)


def cmd_bench(args: argparse.Namespace) -> int:
    for name in ("batch", "images", "repeats", "epochs"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name}: {getattr(args, name)} is below 1")
    import torch

    from clbench.bench.suite import GROUPS, as_json, run_benchmarks
    from clbench.run.runner import pick_device

    device = pick_device(args.device)
    progress = (lambda text: print(text, file=sys.stderr)) if args.json else print
    figures = run_benchmarks(list(args.only or GROUPS), arch=args.model, device=device,
                             batch=args.batch, images=args.images, repeats=args.repeats,
                             epochs=args.epochs, progress=progress)
    if args.json:
        print(json.dumps(as_json(figures), indent=2))
    else:
        print(f"\non {torch.get_num_threads()} thread(s), device {device}:")
        print(_table(figures))
    return 0
