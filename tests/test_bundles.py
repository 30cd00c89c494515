"""Result bundles and reproduction: export -> import into a fresh store gives identical rows and
predictions; every validation rule refuses a bad bundle with one line and changes nothing;
re-running a stored proxy run on this machine gives exactly the stored numbers."""

from __future__ import annotations

import copy
import json
import math
import re
import sys
from pathlib import Path

import pytest
from conftest import TINY_SCENARIO
from plugin_packages import PLUGIN_SOURCE, fake_distribution

from clbench.cli.main import main
from clbench.run import bundles
from clbench.scenarios.manifests import use_manifest_dirs
from clbench.store import Store


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> Path:
    """The shortened proxy scenario as a named user scenario (a bundle names its scenario)."""
    folder = tmp_path_factory.mktemp("manifests")
    (folder / "scenarios").mkdir()
    (folder / "scenarios" / "proxy-tiny.yaml").write_text(TINY_SCENARIO)
    return folder


@pytest.fixture(autouse=True)
def user_scenarios(manifests):
    use_manifest_dirs([str(manifests)])
    yield
    use_manifest_dirs(None)


@pytest.fixture(scope="module")
def recorded(manifests, tmp_path_factory) -> tuple[Path, str, Path]:
    """(store, run id, its exported bundle): one fft run on the shortened proxy stream."""
    use_manifest_dirs([str(manifests)])
    root = tmp_path_factory.mktemp("bundles")
    db = root / "a.db"
    assert main(["run", "--strategy", "fft", "--scenario", "proxy-tiny", "--db", str(db),
                 "--no-progress", "--quiet"]) == 0
    run_id = Store(f"sqlite:///{db}", create=False).list_runs()[0]["id"]
    bundle = root / "bundle.json"
    assert main(["export", run_id, "-o", str(bundle), "--db", str(db), "--name", "Ann Author",
                 "--paper", "https://arxiv.org/abs/2109.01903"]) == 0
    use_manifest_dirs(None)
    return db, run_id, bundle


def test_export_then_import_gives_identical_rows_and_predictions(recorded, tmp_path, capsys):
    db, run_id, bundle = recorded
    fresh = tmp_path / "b.db"
    assert main(["import", str(bundle), "--db", str(fresh)]) == 0
    assert f"imported 1 run(s): {run_id[:12]}" in capsys.readouterr().out
    source, copy = Store(f"sqlite:///{db}", create=False), Store(f"sqlite:///{fresh}")
    a, b = source.get_run(run_id), copy.get_run(run_id)
    imported = b["config"].pop("imported")
    assert imported["submitter"] == {"name": "Ann Author",
                                     "paper": "https://arxiv.org/abs/2109.01903"}
    assert a == b  # every field, session and evaluation
    assert source.predictions_of(run_id) == copy.predictions_of(run_id)
    predictions = copy.predictions_of(run_id)
    assert len(predictions) == 4 * 2  # zero-shot + 3 sessions, target and one control
    assert all(len(p["predicted"]) == len(p["labels"]) > 0 for p in predictions)
    # the leaderboard shows who submitted it
    from clbench.leaderboard_app.data import load, open_store

    board = open_store(str(fresh))
    assert load(board).runs["submitter_name"].tolist() == ["Ann Author"]
    board.close()
    # a second import is a duplicate: reported, skipped, nothing written
    assert main(["import", str(bundle), "--db", str(fresh)]) == 0
    assert "skipped" in capsys.readouterr().out and len(copy.list_runs()) == 1


def _tampered(bundle_path: Path, tmp_path: Path, change, redigest: bool = True) -> Path:
    bundle = json.loads(bundle_path.read_text())
    change(bundle)
    if redigest:
        bundle["digest"] = bundles.digest(bundle)
    out = tmp_path / "bad.json"
    out.write_text(json.dumps(bundle))
    return out


def _all_row(bundle: dict, after: int = 1, eval_set: str = "proxy") -> dict:
    return next(e for e in bundle["runs"][0]["evaluations"] if e["after_session"] == after
                and e["eval_set"] == eval_set and e["subset"] == "all")


def _set(row: dict, key: str, value) -> None:
    row[key] = value


BAD = {
    "newer version": (lambda b: _set(b, "version", 99), "written by a newer clbench"),
    "tampered": (lambda b: _set(_all_row(b), "accuracy", 0.99), "digest does not match"),
    "NaN accuracy": (lambda b: _set(_all_row(b), "accuracy", math.nan), "is not a number in"),
    "out of range": (lambda b: _set(_all_row(b), "accuracy", 1.5), "is not a number in [0, 1]"),
    "disagrees with predictions": (lambda b: _set(_all_row(b), "accuracy", 0.01),
                                   "but the stored predictions give"),
    "unknown eval set": (lambda b: _set(_all_row(b), "eval_set", "imagenet"),
                         "unknown eval set(s) imagenet"),
    "missing session": (lambda b: b["runs"][0]["sessions"].pop(),
                        "2 session(s) stored; scenario proxy-tiny declares 3"),
    "missing field": (lambda b: b["runs"][0].pop("config_hash"), "missing field(s) config_hash"),
    "no predictions": (lambda b: b["runs"][0]["predictions"].pop(0), "no predictions for"),
    "failed run": (lambda b: _set(b["runs"][0], "status", "failed"), "only completed runs"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_bundle_is_one_line_and_changes_nothing(recorded, tmp_path, capsys, case):
    _, _, bundle = recorded
    change, message = BAD[case]
    bad = _tampered(bundle, tmp_path, change, redigest=case != "tampered")
    store = tmp_path / "target.db"
    Store(f"sqlite:///{store}").close()
    assert main(["import", str(bad), "--db", str(store)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert "Traceback" not in err
    assert Store(f"sqlite:///{store}", create=False).list_runs() == []


def test_malformed_json_and_other_files(tmp_path, capsys):
    (tmp_path / "broken.json").write_text('{"format": "clbench-results-bundle", ')
    (tmp_path / "other.json").write_text('{"hello": 1}')
    for name, message in (("broken.json", "is not JSON"), ("other.json", "is not a clbench "
                          "results bundle"), ("absent.json", "no bundle at")):
        assert main(["import", str(tmp_path / name), "--db", str(tmp_path / "s.db")]) == 2
        assert message in capsys.readouterr().err


def test_a_run_without_predictions_is_not_exported(tmp_path, capsys):
    from leaderboard_synthetic import Spec, add_run

    db = tmp_path / "old.db"
    with Store(f"sqlite:///{db}") as store:  # written the way runs were before predictions
        run_id = add_run(store, Spec("fft", gain=0.3, drop=0.1), 0)
    assert main(["export", run_id, "-o", str(tmp_path / "x.json"), "--db", str(db)]) == 2
    assert "has no stored predictions" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_reproduce_on_the_same_machine_gives_zero_differences(recorded, tmp_path, capsys):
    db, run_id, bundle = recorded
    assert main(["reproduce", run_id, "--db", str(db), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "largest difference 0.0000 pts: within the tolerance" in out
    assert "recorded, not a verification" in out  # same host: not independent
    store = Store(f"sqlite:///{db}", create=False)
    (record,) = store.verifications_of(run_id)
    assert record["max_difference"] == 0.0 and record["within_tolerance"]
    assert not record["independent"] and run_id not in store.verified_run_ids()
    assert main(["show", run_id, "--db", str(db)]) == 0
    assert "reproduced (same host): largest difference 0.0000 pts" in capsys.readouterr().out
    again = store.get_run(record["reproduction_id"])
    assert again["summary"]["purpose"] == "reproduction"
    assert [s["sample_ids"] for s in again["sessions"]] == \
        [s["sample_ids"] for s in store.get_run(run_id)["sessions"]]
    # a bundle from elsewhere, imported and reproduced here, counts as verified
    fresh = tmp_path / "elsewhere.db"
    assert main(["reproduce", str(bundle), "--db", str(fresh), "--no-progress"]) == 0
    assert "verified" in capsys.readouterr().out
    assert Store(f"sqlite:///{fresh}", create=False).verified_run_ids() == {run_id}


PLUGIN_RECORD = {"source": "third-party", "distribution": "clbench-l2sp", "version": "0.1.0",
                 "entry_point": "plug_l2sp.plugin:L2SP", "editable": False, "git_sha": None,
                 "git_dirty": None, "sources_sha256": "a" * 64}
STORED = {"strategy": "l2sp", "git_sha": "1" * 40, "git_dirty": False,
          "packages": {"clbench": "0.1.0", "torch": "2.4.0"},
          "config": {"strategy_source": PLUGIN_RECORD}}


def changed(**edits) -> dict:
    """STORED with `edits` (provenance keys, or `source` for the strategy's record)."""
    run = copy.deepcopy(STORED)
    run["config"]["strategy_source"].update(edits.pop("source", {}))
    run.update(edits)
    return run


def test_code_changes_say_what_code_differs_between_a_run_and_its_reproduction():
    from clbench.run.reproduce import code_changes

    assert code_changes(STORED, changed()) == []
    assert code_changes(STORED, changed(source={"sources_sha256": "b" * 64})) == [
        "the code of strategy 'l2sp' (clbench-l2sp 0.1.0) differs: source files' sha256 "
        "aaaaaaaaaaaa then, bbbbbbbbbbbb now"]
    assert code_changes(STORED, changed(source={"version": "0.2.0"})) == [
        "the code of strategy 'l2sp' (clbench-l2sp 0.1.0) differs: version 0.1.0 then, "
        "0.2.0 now"]
    assert code_changes(STORED, changed(git_sha="2" * 40)) == [
        "clbench's code differs: commit 111111111111 then, 222222222222 now"]
    assert code_changes(STORED, changed(git_dirty=True)) == [
        "clbench's code may differ: commit 111111111111 both times, clean then, uncommitted "
        "changes now"]
    assert code_changes(STORED, changed(packages={"clbench": "0.1.0", "torch": "2.5.0"})) == [
        "package versions differ: torch 2.4.0 then, 2.5.0 now"]
    older = changed()
    del older["config"]["strategy_source"]["sources_sha256"]  # recorded before the hash
    assert code_changes(older, changed(source={"sources_sha256": "b" * 64})) == []
    built_in = {**STORED, "strategy": "fft", "config": {"strategy_source": {"source": "built-in"}}}
    assert code_changes(built_in, copy.deepcopy(built_in)) == []


@pytest.mark.multirun
def test_reproduce_says_when_a_plugins_code_differs_now(tmp_path, monkeypatch, capsys):
    """Issue 27: the plugin's code changed after the run, its version did not and it is no git
    checkout; `clbench reproduce` says that its source files differ."""
    root = fake_distribution(tmp_path / "site", "clbench-mine", "0.1.0",
                             {"mine": "plug_reproduced.plugin:Mine"}, {})
    (root / "plug_reproduced").mkdir()
    (root / "plug_reproduced" / "__init__.py").write_text("")
    (root / "plug_reproduced" / "plugin.py").write_text(PLUGIN_SOURCE.format(cls="Mine"))
    monkeypatch.syspath_prepend(str(root))
    db = tmp_path / "mine.db"
    try:
        assert main(["run", "--strategy", "mine", "--scenario", "proxy-tiny", "--db", str(db),
                     "--no-progress", "--quiet"]) == 0
        with (root / "plug_reproduced" / "plugin.py").open("a") as plugin:
            plugin.write("# edited after the run\n")
        run_id = Store(f"sqlite:///{db}", create=False).list_runs()[0]["id"]
        assert main(["reproduce", run_id, "--db", str(db), "--no-progress"]) == 0
    finally:
        for name in [m for m in sys.modules if m.startswith("plug_reproduced")]:
            del sys.modules[name]
    out = capsys.readouterr().out
    said = re.search(r"\n  note: the code of strategy 'mine' \(clbench-mine 0\.1\.0\) differs: "
                     r"source files' sha256 ([0-9a-f]{12}) then, ([0-9a-f]{12}) now\n", out)
    assert said, out
    store = Store(f"sqlite:///{db}", create=False)
    original = store.get_run(run_id)
    (record,) = store.verifications_of(run_id)
    again = store.get_run(record["reproduction_id"])
    assert said.groups() == (original["config"]["strategy_source"]["sources_sha256"][:12],
                             again["config"]["strategy_source"]["sources_sha256"][:12])
    assert said.group(1) != said.group(2)
    assert "largest difference 0.0000 pts: within the tolerance" in out
