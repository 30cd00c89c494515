"""Validation splits: declared per scenario, seeded, carved from the training data, disjoint
from the shots and from the test split; a tuning run evaluates them instead of any test set."""

from __future__ import annotations

from pathlib import Path

import pytest

from clbench.errors import ConfigError, UserError
from clbench.scenarios.manifests import load_scenario_manifest
from clbench.scenarios.stream import load_scenario

BASE = """\
name: v
target: proxy
protocol: few-shot
shots: 3
sessions: {sizes: [2, 2]}
eval_sets: [proxy-clean]
"""
OFFLINE = """\
name: v
target: proxy
protocol: offline
eval_sets: [proxy-clean]
"""


def scenario(tmp_path: Path, text: str) -> str:
    path = tmp_path / "v.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_per_protocol(tmp_path):
    assert load_scenario_manifest(scenario(tmp_path, BASE)).validation == {"per_class": 10}
    assert load_scenario_manifest(scenario(tmp_path, OFFLINE)).validation == {"fraction": 0.1}
    off = load_scenario_manifest(scenario(tmp_path, BASE + "validation: false\n"))
    assert off.validation is None


@pytest.mark.parametrize("text, key", [
    (BASE + "validation: {per_class: 0}\n", "validation.per_class"),
    (BASE + "validation: {per_class: 2.5}\n", "validation.per_class"),
    (BASE + "validation: {fraction: 0.1}\n", "validation"),
    (BASE + "validation: 10\n", "validation"),
    (OFFLINE + "validation: {fraction: 1.0}\n", "validation.fraction"),
    (OFFLINE + "validation: {per_class: 5}\n", "validation"),
])
def test_bad_validation_keys_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_scenario_manifest(scenario(tmp_path, text))


def test_few_shot_validation_is_seeded_and_disjoint_from_the_shots(tmp_path):
    path = scenario(tmp_path, BASE + "validation: {per_class: 4}\n")
    s = load_scenario(path, seed=5)
    shots = {i for x in s.sessions for i in x.sample_indices}
    assert len(s.validation_indices) == 4 * 4 and not shots & set(s.validation_indices)
    targets = s.train.targets[s.validation_indices].tolist()
    classes = [c for x in s.sessions for c in x.class_ids]
    assert sorted(set(targets)) == sorted(classes) and all(targets.count(c) == 4
                                                           for c in classes)
    again = load_scenario(path, seed=5)
    assert again.validation_indices == s.validation_indices
    assert load_scenario(path, seed=6).validation_indices != s.validation_indices
    # the shots are those drawn without a validation split
    plain = load_scenario(scenario(tmp_path, BASE + "validation: false\n"), seed=5)
    assert [x.sample_ids for x in plain.sessions] == [x.sample_ids for x in s.sessions]
    assert plain.validation_indices is None and plain.validation_record() is None
    record = s.validation_record()
    assert record["rule"] == {"per_class": 4} and len(record["sample_ids"]) == 16


def test_offline_validation_is_held_out_of_training(tmp_path):
    s = load_scenario(scenario(tmp_path, OFFLINE + "validation: {fraction: 0.2}\n"), seed=0)
    (session,) = s.sessions
    held = set(s.validation_indices)
    assert len(held) == round(0.2 * len(s.train))
    assert not held & set(session.sample_indices)
    assert len(held) + len(session.sample_indices) == len(s.train)
    assert session.sample_ids == [s.train.sample_ids[i] for i in session.sample_indices]


def test_validation_mode_evaluates_validation_data_and_loads_no_test_split(tmp_path,
                                                                           monkeypatch):
    from clbench.scenarios import stream

    seen = []
    original = stream.load_split

    def load_split(manifest, split, *args, **kwargs):
        seen.append((manifest.name, split))
        return original(manifest, split, *args, **kwargs)

    monkeypatch.setattr(stream, "load_split", load_split)
    s = load_scenario(scenario(tmp_path, BASE.replace("eval_sets: [proxy-clean]",
                                                      "eval_sets: []")), seed=0,
                      evaluate_on="validation")
    assert [x[1] for x in seen] == ["train"]
    assert s.target.data.split == "validation" and len(s.target.data) == 40
    assert s.target.data.sample_ids == [s.train.sample_ids[i] for i in s.validation_indices]
    assert s.validation_record()["evaluated_on"] == "validation"


def test_validation_mode_refuses_a_scenario_without_validation_or_a_control_without_val(
        tmp_path):
    with pytest.raises(UserError, match="no validation split"):
        load_scenario(scenario(tmp_path, BASE + "validation: false\n"), 0,
                      evaluate_on="validation")
    # dalle declares a test split only (checked before any of its files is looked for)
    with pytest.raises(UserError, match="control 'dalle' has no 'val' split"):
        load_scenario(scenario(tmp_path, BASE.replace("[proxy-clean]", "[dalle]")), 0,
                      evaluate_on="validation")
