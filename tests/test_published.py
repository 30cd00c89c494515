"""Published numbers (`clbench.published`): the loader on a good file and on each way a file can
be wrong (one line naming the file and the entry), the built-in file's figures, and the
`clbench published` and `clbench app --published` command lines."""

from __future__ import annotations

import argparse
import json

import pytest

from clbench.cli.app import streamlit_command
from clbench.cli.main import main
from clbench.errors import ConfigError
from clbench.published import Published, built_in_path, load, load_file

GOOD = """\
published:
  - method: ZSCL
    paper: Zheng et al., ICCV 2023
    table: Table 1
    backbone: ViT-B-16 openai
    scenario: mtil-order1
    metrics: {mtil_transfer: 68.1, mtil_avg: 75.4, mtil_last: 83.6}
    source: https://arxiv.org/abs/2303.06628
  - method: LoRSU
    paper: Panos et al.
    table: Table 4
    backbone: ViT-L-14@openai
    scenario: tsi-20shot
    metrics: {final_accuracy: 51.6, "control:imagenet:final": 76.1, target_gain: -2}
    source: the LoRSU paper
    note: nothing left out
    reference: false
"""
ENTRY = ("  - {method: M, paper: P, table: T, backbone: ViT-B-16@openai, scenario: s, "
         "source: S, metrics: {mtil_avg: 70}}\n")


def write(tmp_path, text: str, name: str = "mine.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def test_a_good_file_loads(tmp_path):
    zscl, lorsu = load_file(write(tmp_path, GOOD))
    assert zscl == Published(method="ZSCL", paper="Zheng et al., ICCV 2023", table="Table 1",
                             backbone="ViT-B-16@openai", scenario="mtil-order1",
                             metrics={"mtil_transfer": 68.1, "mtil_avg": 75.4,
                                      "mtil_last": 83.6},
                             source="https://arxiv.org/abs/2303.06628")
    assert zscl.file.endswith("mine.yaml") and zscl.cited == "Zheng et al., ICCV 2023, Table 1"
    assert lorsu.metrics == {"final_accuracy": 51.6, "control:imagenet:final": 76.1,
                             "target_gain": -2.0}
    assert lorsu.note == "nothing left out" and not lorsu.reference
    # load(): the built-in entries first, then the user's
    both = load([write(tmp_path, GOOD)])
    assert both[-2:] == [zscl, lorsu] and len(both) == len(load_file(built_in_path())) + 2


def test_the_built_in_file_holds_the_papers_figures():
    entries = load_file(built_in_path())
    mtil = [(e.method, e.metrics["mtil_transfer"], e.metrics["mtil_avg"], e.metrics["mtil_last"])
            for e in entries if e.scenario == "mtil-order1"]
    assert mtil == [("zero-shot", 69.4, 65.3, 65.3), ("ZSCL", 68.1, 75.4, 83.6),
                    ("MoE-Adapters", 68.9, 76.7, 85.0), ("DIKI", 68.7, 76.3, 85.1)]
    assert entries[0].reference and entries[0].backbone == "ViT-B-16@openai"
    # the LoRSU paper's Table 4, TSI 20 shots, OpenAI ViT-L/14: the five methods and Zr-Shot
    tsi = {e.method: e.metrics for e in entries if e.scenario == "tsi-20shot"}
    assert {e.backbone for e in entries if e.scenario == "tsi-20shot"} == {"ViT-L-14@openai"}
    assert {m: v["final_accuracy"] for m, v in tsi.items()} == {
        "zero-shot": 13.2, "F-FT": 40.8, "LN": 45.3, "LoRA": 41.4, "SPU": 48.8, "LoRSU": 51.6}
    assert tsi["LoRSU"] == {"final_accuracy": 51.6, "control:imagenet:final": 76.1,
                            "control:dalle:final": 91.1}
    assert all(e.note for e in entries if e.scenario == "tsi-20shot")


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("mtil_avg: 75.4", "mtil_avgg: 75.4"),
     "entry 1 (ZSCL): unknown metric 'mtil_avgg' (did you mean: mtil_avg"),
    (GOOD.replace('"control:imagenet:final"', '"control:imagenet:fnal"'),
     "entry 2 (LoRSU): unknown metric 'control:imagenet:fnal' (did you mean: "
     "control:imagenet:final"),
    (GOOD.replace("    source: the LoRSU paper\n", ""), "entry 2 (LoRSU): missing field source"),
    (GOOD.replace("    table: Table 1\n    backbone: ViT-B-16 openai\n", ""),
     "entry 1 (ZSCL): missing fields table, backbone"),
    (GOOD.replace("mtil_last: 83.6", "mtil_last: high"),
     "entry 1 (ZSCL): metrics.mtil_last: expected a number, got 'high'"),
    (GOOD.replace("mtil_last: 83.6", "mtil_last: true"), "metrics.mtil_last: expected a number"),
    (GOOD.replace("mtil_last: 83.6", "mtil_last: .nan"), "is not a finite number"),
    (GOOD.replace("mtil_last: 83.6", "mtil_last: 836"), "836 is outside [0, 100] %"),
    (GOOD.replace("    note:", "    nots:"), "entry 2 (LoRSU): unknown field 'nots' (did you "
     "mean: note"),
    (GOOD.replace("reference: false", "reference: maybe"), "reference: expected true or false"),
    (GOOD.replace("table: Table 1", "table: 1"), "entry 1 (ZSCL): table: expected text, got 1"),
    (GOOD.replace("backbone: ViT-B-16 openai", "backbone: ViT B 16"), "backbone: expected "
     "ARCH@TAG"),
    (GOOD.replace("{final_accuracy", "{mtil_avg_by_dataset: 3, final_accuracy"),
     "metrics.mtil_avg_by_dataset is a list per session"),
    (GOOD.replace("metrics: {mtil_transfer: 68.1, mtil_avg: 75.4, mtil_last: 83.6}",
                  "metrics: 68.1"), "entry 1 (ZSCL): metrics: expected a mapping"),
    (GOOD + GOOD.split("published:\n")[1].split("  - method: LoRSU")[0],
     "entry 3 (ZSCL) repeats entry 1"),
    ("published:\n  - just text\n", "entry 1: expected a mapping"),
    ("published: []\n", "`published:` must be a non-empty list"),
    ("entries:\n" + ENTRY, "no `published:` list"),
    ("published:\n" + ENTRY + "publishd: 1\n", "unknown top-level key 'publishd'"),
    ("", "no `published:` list"),
    ("published:\n  - {method: [unclosed\n", "malformed YAML"),
])
def test_each_mistake_is_one_line_naming_the_file_and_entry(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.hint


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_file(tmp_path / "none.yaml")


def test_published_check_prints_the_rows(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    code, out, _ = run_cli(["published", "check", str(path)], capsys)
    assert code == 0
    assert "mtil-order1" in out and "tsi-20shot" in out
    zscl = next(line for line in out.splitlines() if line.strip().startswith("ZSCL"))
    assert zscl.split()[:5] == ["ZSCL", "ViT-B-16@openai", "68.1", "75.4", "83.6"]
    assert "imagenet acc. (%)" in out and "[1] Zheng et al., ICCV 2023, Table 1" in out
    assert f"{path}: 2 entries valid" in out
    code, out, _ = run_cli(["published", "check", str(path), "--json"], capsys)
    rows = json.loads(out)
    assert code == 0 and rows[1]["metrics"]["control:imagenet:final"] == 76.1


def test_published_check_refuses_a_bad_file_in_one_line(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("mtil_avg: 75.4", "mtil_avgg: 75.4"))
    code, out, err = run_cli(["published", "check", str(path)], capsys)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith("error: ") and "did you mean: mtil_avg" in lines[0]
    assert len(lines) == 2 and lines[1].startswith("hint: ")
    code, _, err = run_cli(["published", "check", str(tmp_path / "none.yaml")], capsys)
    assert code == 2 and "not found" in err
    code, _, err = run_cli(["published"], capsys)
    assert code == 2 and "no published action given" in err


def test_published_list_prints_the_built_in_rows(capsys):
    code, out, _ = run_cli(["published", "list"], capsys)
    assert code == 0
    assert "ZSCL" in out and "68.1" in out and "LoRSU" in out and "arxiv.org/abs/2407.16526" in out
    code, out, _ = run_cli(["published", "list", "--json"], capsys)
    assert code == 0 and [r["method"] for r in json.loads(out)][:4] == [
        "zero-shot", "ZSCL", "MoE-Adapters", "DIKI"]


def test_clbench_app_checks_and_passes_its_published_files(tmp_path, capsys):
    good = write(tmp_path, GOOD)
    args = argparse.Namespace(db=str(tmp_path / "r.db"), port=8765, address=None,
                              published=[str(good), str(good)])
    command = streamlit_command(args)
    after = command[command.index("--"):]
    assert after.count("--published") == 2 and str(good.resolve()) in after
    bad = write(tmp_path, GOOD.replace("83.6", "836"), "bad.yaml")
    code, _, err = run_cli(["app", "--published", str(bad)], capsys)
    assert code == 2 and "bad.yaml: entry 1 (ZSCL): metrics.mtil_last: 836" in err



def test_a_control_whose_name_holds_a_colon_is_one_set():
    # base-to-new's control is <target>:new: its columns are control:proxy:new:<part>
    import pandas as pd

    from clbench.leaderboard_app.tables import control_names, reported_controls
    from clbench.metrics import METRICS, split_control_column
    from clbench.published import metric_of

    assert split_control_column("control:proxy:new:final") == ("proxy:new", "final")
    assert split_control_column("control:imagenet:change") == ("imagenet", "change")
    assert split_control_column("final_accuracy") is None
    assert split_control_column("control::final") is None
    assert metric_of("control:proxy:new:final") is METRICS["control:final"]
    assert metric_of("transfer_by_session") is None  # one value per session: no column
    runs = pd.DataFrame({"control:proxy:new:final": [0.5], "control:proxy-clean:final": [0.9],
                         "control:proxy:new:change": [0.1]})
    assert control_names(runs) == ["proxy:new", "proxy-clean"]
    entry = Published("m", "p", "t", "b", "proxy-base2new", {"control:proxy:new:final": 50.0},
                      "s")
    assert reported_controls([entry]) == ["proxy:new"]
