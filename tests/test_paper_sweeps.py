"""The papers' tables as sweep files (`sweeps/`, docs/sweeps.md "The papers' tables"): each
expands into the runs its header promises (methods x grid points x seeds) on its own scenario and
model, names strategies the registry knows, and renders a partition-free sbatch script with one
GPU per run; no data is read. The default tier plans each file once without the per-run checks
against the model's architecture (meta-device adapters: 10 s for the Selective LoRA file on two
cores); the slow tier runs those too. The proxy scenarios' gated entries carry the λ that
`clbench tune` chose from the Selective LoRA paper's grid."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from unittest import mock

import pytest

from clbench.errors import UserError
from clbench.scenarios.manifests import load_scenario_manifest
from clbench.strategies import registry
from clbench.sweep.executors import load, sbatch_script

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "sweeps"

# file -> (its scenario, model, runs per strategy (grid points x seeds), seeds)
PAPER_SWEEPS = {
    "lorsu-table4.yaml": (
        "tsi-20shot", "ViT-L-14@openai",
        {"fft": 3, "ln": 3, "lora": 3, "spu": 3, "lorsu": 3}, [0, 1, 2]),
    "mtil-order1-vitb16.yaml": (
        "mtil-order1", "ViT-B-16@openai",
        {s: 3 for s in ("zeroshot", "fft", "ln", "lora", "dora", "gated-lora", "gated-dora",
                        "spu", "lorsu", "llu")}, [0, 1, 2]),
    "selective-lora-imagenet-shifts.yaml": (
        "imagenet-shifts", "ViT-B-16@openai",
        {"gated-lora": 9, "gated-dora": 9, "lora-qkv-split": 3, "dora-qkv-split": 3, "fft": 1},
        [0]),
}
TOTALS = {"lorsu-table4.yaml": 15, "mtil-order1-vitb16.yaml": 30,
          "selective-lora-imagenet-shifts.yaml": 25}


@functools.cache
def planned(name: str):
    """The sweep as `clbench sweep --dry-run` plans it, less `preflight`'s checks of each run
    against the model's architecture (the slow test below runs them)."""
    with mock.patch("clbench.run.runner.preflight", lambda *args, **kwargs: None):
        return load(SWEEPS / name)


@pytest.mark.parametrize("name", sorted(PAPER_SWEEPS))
def test_a_paper_sweep_expands_into_its_runs_on_its_scenario_and_model(name):
    scenario, model, runs, seeds = PAPER_SWEEPS[name]
    sweep = planned(name)
    assert len(sweep.runs) == TOTALS[name] == sum(runs.values()) and sweep.duplicates == 0
    per_strategy: dict[str, int] = {}
    for run in sweep.runs:
        config = sweep.configs[run.key]
        per_strategy[config.strategy] = per_strategy.get(config.strategy, 0) + 1
        registry.info(config.strategy)  # raises for a name the registry does not know
        assert (run.scenario, run.model, str(config.device)) == (scenario, model, "cuda")
    assert per_strategy == runs
    assert sorted({r.seed for r in sweep.runs}) == seeds
    manifest_hash = load_scenario_manifest(scenario).hash or None
    assert {r.identity["scenario_manifest_hash"] for r in sweep.runs} == {manifest_hash}


@pytest.mark.parametrize("name", sorted(PAPER_SWEEPS))
def test_a_paper_sweep_submits_one_gpu_per_run_without_a_partition(name):
    sweep = planned(name)
    script = sbatch_script(sweep.executor, len(sweep.runs))
    flags = dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", script, re.M))
    assert flags["gpus-per-node"] == "1" and "partition" not in flags
    assert int(flags["time"]) >= 240 and flags["mem"].endswith("GB")
    assert flags["array"] == f"0-{len(sweep.runs) - 1}%{len(sweep.runs)}"


def test_the_selective_lora_sweep_is_the_papers_lambda_and_rank_grid():
    sweep = planned("selective-lora-imagenet-shifts.yaml")
    params: dict[str, list[dict]] = {}
    for run in sweep.runs:
        config = sweep.configs[run.key]
        resolved = registry.resolved_params(sweep.plugins[run.key])
        params.setdefault(config.strategy, []).append(resolved)
        assert resolved["towers"] == "both"  # Tables 10-11 count blocks of both towers
    gated = {(p["lam"], p["rank"]) for p in params["gated-lora"]}
    assert gated == {(lam, r) for lam in (0.5, 1.0, 1.5) for r in (4, 64, 256)}
    assert {(p["lam"], p["rank"]) for p in params["gated-dora"]} == gated
    assert {p["rank"] for p in params["lora-qkv-split"]} == {4, 64, 256}
    # the ungated twins adapt the gated methods' 6 blocks per layer
    assert params["lora-qkv-split"][0]["targets"] == params["gated-lora"][0]["targets"]
    assert params["dora-qkv-split"][0]["targets"] == params["gated-dora"][0]["targets"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAPER_SWEEPS))
def test_every_run_of_a_paper_sweep_passes_the_checks_clbench_run_makes(name):
    """Each run's config and strategy parameters checked against the model's architecture
    (meta device), as `clbench sweep` checks them before submitting."""
    assert len(load(SWEEPS / name).runs) == TOTALS[name]


@pytest.mark.parametrize("name", sorted(PAPER_SWEEPS))
def test_a_paper_sweeps_header_says_how_to_run_it(name):
    text = (SWEEPS / name).read_text(encoding="utf-8")
    header = text[:text.index("\nname:")]
    assert f"clbench sweep sweeps/{name}" in header
    assert f"clbench sweep status sweeps/{name}" in header
    assert f"= {TOTALS[name]} runs" in header


def test_the_docs_list_every_paper_sweep_with_its_command():
    text = (ROOT / "docs" / "sweeps.md").read_text(encoding="utf-8")
    section = text[text.index("## The papers' tables"):]
    for name in PAPER_SWEEPS:
        assert f"clbench sweep sweeps/{name}" in section
        assert f"clbench sweep status sweeps/{name}" in section


def test_a_misspelt_scenario_in_a_paper_sweep_is_refused_with_the_closest_name(tmp_path):
    text = (SWEEPS / "lorsu-table4.yaml").read_text(encoding="utf-8")
    path = tmp_path / "typo.yaml"
    path.write_text(text.replace("scenarios: [tsi-20shot]", "scenarios: [tsi-20shots]"))
    with pytest.raises(UserError, match=r"scenarios\[0\].*tsi-20shot"):
        load(path)


@pytest.mark.parametrize("scenario", ["proxy-20shot", "proxy-hand-20shot"])
def test_the_gated_methods_are_tuned_over_lambda_on_the_proxy(scenario):
    """The Selective LoRA paper chooses λ from {0.1, 0.5, 1.0}: each gated entry's command
    tunes it, and the entry holds the λ `clbench tune` chose from that grid."""
    text = (ROOT / "data_manifests" / "scenarios" / f"{scenario}.yaml").read_text(
        encoding="utf-8")
    manifest = load_scenario_manifest(scenario)
    for strategy in ("gated-lora", "gated-dora"):
        command = re.search(rf"# (clbench tune --strategy {strategy} .*)\n\s+{strategy}:", text)
        assert command, f"{scenario}.yaml: no tune command above the {strategy} entry"
        assert f"--scenario {scenario}" in command.group(1)
        assert "--grid strategy.lam=0.1,0.5,1.0" in command.group(1)
        assert manifest.strategy_training[strategy]["strategy"]["lam"] in (0.1, 0.5, 1.0)
