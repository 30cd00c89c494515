"""Avalanche plugins added to a clbench strategy (`--plugin SPEC`, `--set plugin.KEY=VALUE`):
EWC combined with `ln` on a shortened proxy stream, what the run stores about it, and the bad
inputs, each refused with one `error:` line and exit 2 before any run is recorded."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from conftest import TINY_SCENARIO

from clbench.cli.main import build_parser, main
from clbench.config import run_config as cfg
from clbench.config.plugin_specs import PLUGINS_OVERRIDE
from clbench.store import Store

EWC = "avalanche.training.plugins.EWCPlugin"
# a learning rate at which LN tuning moves the proxy's accuracies within one epoch
FAST = ["--set", "training.lr=0.01", "--no-progress"]


def _runs(db: Path) -> list[dict]:
    return Store(f"sqlite:///{db}", create=False).list_runs() if db.exists() else []


def _get(db: Path, run_id: str) -> dict:
    return Store(f"sqlite:///{db}", create=False).get_run(run_id)


@pytest.fixture(scope="module")
def ewc_runs(tmp_path_factory):
    """`ln` alone and `ln` + EWC at a large lambda on the 3-session proxy stream of conftest,
    in one store (the bad-input tests check that it gains no run)."""
    folder = tmp_path_factory.mktemp("ewc")
    scenario = folder / "proxy-tiny.yaml"
    scenario.write_text(TINY_SCENARIO)
    db = folder / "results.db"
    base = ["run", "--strategy", "ln", "--scenario", str(scenario), "--db", str(db), *FAST]
    assert main([*base, "--quiet"]) == 0
    assert main([*base, "--plugin", "avalanche:EWCPlugin", "--set", "plugin.ewc_lambda=1000"]
                ) == 0
    plain_id, ewc_id = (r["id"] for r in reversed(_runs(db)))
    return {"db": db, "scenario": scenario, "plain": _get(db, plain_id), "ewc": _get(db, ewc_id)}


def test_ewc_with_ln_is_stored_and_applied(ewc_runs, capsys):
    plain, ewc = ewc_runs["plain"], ewc_runs["ewc"]
    assert ewc["status"] == "completed"
    args = {"ewc_lambda": 1000.0, "mode": "separate", "decay_factor": None,
            "keep_importance_data": False}
    # the config holds the class, its full arguments and the version of the package
    assert ewc["config"]["plugins"] == [{"class": EWC, "args": args, "package": "avalanche-lib",
                                         "version": metadata.version("avalanche-lib")}]
    assert "plugins" not in plain["config"]
    # part of the strategy's preset (its stored parameters) and of the config hash
    assert ewc["strategy_config"] == {"towers": "vision", "plugins": [{"class": EWC,
                                                                       "args": args}]}
    assert plain["strategy_config"] == {"towers": "vision"}
    assert ewc["strategy_config_hash"] != plain["strategy_config_hash"]
    assert ewc["config_hash"] != plain["config_hash"]

    # the penalty: nothing in session 1 (no earlier session), a positive term afterwards
    terms = [s["facts"]["plugins"]["EWCPlugin"]["loss_term"] for s in ewc["sessions"]]
    assert terms[0] == 0.0 and terms[1] > 0 and terms[2] > 0
    assert all("plugins" not in s["facts"] for s in plain["sessions"])

    # same seed: identical up to the end of session 1, where EWC only measures importances;
    # then the penalty holds the LayerNorms near their values, and the accuracies differ
    def accuracies(run, after):
        return {(e["eval_set"], e["subset"]): e["accuracy"] for e in run["evaluations"]
                if e["after_session"] == after}

    for after in (0, 1):
        assert accuracies(ewc, after) == accuracies(plain, after)
    assert accuracies(ewc, 3) != accuracies(plain, 3)
    assert ewc["summary"]["final_accuracy"] != plain["summary"]["final_accuracy"]

    # shown with the strategy's parameters in the run report
    capsys.readouterr()
    assert main(["show", ewc["id"][:10], "--db", str(ewc_runs["db"])]) == 0
    assert "EWCPlugin" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:Call to deprecated function update:DeprecationWarning")
@pytest.mark.slow
def test_lwf_mas_and_replay_together(tiny_scenario, db_path, monkeypatch):
    """Several plugins in one run, each with its own arguments (plugin.CLASS.KEY): LwF
    distils the logits (clbench hands plugins logits as `mb_output` and experiences in task 0),
    MAS adds its penalty, and replay mixes stored samples into the batches."""
    from clbench.training.loop import SessionTrainer

    sizes: list[int] = []
    unpack = SessionTrainer._unpack_minibatch

    def counting(self):
        unpack(self)
        sizes.append(len(self.mb_y))

    monkeypatch.setattr(SessionTrainer, "_unpack_minibatch", counting)
    assert main(["run", "--strategy", "ln", "--scenario", str(tiny_scenario), "--db",
                 str(db_path), "--quiet", *FAST, "--plugin", "avalanche:LwFPlugin", "--plugin",
                 "avalanche:MASPlugin", "--plugin", "avalanche:ReplayPlugin", "--set",
                 "plugin.LwFPlugin.alpha=2", "--set", "plugin.MASPlugin.lambda_reg=10", "--set",
                 "plugin.ReplayPlugin.mem_size=6"]) == 0
    (row,) = _runs(db_path)
    run = _get(db_path, row["id"])
    plugins = {p["class"].rsplit(".", 1)[1]: p["args"] for p in run["config"]["plugins"]}
    assert plugins == {"LwFPlugin": {"alpha": 2.0, "temperature": 2.0},
                       "MASPlugin": {"lambda_reg": 10.0, "alpha": 0.5, "verbose": False},
                       "ReplayPlugin": {"mem_size": 6, "batch_size": None, "batch_size_mem": None,
                                        "task_balanced_dataloader": False,
                                        "storage_policy": None}}
    for name in ("LwFPlugin", "MASPlugin"):
        terms = [s["facts"]["plugins"][name]["loss_term"] for s in run["sessions"]]
        assert terms[0] == 0.0 and terms[1] > 0 and terms[2] > 0, (name, terms)
    # sessions of 6 samples in batches of 4: 4 + 2 alone, then with 4 + 2 replayed as well
    assert sizes == [4, 2, 8, 4, 8, 4]


def test_the_leaderboard_sees_another_preset(ewc_runs):
    from clbench.leaderboard_app.data import runs_frame

    rows = Store(f"sqlite:///{ewc_runs['db']}", create=False).runs_overview(["completed"])
    frame = runs_frame(rows).set_index("id")
    plain, ewc = frame.loc[ewc_runs["plain"]["id"]], frame.loc[ewc_runs["ewc"]["id"]]
    assert plain["preset_key"] != ewc["preset_key"]
    assert "EWCPlugin" in ewc["group"] and "EWCPlugin" not in plain["group"]


def test_a_stored_config_resolves_to_the_same_plugins(ewc_runs):
    """The stored form ({class, args, package, version}) is accepted as config input and
    resolves to what was hashed: a stored run's plugins can be run again."""
    from clbench.training.extra_plugins import create_all

    stored = ewc_runs["ewc"]["config"]
    config = cfg.resolve(cfg.assemble([{"strategy": "ln", "scenario": "x",
                                        "plugins": stored["plugins"]}]))
    assert [p.key for p in create_all(config.plugins)] == ewc_runs["ewc"]["strategy_config"][
        "plugins"]


def _write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.py").write_text(text)


@pytest.mark.parametrize("extra, expected", [
    (["--plugin", "avalanche:EWCPlugn"], "did you mean: EWCPlugin"),
    (["--plugin", "EWCPlugin"], "is not avalanche:ClassName"),
    (["--plugin", "no_such_package.plugins:Thing"], "cannot import no_such_package.plugins"),
    (["--plugin", "clbench_broken_plugin:Thing"], "RuntimeError: broken at import"),
    (["--plugin", "clbench_fake_plugin:NotAPlugin"], "is not an Avalanche SupervisedPlugin"),
    (["--plugin", "os.path:join"], "not a class"),
    (["--plugin", "avalanche:SupervisedPlugin"], "the base class"),
    (["--plugin", "clbench.strategies.fft:FullFineTuningPlugin"], "a clbench strategy"),
    (["--plugin", "avalanche:EWCPlugin"], "EWCPlugin needs plugin.ewc_lambda"),
    (["--plugin", "avalanche:EWCPlugin", "--set", "plugin.ewc_lamda=5"],
     "did you mean 'plugin.ewc_lambda'"),
    (["--plugin", "avalanche:EWCPlugin", "--set", "plugin.ewc_lambda=5", "--set",
      "plugin.mode=sideways"], "plugin.mode: 'sideways' is not one of 'separate', 'online'"),
    (["--plugin", "avalanche:EWCPlugin", "--set", "plugin.ewc_lambda=5", "--set",
      "plugin.mode=online"], "AssertionError: You need to set `decay_factor`"),
    (["--plugin", "clbench_fake_plugin:Picky", "--set", "plugin.size=3"],
     "ValueError: size must be even"),
    (["--plugin", "avalanche:ReplayPlugin", "--set", "plugin.mem_size=lots"],
     "plugin.mem_size: expected an integer"),
    (["--plugin", "avalanche:ReplayPlugin", "--set", "plugin.storage_policy=reservoir"],
     "cannot be given as a value"),
    (["--set", "plugin.ewc_lambda=5"], "plugin.ewc_lambda: no plugin to pass it to"),
    (["--plugin", "avalanche:EWCPlugin", "--plugin", "avalanche:LwFPlugin", "--set",
      "plugin.alpha=2"], "name the one it is for"),
    (["--plugin", "avalanche:EWCPlugin", "--plugin", "avalanche:EWCPlugin"], "given twice"),
    (["--plugin", "avalanche:SynapticIntelligencePlugin", "--set", "plugin.si_lambda=1",
      "--device", "cpu"], "without copying them"),
    (["--strategy", "zeroshot", "--plugin", "avalanche:LwFPlugin"], "a reference row"),
    (["--strategy", "joint-replay", "--plugin", "avalanche:LwFPlugin"], "a reference row"),
    (["--strategy", "lorsu", "--plugin", "avalanche:EWCPlugin", "--set",
      "plugin.ewc_lambda=5"], "merges its adapters"),
])
def test_bad_plugins_exit_2_and_store_nothing(ewc_runs, tmp_path, monkeypatch, capsys, extra,
                                              expected):
    _write(tmp_path, "clbench_broken_plugin", "raise RuntimeError('broken at import\\nmore')\n")
    _write(tmp_path, "clbench_fake_plugin", (
        "from avalanche.core import SupervisedPlugin\n\n"
        "class NotAPlugin:\n    pass\n\n"
        "class Picky(SupervisedPlugin):\n"
        "    def __init__(self, size: int = 2):\n"
        "        super().__init__()\n"
        "        if size % 2:\n            raise ValueError('size must be even')\n"))
    monkeypatch.syspath_prepend(str(tmp_path))
    db = ewc_runs["db"]
    before = len(_runs(db))
    strategy = [] if "--strategy" in extra else ["--strategy", "ln"]
    code = main(["run", *strategy, "--scenario", str(ewc_runs["scenario"]), "--db", str(db),
                 "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], err
    assert len(err.strip().splitlines()) <= 2  # the error and its hint, no traceback
    assert len(_runs(db)) == before  # nothing recorded


def test_a_strategy_that_trains_nothing_takes_no_plugin(ewc_runs, monkeypatch, capsys):
    from clbench.strategies.ln import LayerNormTuningPlugin

    monkeypatch.setattr(LayerNormTuningPlugin, "planned_trainable", lambda self, clip: 0)
    before = len(_runs(ewc_runs["db"]))
    assert main(["run", "--strategy", "ln", "--scenario", str(ewc_runs["scenario"]), "--db",
                 str(ewc_runs["db"]), "--plugin", "avalanche:LwFPlugin"]) == 2
    assert "trains nothing, so LwFPlugin would have nothing to act on" in capsys.readouterr().err
    assert len(_runs(ewc_runs["db"])) == before


@pytest.mark.parametrize("strategy, lam, expected", [
    # a weight too small to change the float32 loss: EWC adds exactly nothing
    ("ln", "1e-30", "EWCPlugin added nothing to the loss in session 2"),
    # LoRSU merges its adapters after each session (the up-front check is bypassed here to
    # reach the training loop's own check, which catches a strategy that does so unannounced)
    ("lorsu", "100", "replaced"),
])
def test_a_penalty_that_cannot_act_fails_the_run(tiny_scenario, db_path, monkeypatch, capsys,
                                                 strategy, lam, expected):
    from clbench.run import runner

    monkeypatch.setattr(runner, "_merges_between_sessions", lambda plugin: False)
    code = main(["run", "--strategy", strategy, "--scenario", str(tiny_scenario), "--db",
                 str(db_path), "--quiet", *FAST, "--plugin", "avalanche:EWCPlugin", "--set",
                 f"plugin.ewc_lambda={lam}"])
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    (run,) = _runs(db_path)
    assert run["status"] == "failed"  # stored as failed, never as the combination


def test_tune_takes_the_same_plugins(tiny_scenario, db_path, capsys):
    """`clbench tune --plugin` goes through the same checks, before any trial is stored."""
    code = main(["tune", "--strategy", "ln", "--scenario", str(tiny_scenario), "--grid",
                 "training.lr=1e-4,1e-3", "--db", str(db_path), "--plugin",
                 "avalanche:EWCPlugin", "--set", "plugin.ewc_lambda=5", "--set",
                 "plugin.mode=online"])
    assert code == 2
    assert "You need to set `decay_factor`" in capsys.readouterr().err
    assert not db_path.exists()


def test_plugin_flags_and_config_keys():
    args = build_parser().parse_args(["run", "--plugin", "avalanche:EWCPlugin", "--set",
                                      "training.lr=1e-3", "--plugin", "pkg.mod:Other"])
    plugin_items = [o for o in args.overrides if o.startswith(PLUGINS_OVERRIDE)]
    assert len(plugin_items) == 1 and args.plugins == ["avalanche:EWCPlugin", "pkg.mod:Other"]
    raw = cfg.assemble([{"strategy": "ln", "scenario": "x"}, cfg.parse_set_options(
        [*args.overrides, "plugin.EWCPlugin.ewc_lambda=3", "plugin.Other.k=v"])])
    config = cfg.resolve(raw)
    assert config.plugins == [{"class": "avalanche:EWCPlugin", "args": {"ewc_lambda": 3}},
                              {"class": "pkg.mod:Other", "args": {"k": "v"}}]
    # a config without plugins hashes as before the feature existed
    plain = cfg.resolve(cfg.assemble([{"strategy": "ln", "scenario": "x"}]))
    assert "plugins" not in plain.to_dict()
    assert config.hash() != plain.hash()
    # a --config file's list, its arguments from --set
    yaml_layer = {"plugins": ["avalanche:LwFPlugin"], "plugin": {"alpha": 0.5}}
    config = cfg.resolve(cfg.assemble([{"strategy": "ln", "scenario": "x"}, yaml_layer,
                                       cfg.parse_set_options(["plugin.temperature=3"])]))
    assert config.plugins == [{"class": "avalanche:LwFPlugin",
                               "args": {"alpha": 0.5, "temperature": 3}}]
