"""The zero-shot evaluation is computed once and reused by later runs of the same model on the
same data (recorded in each run), gives exactly the rows a run computing it would store, is
rebuilt when its cache entry is corrupt, and an unwritable cache folder only warns."""

from __future__ import annotations

from pathlib import Path

import pytest

from clbench.store import Store


def run_on(scenario: Path, url: str, strategy: str, params: dict | None = None) -> dict:
    from clbench.run.runner import run
    from clbench.run.settings import resolve_for_scenario
    from clbench.scenarios.manifests import load_scenario_manifest

    config = resolve_for_scenario({"strategy": {"name": strategy, **(params or {})},
                                   "scenario": str(scenario)},
                                  load_scenario_manifest(str(scenario)))
    with Store(url) as store:
        result = run(config, store, progress=False, quiet=True)
        stored = store.get_run(result.run_id)
        stored["predictions"] = store.predictions_of(result.run_id)
    return stored


def trained(run: dict) -> list:
    """What each session trained on and the loss it reached (its timing aside)."""
    return [(s["sample_ids"], s["final_loss"], s["trainable_params"]) for s in run["sessions"]]


def zero_shot_rows(run: dict) -> tuple[list, list]:
    return ([e for e in run["evaluations"] if e["after_session"] == 0],
            [p for p in run["predictions"] if p["after_session"] == 0])


def test_a_second_run_reuses_the_zero_shot_evaluation_with_the_same_rows(tiny_scenario,
                                                                         tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = run_on(tiny_scenario, url, "ln")
    assert "reused" not in first["summary"]
    cached = sorted((tmp_path / "clbench-cache" / "zero-shot").glob("*.pt"))
    assert len(cached) == 2  # the target and the control
    second = run_on(tiny_scenario, url, "fft")
    reused = second["summary"]["reused"]["zero_shot_predictions"]
    assert sorted(reused) == ["proxy", "proxy-clean"]
    assert sorted(reused.values()) == sorted(p.stem for p in cached)
    monkeypatch.setenv("CLBENCH_CACHE_DIR", "off")
    computed = run_on(tiny_scenario, url, "fft")
    assert "reused" not in computed["summary"]
    assert zero_shot_rows(second) == zero_shot_rows(computed) == zero_shot_rows(first)
    assert second["evaluations"] == computed["evaluations"]  # and every later session too


def flip_a_byte(path) -> None:
    """Corrupt a cache entry as a bad disk would: one byte in its middle."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_a_corrupt_cache_entry_is_detected_and_rebuilt(tiny_scenario, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = run_on(tiny_scenario, url, "ln")
    entry = sorted((tmp_path / "clbench-cache" / "zero-shot").glob("*.pt"))[0]
    flip_a_byte(entry)
    capsys.readouterr()
    second = run_on(tiny_scenario, url, "ln")
    assert f"the cached zero-shot evaluation {entry} is corrupt: computed again" in \
        capsys.readouterr().err
    assert len(second["summary"]["reused"]["zero_shot_predictions"]) == 1  # the intact one
    assert zero_shot_rows(second) == zero_shot_rows(first)
    assert entry.exists()  # rebuilt
    third = run_on(tiny_scenario, url, "ln")
    assert len(third["summary"]["reused"]["zero_shot_predictions"]) == 2


@pytest.mark.parametrize("where", ["under-a-file", "dev-full"])
@pytest.mark.slow
def test_an_unwritable_or_full_cache_folder_warns_and_the_run_completes(tiny_scenario, tmp_path,
                                                                        monkeypatch, capsys,
                                                                        where):
    import errno
    import os

    import torch

    if where == "under-a-file":
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        monkeypatch.setenv("CLBENCH_CACHE_DIR", str(blocker / "cache"))
    else:  # a full disk: every write of the entry fails with ENOSPC
        def full(obj, handle, *args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(torch, "save", full)
    run = run_on(tiny_scenario, f"sqlite:///{tmp_path / 'r.db'}", "ln")
    assert run["status"] == "completed" and "reused" not in run["summary"]
    err = capsys.readouterr().err
    assert "cannot write the cache under" in err and "goes on uncached" in err
    assert err.count("cannot write the cache") == 1  # said once, not per eval set or kind
    if where == "dev-full":
        assert "No space left on device" in err
        assert not list((tmp_path / "clbench-cache" / "zero-shot").glob("*"))  # no torn file


@pytest.mark.parametrize("strategy", ["zeroshot", pytest.param("llu", marks=pytest.mark.slow)])
def test_a_frozen_image_encoder_is_evaluated_from_its_first_features(tiny_scenario, tmp_path,
                                                                     monkeypatch, strategy):
    """Zero-shot and LLU leave the image tower unchanged: sessions 1-3 are evaluated from the
    features of session 0, recorded, with exactly the rows of encoding every image again."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reused = run_on(tiny_scenario, url, strategy)
    assert reused["summary"]["reused"]["image_features"] == {"proxy": [1, 2, 3],
                                                            "proxy-clean": [1, 2, 3]}
    from clbench.models.classifier import CLIPClassifier

    draws = iter(range(10**6))  # a tower fingerprint that never matches: every image encoded
    monkeypatch.setattr(CLIPClassifier, "visual_sha256", lambda self: f"fresh-{next(draws)}")
    monkeypatch.setenv("CLBENCH_CACHE_DIR", "off")
    encoded = run_on(tiny_scenario, url, strategy)
    assert "reused" not in encoded["summary"]
    assert reused["evaluations"] == encoded["evaluations"]
    assert reused["predictions"] == encoded["predictions"]
    assert trained(reused) == trained(encoded)  # and training drew the same numbers


@pytest.mark.slow
def test_an_encoder_that_trains_is_encoded_again_after_every_session(tiny_scenario, tmp_path):
    run = run_on(tiny_scenario, f"sqlite:///{tmp_path / 'r.db'}", "lora")
    assert "image_features" not in run["summary"].get("reused", {})


@pytest.mark.multirun
def test_a_zero_shot_entry_brings_its_features_to_the_next_run(tiny_scenario, tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    run_on(tiny_scenario, url, "fft")  # computes and caches the zero-shot evaluation
    second = run_on(tiny_scenario, url, "zeroshot")
    reused = second["summary"]["reused"]
    assert sorted(reused["zero_shot_predictions"]) == ["proxy", "proxy-clean"]
    assert reused["image_features"] == {"proxy": [1, 2, 3], "proxy-clean": [1, 2, 3]}


@pytest.mark.multirun
def test_text_heads_are_read_by_later_runs_with_the_same_rows(tiny_scenario, tmp_path,
                                                             monkeypatch):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = run_on(tiny_scenario, url, "lora")
    assert "text_heads" not in first["summary"].get("reused", {})
    heads = sorted((tmp_path / "clbench-cache" / "text").glob("*.pt"))
    assert len(heads) == 2  # one head per eval set (the target's serves training too)
    monkeypatch.setenv("CLBENCH_CACHE_DIR", str(tmp_path / "other-cache"))  # no zero-shot entry
    (tmp_path / "other-cache").mkdir()
    import shutil

    shutil.copytree(tmp_path / "clbench-cache" / "text", tmp_path / "other-cache" / "text")
    second = run_on(tiny_scenario, url, "lora")
    assert second["summary"]["reused"] == {"text_heads": 2}
    assert second["evaluations"] == first["evaluations"]
    assert trained(second) == trained(first)


@pytest.mark.parametrize("strategy,towers", [("lorsu", "vision"), ("lorsu", "both"),
                                             ("fft", "both")])
@pytest.mark.multirun
def test_the_text_heads_a_run_keeps_give_the_rows_of_never_reusing_one(
        tiny_scenario, tmp_path, monkeypatch, strategy, towers):
    """Every text head a run takes from its store (and the text side's fingerprint it keeps
    across a session's start) must be the current text side's: the rows equal those of a run
    whose fingerprints never match. With `towers=both` the text side changes (LoRSU merges
    adapters into it after each session, fft updates it) and the store is bypassed while it
    can train; with `towers=vision` the store serves every session."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    monkeypatch.setenv("CLBENCH_CACHE_DIR", "off")  # heads kept in memory for the run only
    kept = run_on(tiny_scenario, url, strategy, {"towers": towers})
    from clbench.models.classifier import CLIPClassifier

    draws = iter(range(10**6))
    monkeypatch.setattr(CLIPClassifier, "text_sha256", lambda self: f"fresh-{next(draws)}")
    fresh = run_on(tiny_scenario, url, strategy, {"towers": towers})
    if towers == "vision":
        assert next(draws) > 0  # the store was asked
    assert kept["evaluations"] == fresh["evaluations"]
    assert kept["predictions"] == fresh["predictions"]
    assert trained(kept) == trained(fresh)


@pytest.mark.slow
def test_a_corrupt_text_head_is_detected_and_computed_again(tiny_scenario, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = run_on(tiny_scenario, url, "lora")
    for entry in (tmp_path / "clbench-cache" / "zero-shot").glob("*.pt"):
        entry.unlink()  # so that the second run computes its heads
    head = sorted((tmp_path / "clbench-cache" / "text").glob("*.pt"))[0]
    flip_a_byte(head)
    capsys.readouterr()
    second = run_on(tiny_scenario, url, "lora")
    assert f"the cached text head {head} is corrupt: computed again" in capsys.readouterr().err
    assert second["evaluations"] == first["evaluations"]
    assert head.exists()  # written again
