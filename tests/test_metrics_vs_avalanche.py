"""Forgetting and BWT computed by clbench agree with Avalanche's own metrics on the same run."""

from __future__ import annotations

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics, bwt_metrics, forgetting_metrics
from avalanche.training.plugins import EvaluationPlugin

from clbench.config.run_config import ModelConfig, TrainingConfig
from clbench.metrics import accuracy_matrix, forgetting, summarize
from clbench.models import load_model
from clbench.models.classifier import CLIPClassifier
from clbench.scenarios.stream import load_scenario
from clbench.strategies import registry
from clbench.training.evaluation import SessionEvaluation
from clbench.training.loop import SessionTrainer


def test_matrix_maths():
    evals = [
        {"after_session": 1, "eval_set": "t", "subset": "session:1", "accuracy": 0.8},
        {"after_session": 2, "eval_set": "t", "subset": "session:1", "accuracy": 0.5},
        {"after_session": 2, "eval_set": "t", "subset": "session:2", "accuracy": 0.9},
        {"after_session": 0, "eval_set": "t", "subset": "all", "accuracy": 0.1},
        {"after_session": 2, "eval_set": "t", "subset": "all", "accuracy": 0.6},
        {"after_session": 0, "eval_set": "c", "subset": "all", "accuracy": 0.9},
        {"after_session": 2, "eval_set": "c", "subset": "all", "accuracy": 0.7},
    ]
    matrix = accuracy_matrix(evals, "t", 2)
    assert matrix == [[0.8, None], [0.5, 0.9]]
    assert forgetting(matrix) == pytest.approx(0.3)
    s = summarize(evals, "t", ["c"], 2)
    assert s["bwt"] == pytest.approx(-0.3)
    assert s["average_accuracy"] == pytest.approx(0.7)
    assert s["target_gain"] == pytest.approx(0.5)
    assert s["controls"]["c"]["change"] == pytest.approx(-0.2)
    assert s["balanced"] == pytest.approx(0.5 - 0.2)


@pytest.mark.slow
def test_forgetting_and_bwt_match_avalanche(tiny_scenario):
    torch.manual_seed(0)
    scenario = load_scenario(str(tiny_scenario), seed=0)
    bundle = load_model(ModelConfig())
    model = CLIPClassifier(bundle.clip, bundle.tokenizer)
    for e in scenario.eval_sets:
        model.register_head(e.name, e.data.class_names, e.data.templates)
    model.active_head = scenario.target.name
    # cross-entropy over the whole head moves every session's accuracy, so forgetting != 0
    training = TrainingConfig(epochs=3, batch_size=4, lr=1e-3, loss="ce", eval_batch_size=64)
    ours = SessionEvaluation(scenario, bundle.transform, 64, torch.device("cpu"))
    evaluator = EvaluationPlugin(
        ours, accuracy_metrics(experience=True), forgetting_metrics(experience=True, stream=True),
        bwt_metrics(experience=True, stream=True), loggers=[])
    loop = SessionTrainer(model=model, training=training, device=torch.device("cpu"), seed=0,
                          plugins=[registry.create("fft")], evaluator=evaluator)
    bench = scenario.to_avalanche(bundle.transform)
    for exp in bench.train_stream:
        loop.train(exp, eval_streams=[])
        loop.eval(bench.test_stream)
    avalanche = loop.evaluator.get_last_metrics()

    rows = [r.as_row() for r in ours.results]
    summary = summarize(rows, "proxy", ["proxy-clean"], 3)
    matrix = accuracy_matrix(rows, "proxy", 3)
    # every session's classes are evaluated after every session; the cells j <= i (the matrix
    # Avalanche knows) are what the forgetting and BWT below read
    assert all(cell is not None for row in matrix for cell in row)
    for j in range(3):  # the final row of the matrix is Avalanche's per-experience accuracy
        value = next(v for k, v in avalanche.items()  # task label present or not in the name
                     if k.startswith("Top1_Acc_Exp/eval_phase/test_stream") and
                     k.endswith(f"Exp{j:03d}"))
        assert matrix[2][j] == pytest.approx(value, abs=1e-6)  # ours is a float32 mean
    assert summary["forgetting"] != 0.0  # training moved something, so the check is not vacuous
    assert summary["forgetting"] == pytest.approx(
        avalanche["StreamForgetting/eval_phase/test_stream"], abs=1e-6)  # ours is a float32 mean
    assert summary["bwt"] == pytest.approx(avalanche["StreamBWT/eval_phase/test_stream"],
                                           abs=1e-6)  # ours is a float32 mean
