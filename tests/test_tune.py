"""`clbench tune`: a grid run on validation data only, the pick by the balanced score, the block
to paste, tuning runs marked in the store and left out of the leaderboard."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from PIL import Image

from clbench.cli.main import main
from clbench.errors import UserError
from clbench.run.tune import Point, choose, expand, parse_grid
from clbench.store import Store


def target_classes() -> tuple[list[str], list[str]]:
    """Four class names and the templates of the proxy target (which the proxy model can
    read), whatever the proxy world names them."""
    from clbench.scenarios.datasets import load_split
    from clbench.scenarios.manifests import load_dataset_manifest

    train = load_split(load_dataset_manifest("proxy"), "train")
    return train.class_names[:4], train.templates[:1]


TUNE_SCENARIO = """\
name: proxy-tune
description: shortened proxy stream whose control declares a val split
target: proxy
protocol: few-shot
shots: 2
validation: {per_class: 3}
sessions: {sizes: [2, 2], order: dataset}
eval_sets: [tctrl]
training: {epochs: 1, batch_size: 4, lr: 1.0e-4}
"""


def control_dataset(root: Path) -> tuple[Path, Path]:
    """A user manifest folder declaring `tctrl` (a folder dataset with val and test splits of
    proxy class names) and its images under a data root."""
    manifests, data = root / "manifests", root / "data"
    (manifests / "datasets").mkdir(parents=True)
    (manifests / "scenarios").mkdir()
    classes, templates = target_classes()
    (manifests / "datasets" / "tctrl.yaml").write_text(yaml.safe_dump({
        "name": "tctrl", "loader": "folder", "splits": ["val", "test"], "subdir": "tctrl",
        "class_names": classes, "templates": templates}))
    (manifests / "scenarios" / "proxy-tune.yaml").write_text(TUNE_SCENARIO)
    for split in ("val", "test"):
        for k, name in enumerate(classes):
            folder = data / "tctrl" / split / name
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (32, 32), (40 * k + 20 * i, 200 - 30 * k, 90)).save(
                    folder / f"{i}.png")
    return manifests, data


@pytest.fixture
def tune_world(tmp_path, monkeypatch):
    manifests, data = control_dataset(tmp_path)
    monkeypatch.setenv("CLBENCH_MANIFESTS", str(manifests))
    monkeypatch.setenv("CLBENCH_DATA", str(data))
    return tmp_path


def test_grid_parsing_and_expansion():
    axes = parse_grid(["training.lr=1e-5,3e-5", "strategy.rank=8,32"])
    points = expand(axes)
    assert [p.settings for p in points] == [
        {"training.lr": "1e-5", "strategy.rank": "8"},
        {"training.lr": "1e-5", "strategy.rank": "32"},
        {"training.lr": "3e-5", "strategy.rank": "8"},
        {"training.lr": "3e-5", "strategy.rank": "32"}]


def test_choose_takes_the_best_mean_and_the_earlier_point_on_a_tie():
    def point(i, *balanced):
        p = Point(i, {"training.lr": str(i)})
        p.scores = {s: {"balanced": b} for s, b in enumerate(balanced)}
        return p

    a, b, c = point(0, 0.1, 0.3), point(1, 0.3, 0.1), point(2, 0.25, 0.1)
    assert choose([a, b, c]) is a  # tie at a mean of 0.2: the earlier point
    d = point(3, 0.3, 0.2)
    assert choose([a, b, c, d]) is d


def test_a_control_bound_takes_the_largest_target_gain_among_the_points_within_it():
    def point(i, target, worst):
        p = Point(i, {"training.lr": str(i)})
        p.scores = {0: {"balanced": target + worst, "target_gain": target,
                        "worst_control": worst}}
        return p

    forgetful, careful, timid = point(0, 0.60, -0.06), point(1, 0.50, -0.03), point(2, 0.3, 0.0)
    assert choose([forgetful, careful, timid]) is forgetful  # balanced: 0.54 > 0.47 > 0.30
    assert choose([forgetful, careful, timid], max_control_drop=3) is careful  # -3.0 is within
    assert choose([forgetful, careful, timid], max_control_drop=1) is timid
    with pytest.raises(UserError, match=r"no grid point kept every control within -3 points.*"
                       r"training.lr=1, worst control -3.1"):
        choose([forgetful, point(1, 0.5, -0.031)], max_control_drop=3)


def test_the_pasted_entry_declares_the_chosen_point_strategy_parameters_included(tmp_path):
    """What tune prints, pasted into a scenario, makes `clbench run` use the chosen point."""
    from clbench.run.settings import resolve_for_scenario
    from clbench.run.tune import paste_block, point_config
    from clbench.scenarios.manifests import load_scenario_manifest

    path = tmp_path / "s.yaml"
    path.write_text("target: proxy\nshots: 2\nsessions: {sizes: [2]}\ntraining: {lr: 1.0e-5}\n")
    manifest = load_scenario_manifest(str(path))
    chosen = expand(parse_grid(["training.lr=3e-4", "strategy.lr=3e-3"]))[0]
    base = {"strategy": {"name": "llu"}, "scenario": str(path)}
    chosen.config = point_config([base], 0, chosen, manifest)  # as tune resolves a point
    baseline = resolve_for_scenario(base, manifest)
    block = yaml.safe_load(paste_block(chosen, baseline, "clbench tune ...", [0]))
    assert block == {"strategy_training": {"llu": {"lr": 3e-4, "strategy": {"lr": 3e-3}}}}
    path.write_text(path.read_text() + yaml.safe_dump(block))
    pasted = resolve_for_scenario(base, load_scenario_manifest(str(path)))
    assert pasted.training.lr == 3e-4 and pasted.strategy_params == {"lr": 3e-3}
    assert pasted.hash() == chosen.config.hash()


def test_tune_selects_on_validation_and_never_evaluates_test(tune_world, monkeypatch, capsys):
    """Accuracy is faked so that test data favours lr 1e-5 and validation data favours lr 1e-3;
    tune must pick 1e-3, and no test split may be evaluated (or loaded) at all."""
    import clbench.run.runner
    import clbench.training.evaluation
    from clbench.scenarios import datasets

    seen_splits: list[str] = []
    current = {}
    calls: dict[str, int] = {}
    original_run = clbench.run.runner.run

    def run(config, *args, **kwargs):
        current["lr"] = config.training.lr
        calls.clear()
        return original_run(config, *args, **kwargs)

    def fake_predict(model, dataset, head, batch_size, device, autocast_dtype=None,
                     features=None, loader_options=None):
        import torch

        split = dataset.data.split
        seen_splits.append(split)
        labels = torch.as_tensor(dataset.targets)
        calls[head] = calls.get(head, 0) + 1
        good = (current["lr"] == 1e-5) == (split == "test")
        right = good and (calls[head] > 1 or head == "tctrl")  # zero-shot target all wrong
        return (labels if right else labels + 1), labels  # labels + 1: always wrong

    loaded: list[tuple[str, str]] = []
    original_load = datasets.load_split

    def load_split(manifest, split, *args, **kwargs):
        loaded.append((manifest.name, split))
        return original_load(manifest, split, *args, **kwargs)

    monkeypatch.setattr(clbench.run.runner, "run", run)
    monkeypatch.setattr(clbench.training.evaluation, "predict", fake_predict)
    monkeypatch.setattr("clbench.scenarios.stream.load_split", load_split)
    db = tune_world / "tune.db"
    code = main(["tune", "--strategy", "fft", "--scenario", "proxy-tune", "--grid",
                 "training.lr=1e-5,1e-3", "--db", str(db), "--no-progress"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err
    assert seen_splits and set(seen_splits) == {"validation", "val"}
    assert all(split != "test" for _, split in loaded), loaded
    assert "chosen: training.lr=1e-3" in out
    block = out[out.index("# chosen on validation data by: clbench tune"):]
    assert "--grid training.lr=1e-5,1e-3" in block.splitlines()[0]
    pasted = yaml.safe_load(block)
    assert pasted == {"strategy_training": {"fft": {"lr": 1e-3}}}

    store = Store(f"sqlite:///{db}", create=False)
    runs = store.list_runs()
    assert len(runs) == 2 and all(r["status"] == "completed" for r in runs)
    for listed in runs:
        run = store.get_run(listed["id"])
        assert run["config"]["purpose"] == "tuning" and run["summary"]["purpose"] == "tuning"
        assert run["config"]["tuning"]["grid"] == {"training.lr": ["1e-5", "1e-3"]}
        validation = run["config"]["data"]["validation"]
        assert validation["rule"] == {"per_class": 3} and len(validation["sample_ids"]) == 12
        shots = {i for s in run["sessions"] for i in s["sample_ids"]}
        assert not shots & set(validation["sample_ids"])
        assert validation["controls"] == {"tctrl": "val"}
    assert main(["runs", "--db", str(db)]) == 0
    assert capsys.readouterr().out.count("completed (tuning)") == 2
    assert main(["runs", "--json", "--db", str(db)]) == 0
    assert '"purpose": "tuning"' in capsys.readouterr().out


def test_tuning_runs_are_left_out_of_the_leaderboard(tune_world, tiny_scenario):
    pytest.importorskip("pandas")
    from clbench.leaderboard_app import data

    db = tune_world / "mixed.db"
    assert main(["tune", "--strategy", "zeroshot", "--scenario", "proxy-tune", "--grid",
                 "training.lr=1e-5", "--db", str(db), "--no-progress"]) == 0
    assert main(["run", "--strategy", "zeroshot", "--scenario", str(tiny_scenario), "--db",
                 str(db), "--quiet"]) == 0
    loaded = data.load(Store(f"sqlite:///{db}", create=False))
    assert len(loaded.runs) == 1 and set(loaded.runs["scenario"]) == {"proxy-tiny"}
    assert loaded.other_statuses.get("tuning") == 1


@pytest.mark.parametrize("argv, message", [
    (["--grid", "training.lr=1e-5", "--set", "controls=[dalle]"], "'val' split"),
    (["--grid", "strategy.rank=8"], "strategy.rank"),
    (["--grid", "training.lr=1e-5", "--max-control-drop", "0"], "--max-control-drop 0"),
    (["--grid", "training.lr=1e-5", "--max-control-drop", "-3"], "--max-control-drop -3"),
])
def test_tune_refusals_store_nothing(tune_world, argv, message, capsys):
    db = tune_world / "refused.db"
    code = main(["tune", "--strategy", "fft", "--scenario", "proxy-tune", "--db", str(db),
                 *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "hint:" in err
    assert not db.exists()


# the tune of issue 27: a strategy parameter on the grid; training keys, another parameter and an
# added plugin with its argument fixed with --set / --plugin (batches of 2: the plugin's term is
# 0 in a session's first step, and the run refuses a plugin that added nothing)
FIXED_TUNE = ["tune", "--strategy", "lora", "--scenario", "proxy-tune", "--grid",
              "strategy.alpha=4,8", "--set", "training.lr=3e-5", "--set", "training.batch_size=2",
              "--set", "strategy.rank=4",
              "--plugin", "avalanche:LwFPlugin", "--set", "plugin.temperature=3",
              "--no-progress"]


def _choose_the_last_point(monkeypatch) -> None:
    """Tune chooses the last grid point whatever it scores, so that the block must say the
    chosen point, not the first."""
    import clbench.run.tune

    monkeypatch.setattr(clbench.run.tune, "choose", lambda points, drop=None: points[-1])


def _block(out: str) -> str:
    """The block tune printed."""
    return out[out.index("# chosen on validation data by: clbench tune"):]


def _run_command(block: str) -> list[str]:
    """The `clbench run` command of the block's `# run it with:` line."""
    lines = [line for line in block.splitlines() if line.startswith("# run it with: ")]
    assert len(lines) == 1, block
    return shlex.split(lines[0].removeprefix("# run it with: "))


def test_the_block_holds_every_setting_the_chosen_point_ran_with(tune_world, monkeypatch,
                                                                  capsys):
    """The block is the chosen grid value plus what --set and --plugin fixed: pasted as it is,
    nothing tuned is left behind (issue 27: it held only `alpha`)."""
    _choose_the_last_point(monkeypatch)
    code = main([*FIXED_TUNE, "--db", str(tune_world / "fixed.db")])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert "chosen: strategy.alpha=8" in captured.out
    block = _block(captured.out)
    assert yaml.safe_load(block) == {"strategy_training": {"lora": {
        "batch_size": 2, "lr": 3e-5, "strategy": {"rank": 4, "alpha": 8.0}}}}
    assert _run_command(block) == ["clbench", "run", "--strategy", "lora", "--scenario", "proxy-tune",
                       "--plugin", "avalanche:LwFPlugin",
                       "--set", "plugin.LwFPlugin.temperature=3"]


@pytest.mark.multirun
def test_the_pasted_block_runs_with_the_chosen_points_config_hash(tune_world, monkeypatch,
                                                                   capsys):
    """Pasted into the scenario, with the `clbench run` it prints, the block runs exactly the
    chosen point: the stored config hashes are equal."""
    _choose_the_last_point(monkeypatch)
    db, pasted_db = tune_world / "paste.db", tune_world / "pasted.db"
    assert main([*FIXED_TUNE, "--db", str(db)]) == 0
    block = _block(capsys.readouterr().out)
    command = _run_command(block)
    scenario = tune_world / "manifests" / "scenarios" / "proxy-tune.yaml"
    scenario.write_text(scenario.read_text() + block + "\n")
    assert command[:2] == ["clbench", "run"]
    assert main([*command[1:], "--db", str(pasted_db), "--no-progress", "--quiet"]) == 0
    tuned = Store(f"sqlite:///{db}", create=False)
    runs = [tuned.get_run(r["id"]) for r in tuned.list_runs()]
    (chosen,) = [r for r in runs if r["config"]["tuning"]["point"] == {"strategy.alpha": "8"}]
    pasted = Store(f"sqlite:///{pasted_db}", create=False)
    (again,) = [pasted.get_run(r["id"]) for r in pasted.list_runs()]
    assert again["config_hash"] == chosen["config_hash"]
    assert again["config"]["strategy"] == chosen["config"]["strategy"]
    assert again["config"]["training"] == chosen["config"]["training"]
