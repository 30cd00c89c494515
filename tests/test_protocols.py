"""The field's protocols beside the LoRSU paper's: multi-dataset streams (MTIL, task-incremental;
X-TAIL, task-agnostic) and CoOp's base-to-new, from the declaration to the stored matrix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clbench.cli.main import main
from clbench.errors import ConfigError
from clbench.metrics import summarize
from clbench.scenarios.manifests import load_scenario_manifest
from clbench.scenarios.stream import base_classes, load_scenario
from clbench.store import Store
from clbench.training.evaluation import joint_labels

TINY_MTIL = """\
name: mtil-tiny
description: a shortened proxy-mtil for tests (two domains, 2 shots, 1 epoch)
protocol: multi-dataset
datasets: [proxy-hand, proxy-night]
shots: 2
training:
  epochs: 1
  batch_size: 4
  lr: 1.0e-4
"""


def _write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(matrix: list[list[float]], datasets: list[str]) -> list[dict]:
    return [{"after_session": i, "eval_set": name, "subset": "all", "accuracy": value}
            for i, row in enumerate(matrix) for name, value in zip(datasets, row)]


# --------------------------------------------------------------------------- metrics by hand


def test_transfer_avg_last_follow_zscl_on_a_hand_computed_matrix():
    # rows: zero-shot, then after sessions 1..3; columns: datasets a, b, c
    matrix = [[0.50, 0.60, 0.70],
              [0.90, 0.55, 0.65],
              [0.80, 0.95, 0.60],
              [0.70, 0.90, 0.97]]
    summary = summarize(_rows(matrix, ["a", "b", "c"]), None, [], 3, datasets=["a", "b", "c"],
                        protocol="multi-dataset")
    # Transfer_j: mean of column j over the trained steps before j (b: step 1; c: steps 1, 2)
    assert summary["mtil_transfer_by_dataset"] == [None, pytest.approx(0.55),
                                                   pytest.approx((0.65 + 0.60) / 2)]
    assert summary["mtil_transfer"] == pytest.approx((0.55 + 0.625) / 2)
    # Avg_j: mean of column j over steps 1..3
    assert summary["mtil_avg_by_dataset"] == pytest.approx([0.80, (0.55 + 0.95 + 0.90) / 3,
                                                            (0.65 + 0.60 + 0.97) / 3])
    assert summary["mtil_avg"] == pytest.approx((0.80 + 0.80 + 0.74) / 3)
    assert summary["mtil_last_by_dataset"] == pytest.approx([0.70, 0.90, 0.97])
    assert summary["mtil_last"] == pytest.approx((0.70 + 0.90 + 0.97) / 3)
    # the zero-shot row: Transfer over datasets 2..T, Avg and Last over all
    assert summary["mtil_zero_shot_transfer"] == pytest.approx(0.65)
    assert summary["mtil_zero_shot"] == pytest.approx(0.60)
    # forgetting and plasticity read the same matrix: A[j][j] against A[T][j] and A[0][j]
    assert summary["forgetting"] == pytest.approx(((0.90 - 0.70) + (0.95 - 0.90)) / 2)
    assert summary["plasticity"] == pytest.approx(((0.90 - 0.50) + (0.95 - 0.60)
                                                   + (0.97 - 0.70)) / 3)
    assert summary["matrix"] == {"datasets": ["a", "b", "c"], "rows": matrix}
    # no target: the target/control metrics have no meaning here
    assert summary["balanced"] is None and summary["target_gain"] is None


def test_base_new_and_harmonic_mean_by_hand():
    rows = [{"after_session": 0, "eval_set": "d:base", "subset": "all", "accuracy": 0.40},
            {"after_session": 0, "eval_set": "d:new", "subset": "all", "accuracy": 0.50},
            {"after_session": 1, "eval_set": "d:base", "subset": "all", "accuracy": 0.80},
            {"after_session": 1, "eval_set": "d:new", "subset": "all", "accuracy": 0.45}]
    summary = summarize(rows, "d:base", ["d:new"], 1, protocol="base-to-new")
    assert summary["base_accuracy"] == 0.80 and summary["new_accuracy"] == 0.45
    assert summary["harmonic_mean"] == pytest.approx(2 * 0.80 * 0.45 / (0.80 + 0.45))
    assert summary["target_gain"] == pytest.approx(0.40)  # base is the target
    assert summary["controls"]["d:new"]["change"] == pytest.approx(-0.05)
    # and a class-incremental run has none of them
    plain = summarize(rows[:1] + rows[2:3], "d:base", [], 1)
    assert plain["base_accuracy"] is None and plain["mtil_avg"] is None


def test_labels_in_a_joint_space_are_shifted_past_the_heads_before():
    class Heads:  # the classifier's heads: A with 3 classes, B with 2, C with 4
        heads = {name: type("Head", (), {"class_names": ["x"] * n})()
                 for name, n in (("A", 3), ("B", 2), ("C", 4))}

    labels = torch.tensor([0, 1])
    assert joint_labels(labels, ("A", "B", "C"), "A", Heads()).tolist() == [0, 1]
    assert joint_labels(labels, ("A", "B", "C"), "C", Heads()).tolist() == [5, 6]


# --------------------------------------------------------------------------- declarations


@pytest.mark.parametrize("text, message", [
    (TINY_MTIL.replace("proxy-night", "proxy-nite"), "unknown dataset 'proxy-nite'"),
    (TINY_MTIL.replace("datasets: [proxy-hand, proxy-night]", "datasets: [proxy-hand]"),
     "two or more dataset names"),
    (TINY_MTIL.replace("datasets: [proxy-hand, proxy-night]", "datasets: [proxy, proxy]"),
     "names proxy twice"),
    (TINY_MTIL + "target: proxy\n", "has no 'target'"),
    (TINY_MTIL + "head: union\n", "head must be 'task'"),
    (TINY_MTIL + "validation: {per_class: 3}\n", "has no validation split yet"),
    ("name: x\ntarget: proxy\nshots: 2\nsessions: {sizes: [2]}\ndatasets: [proxy, proxy-hand]\n",
     "'datasets' belongs to a multi-dataset scenario"),
    ("name: x\nprotocol: base-to-new\ntarget: proxy\n", "needs 'shots'"),
])
def test_a_bad_declaration_is_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_scenario_manifest(str(_write(tmp_path, text)))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_dataset_in_an_order_suggests_the_closest(tmp_path, capsys):
    path = _write(tmp_path, TINY_MTIL.replace("proxy-night", "proxy-nite"))
    code = main(["run", "--strategy", "fft", "--scenario", str(path), "--db",
                 str(tmp_path / "r.db"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "proxy-night" in err and "Traceback" not in err
    assert not (tmp_path / "r.db").exists()  # nothing stored


def test_every_protocol_scenario_is_listed(capsys):
    assert main(["list", "scenarios"]) == 0
    listed = capsys.readouterr().out
    for name in ("mtil-order1", "mtil-order2", "mtil-order1-5shot", "mtil-order1-16shot",
                 "xtail-order1-16shot", "coop-base2new-16shot-caltech101", "imagenet-shifts",
                 "dalle-20shot", "imagenet-100-20shot", "proxy-mtil", "proxy-base2new"):
        assert name in listed
    lines = {line.split()[0]: line for line in listed.splitlines() if line.strip()}
    order1 = load_scenario_manifest("mtil-order1")
    assert "11 session(s)" in lines["mtil-order1"]
    assert f"eval: {', '.join(order1.datasets)}" in lines["mtil-order1"]
    assert "4 session(s)" in lines["proxy-mtil"]
    assert "1 session(s); eval: proxy:base, proxy:new, proxy-clean" in lines["proxy-base2new"]
    xtail = load_scenario_manifest("xtail-order1-16shot")
    assert xtail.head == "task-agnostic" and xtail.shots == 16 and len(xtail.datasets) == 11
    order2 = load_scenario_manifest("mtil-order2")
    assert sorted(order2.datasets) == sorted(load_scenario_manifest("mtil-order1").datasets)


def test_show_puts_the_matrix_columns_in_training_order():
    # the store returns eval sets alphabetically; MTIL's matrix reads in training order
    from clbench.run.report import accuracy_table

    datasets = ["proxy-night", "proxy-hand", "proxy"]
    run = {"evaluations": _rows([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], sorted(datasets)),
           "summary": {"datasets": datasets, "controls": []}}
    header = accuracy_table(run).splitlines()[0].split()
    assert header == ["accuracy", "%", *datasets]
    control = {"evaluations": _rows([[0.1, 0.2]], ["dalle", "tsi"]),
               "summary": {"target": "tsi", "controls": ["dalle"]}}
    assert accuracy_table(control).splitlines()[0].split()[2:] == ["tsi", "dalle"]


# --------------------------------------------------------------------------- streams


def test_a_multi_dataset_stream_is_one_session_per_dataset(tmp_path):
    scenario = load_scenario(str(_write(tmp_path, TINY_MTIL)), seed=0)
    assert scenario.datasets == ["proxy-hand", "proxy-night"]
    assert [s.head for s in scenario.sessions] == ["proxy-hand", "proxy-night"]
    assert [e.name for e in scenario.eval_sets] == ["proxy-hand", "proxy-night"]
    for session, eval_set in zip(scenario.sessions, scenario.eval_sets):
        assert session.train.dataset == eval_set.name and eval_set.data.split == "test"
        assert len(session.sample_indices) == 2 * len(session.train.class_names)  # 2 shots
        assert session.class_names == session.train.class_names
        assert not eval_set.label_space  # task-incremental: its own classes only


def test_task_agnostic_classifies_among_every_datasets_classes(tmp_path):
    path = _write(tmp_path, TINY_MTIL + "head: task-agnostic\n")
    scenario = load_scenario(str(path), seed=0)
    assert all(e.label_space == ("proxy-hand", "proxy-night") for e in scenario.eval_sets)


def test_base_to_new_splits_the_classes_as_coop_does():
    scenario = load_scenario("proxy-base2new", seed=0)
    names = scenario.train.class_names
    cut = base_classes(len(names))
    assert cut == 10 and base_classes(11) == 6  # CoOp: the first ceil(C/2) labels
    base, new = scenario.eval_sets[0], scenario.eval_sets[1]
    assert (base.name, new.name) == ("proxy:base", "proxy:new") and base.is_target
    assert base.data.class_names == names[:cut] and new.data.class_names == names[cut:]
    assert set(base.data.targets.tolist()) == set(range(cut))
    assert set(new.data.targets.tolist()) == set(range(len(names) - cut))
    assert len(base.data) + len(new.data) == len(load_scenario("proxy-20shot", 0).target.data)
    (session,) = scenario.sessions
    assert session.class_ids == list(range(cut)) and len(session.sample_indices) == 16 * cut


# --------------------------------------------------------------------------- end to end


def test_a_multi_dataset_run_prints_and_stores_the_whole_matrix(tmp_path, capsys):
    db = tmp_path / "r.db"
    code = main(["run", "--strategy", "lora", "--scenario", str(_write(tmp_path, TINY_MTIL)),
                 "--db", str(db), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Transfer %" in out and "Avg %" in out and "Last %" in out
    assert "datasets proxy-hand -> proxy-night" in out
    store = Store(f"sqlite:///{db}", create=False)
    run = store.get_run(store.list_runs()[0]["id"])
    datasets = ["proxy-hand", "proxy-night"]
    cells = {(e["after_session"], e["eval_set"]): e["accuracy"] for e in run["evaluations"]
             if e["subset"] == "all"}
    # every dataset after every session, the zero-shot row and the one not yet trained too
    assert set(cells) == {(i, d) for i in range(3) for d in datasets}
    summary = run["summary"]
    assert summary["matrix"]["rows"] == [[cells[(i, d)] for d in datasets] for i in range(3)]
    assert summary["mtil_transfer"] == pytest.approx(cells[(1, "proxy-night")])
    assert summary["mtil_last"] == pytest.approx((cells[(2, "proxy-hand")]
                                                  + cells[(2, "proxy-night")]) / 2)
    assert [s["classes"] for s in run["sessions"]] == [
        load_scenario(str(tmp_path / "scenario.yaml"), 0).sessions[k].class_names
        for k in range(2)]


def test_task_agnostic_zero_shot_is_never_above_the_task_heads(tmp_path):
    # more competing classes can only take a correct prediction away, never add one
    agnostic = TINY_MTIL.replace("name: mtil-tiny", "name: xtail-tiny") + "head: task-agnostic\n"
    db = tmp_path / "r.db"
    for name, text in (("task.yaml", TINY_MTIL), ("agnostic.yaml", agnostic)):
        assert main(["run", "--strategy", "zeroshot", "--scenario", str(_write(tmp_path, text, name)),
                     "--db", str(db), "--no-progress", "--quiet"]) == 0
    store = Store(f"sqlite:///{db}", create=False)
    zero_shot = {}
    for listed in store.list_runs():
        run = store.get_run(listed["id"])
        zero_shot[run["scenario"]] = {e["eval_set"]: e["accuracy"] for e in run["evaluations"]
                                      if e["after_session"] == 0 and e["subset"] == "all"}
    task, union = zero_shot["mtil-tiny"], zero_shot["xtail-tiny"]
    assert set(task) == set(union) == {"proxy-hand", "proxy-night"}
    assert all(union[d] <= task[d] for d in task)
    assert any(union[d] < task[d] for d in task)


def test_a_base_to_new_run_reports_base_new_and_hm(tmp_path, capsys):
    path = _write(tmp_path, "include: proxy-base2new\nname: b2n-tiny\nshots: 2\n"
                            "training: {epochs: 1, batch_size: 4}\neval_sets: []\n")
    code = main(["run", "--strategy", "ln", "--scenario", str(path), "--db",
                 str(tmp_path / "r.db"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "harmonic mean of base and new (HM)" in out
    store = Store(f"sqlite:///{tmp_path / 'r.db'}", create=False)
    summary = store.get_run(store.list_runs()[0]["id"])["summary"]
    base, new = summary["base_accuracy"], summary["new_accuracy"]
    assert summary["harmonic_mean"] == pytest.approx(2 * base * new / (base + new))
    assert summary["target"] == "proxy:base" and list(summary["controls"]) == ["proxy:new"]


@pytest.mark.slow
def test_proxy_mtil_runs_in_full(tmp_path, capsys):
    code = main(["run", "--strategy", "lorsu", "--scenario", "proxy-mtil", "--db",
                 str(tmp_path / "r.db"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "Transfer %" in out
    for name in ("proxy", "proxy-hand", "proxy-glyphs", "proxy-night"):
        assert f"\n  {name} " in out


@pytest.mark.parametrize("text", [TINY_MTIL, "include: proxy-base2new\nname: b2n-tiny\nshots: 2\n"
                                              "training: {epochs: 1, batch_size: 4}\n"])
def test_a_protocol_run_exports_and_imports(tmp_path, capsys, monkeypatch, text):
    # a bundle is checked against its scenario's sessions and eval sets: one per dataset, or
    # the target's base and new halves, not a few-shot target's
    name = text.split("name: ")[1].split()[0]
    (tmp_path / "m" / "scenarios").mkdir(parents=True)
    _write(tmp_path / "m" / "scenarios", text, f"{name}.yaml")
    # the environment, not --manifests: that one sets module state that would outlive the test
    monkeypatch.setenv("CLBENCH_MANIFESTS", str(tmp_path / "m"))
    db, bundle = tmp_path / "a.db", tmp_path / "bundle.json"
    assert main(["run", "--strategy", "ln", "--scenario", name, "--db", str(db),
                 "--no-progress", "--quiet"]) == 0
    run_id = Store(f"sqlite:///{db}", create=False).list_runs()[0]["id"]
    assert main(["export", run_id, "-o", str(bundle), "--db", str(db)]) == 0
    assert main(["import", str(bundle), "--db", str(tmp_path / "b.db")]) == 0
    assert f"imported 1 run(s): {run_id[:12]}" in capsys.readouterr().out
    source = Store(f"sqlite:///{db}", create=False).get_run(run_id)
    copy = Store(f"sqlite:///{tmp_path / 'b.db'}", create=False).get_run(run_id)
    copy["config"].pop("imported")
    assert copy == source
