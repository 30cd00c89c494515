"""`clbench bench`: every figure comes with a reference measured in the same run and their
ratio, as a table or as JSON; the targets are judged from the ratio. Structure only: speed is
read from the numbers, never asserted by a timed test."""

from __future__ import annotations

import json

import pytest

from clbench.bench.suite import TARGETS, Figure
from clbench.cli.main import main


def test_bench_prints_each_figure_with_its_reference_and_ratio_as_json(capsys):
    assert main(["bench", "--model", "proxy-vit-tiny", "--only", "eval_throughput", "flops",
                 "zero_shot_reuse", "--repeats", "1", "--images", "16", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) == {"eval_throughput", "flops_train_step", "flops_eval",
                            "zero_shot_reuse"}
    for name, f in figures.items():
        assert set(f) == {"value", "reference", "ratio", "unit"}, name
        assert f["value"] > 0 and f["reference"] > 0, name
        assert f["ratio"] == pytest.approx(f["value"] / f["reference"]) or \
            f["ratio"] == pytest.approx(f["reference"] / f["value"]), name
    assert figures["eval_throughput"]["unit"] == "images/s"
    assert figures["flops_eval"]["unit"] == "GFLOP/s"


def test_bench_times_every_strategy_step_against_lora_and_fft(capsys):
    assert main(["bench", "--model", "proxy-vit-tiny", "--only", "train_steps", "--epochs", "2",
                 "--batch", "4"]) == 0
    out = capsys.readouterr().out
    for name in ("step_lorsu_vs_lora", "step_gated-lora_vs_lora", "step_lorsu_vs_fft",
                 "selection_lorsu", "selection_spu", "selection_lorsu_vs_gradient_pass",
                 "selection_spu_vs_gradient_pass"):
        assert name in out
    assert "<= 1.2" in out and "<= 1.3" in out  # the targets beside the ratios


def test_a_target_is_judged_from_the_ratio():
    fast = Figure("step_lorsu_vs_lora", 1.0, 1.0, 1.1, "s", "")
    slow = Figure("step_lorsu_vs_lora", 1.5, 1.0, 1.5, "s", "")
    assert fast.met is True and slow.met is False and fast.target == TARGETS[fast.name][0]
    assert Figure("step_ln_vs_fft", 1, 1, 1, "s", "").met is None


def test_bench_refuses_a_bad_count(capsys):
    assert main(["bench", "--repeats", "0"]) == 2
    assert "--repeats: 0 is below 1" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_times_the_cached_session_evaluation_and_the_speed_switches(capsys):
    assert main(["bench", "--model", "proxy-vit-tiny", "--only", "session_eval", "switches",
                 "--repeats", "1", "--images", "8", "--batch", "4", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert {"session_eval_frozen_encoder", "session_eval_trained_encoder", "image_cache_reads",
            "text_head_reuse", "switch_grad_checkpointing_step", "switch_channels_last_step",
            "switch_compile_step", "switch_workers_epoch", "switch_sdpa_eval",
            "switch_grad_checkpointing_memory"} == set(figures)
    for name, f in figures.items():
        assert f["value"] > 0 and f["reference"] > 0, name


@pytest.mark.spawns
def test_bench_times_the_readme_command_against_its_own_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["bench", "--only", "whole_command", "--repeats", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    figure, floor = figures["whole_command"], figures["whole_command_import_floor"]
    assert figure["unit"] == "s" and figure["value"] > figure["reference"] > 0
    assert figure["ratio"] == pytest.approx(figure["value"] / figure["reference"])
    # the floor is the same work plus the imports' time
    assert floor["reference"] == figure["reference"] < floor["value"]
    assert floor["ratio"] == pytest.approx(floor["value"] / floor["reference"])


def test_the_step_clock_times_an_epochs_gradient_pass_within_the_epoch():
    import torch

    from clbench.bench.timing import timed_session

    clock = timed_session("spu", "proxy-vit-tiny", torch.device("cpu"), 4, 2, sessions=2)
    assert len(clock.passes) == len(clock.epochs) == 4
    assert clock.later_passes == clock.passes[1::2]  # each session's second epoch
    for passes, epoch in zip(clock.passes, clock.epochs):
        assert 0 < passes < epoch  # the steps' forward and backward, not their updates
