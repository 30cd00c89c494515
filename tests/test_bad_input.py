"""Bad input: one-line errors, non-zero exit, no traceback, nothing half-written in the store."""

from __future__ import annotations

import pytest
import torch

from clbench.cli.main import main
from clbench.models.classifier import CLIPClassifier
from clbench.store import Store


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


def stored_runs(db_path):
    if not db_path.exists():
        return []
    return Store(f"sqlite:///{db_path}", create=False).list_runs()


@pytest.mark.parametrize("args, message", [
    (["--strategy", "lorsuu", "--scenario", "proxy-20shot"], "unknown strategy 'lorsuu'"),
    (["--strategy", "fft", "--scenario", "proxy-20shots"], "did you mean: proxy-20shot"),
    (["--strategy", "fft", "--scenario", "proxy-20shot", "--model", "ViT-B-61"],
     "did you mean: ViT-B-16"),
    (["--strategy", "fft", "--scenario", "proxy-20shot", "--model", "ViT-B-16", "--pretrained",
      "opneai"], "did you mean: openai"),
    (["--strategy", "fft", "--scenario", "proxy-20shot", "--set", "training.lr=abc"],
     "training.lr: expected a number"),
    (["--strategy", "fft", "--scenario", "proxy-20shot", "--set", "strategy.towers=text"],
     "strategy.towers"),
    (["--strategy", "fft", "--scenario", "tsi-20shot", "--data-root", "/nonexistent-data"],
     "expected /nonexistent-data/tsi/train"),
    (["--strategy", "lora", "--scenario", "proxy-20shot", "--set", "strategy.rank=4096"],
     "strategy.rank: 4096 is outside the allowed range [1, "),
    (["--strategy", "lorsu", "--scenario", "proxy-20shot", "--set", "strategy.top_k_heads=9"],
     "strategy.top_k_heads: 9 is outside the allowed range [1, 4]"),
    (["--strategy", "spu", "--scenario", "proxy-20shot", "--set", "strategy.sparsity=1.5"],
     "strategy.sparsity: 1.5 is outside the allowed range (> 0 and ≤ 1)"),
    (["--strategy", "gated-lora", "--scenario", "proxy-20shot", "--set", "strategy.tau=0.9"],
     "no gate able to open; allowed range (0, 0.15]"),
])
def test_user_errors(args, message, db_path, capsys):
    code, err = run_cli(["run", *args, "--db", str(db_path)], capsys)
    assert code == 2
    assert message in err
    assert stored_runs(db_path) == []


def test_missing_dataset_says_how_to_get_it(db_path, capsys):
    _, err = run_cli(["run", "--strategy", "zeroshot", "--scenario", "tsi-20shot", "--data-root",
                      "/nonexistent-data", "--db", str(db_path)], capsys)
    assert "hint:" in err and "toyotasmarthome" in err and "--data-root" in err


def test_malformed_yaml_config(tmp_path, db_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("strategy: fft\nscenario: [proxy-20shot\n")
    code, err = run_cli(["run", "--config", str(config), "--db", str(db_path)], capsys)
    assert code == 2 and "malformed YAML" in err and "line" in err


def test_unwritable_database(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = run_cli(["run", "--strategy", "fft", "--scenario", "proxy-20shot", "--db",
                         str(blocker / "results.db")], capsys)
    assert code == 2 and "error:" in err and str(blocker) in err


@pytest.mark.parametrize("exception, exit_code, stored_error", [
    (None, 3, "loss became nan"),
    (KeyboardInterrupt, 130, "KeyboardInterrupt"),
])
def test_failures_during_training_mark_the_run_failed(exception, exit_code, stored_error,
                                                      tiny_scenario, db_path, capsys,
                                                      monkeypatch):
    def broken_loss(self, *args, **kwargs):
        if exception is not None:
            raise exception()
        return torch.tensor(float("nan"), requires_grad=True)

    monkeypatch.setattr(CLIPClassifier, "flyp_loss", broken_loss)
    code, err = run_cli(["run", "--strategy", "fft", "--scenario", str(tiny_scenario), "--db",
                         str(db_path), "--quiet"], capsys)
    assert code == exit_code
    runs = stored_runs(db_path)
    assert len(runs) == 1 and runs[0]["status"] == "failed"
    assert stored_error in runs[0]["error"]
    run = Store(f"sqlite:///{db_path}", create=False).get_run(runs[0]["id"])
    assert run["finished_at"] is not None and run["sessions"] == []
    # the zero-shot evaluation before training was stored before the failure
    assert {e["after_session"] for e in run["evaluations"]} == {0}
