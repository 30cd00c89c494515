"""Run configuration: precedence, validation errors that name the key, stable hashing."""

from __future__ import annotations

import pytest

from clbench.config.run_config import assemble, load_yaml_config, parse_set_options, resolve
from clbench.errors import ConfigError


def test_precedence_scenario_then_file_then_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("strategy: fft\nscenario: proxy-20shot\ntraining: {lr: 0.001, epochs: 3}\n")
    raw = assemble([load_yaml_config(path), parse_set_options(["training.epochs=7",
                                                                "strategy.towers=both"])])
    config = resolve(raw, {"epochs": 20, "batch_size": 8, "lr": 1e-4})
    assert config.training.epochs == 7  # --set beats the file
    assert config.training.lr == pytest.approx(1e-3)  # the file beats the scenario
    assert config.training.batch_size == 8  # the scenario fills what nobody set
    assert config.strategy == "fft" and config.strategy_params == {"towers": "both"}


def test_hash_is_stable_and_sensitive():
    base = assemble([{"strategy": "fft", "scenario": "proxy-20shot"}])
    a = resolve(base, {"epochs": 5}).hash()
    assert a == resolve(base, {"epochs": 5}).hash()
    assert a != resolve(base, {"epochs": 6}).hash()


@pytest.mark.parametrize("override, message", [
    ("training.lrr=1", "did you mean 'training.lr'"),
    ("training.lr=abc", "training.lr: expected a number"),
    ("training.lr=-1", "training.lr: -1"),
    ("training.epochs=2.5", "training.epochs: expected an integer"),
    ("training.optimizer=adamm", "did you mean 'adam'"),
    ("training.warmup=2", "outside the allowed range"),
    ("modle.arch=x", "did you mean 'model'"),
    ("seed=x", "seed: expected an integer"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        raw = assemble([{"strategy": "fft", "scenario": "proxy-20shot"},
                        parse_set_options([override])])
        resolve(raw, {})


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("strategy: fft\ntraining: {lr: [1\n")
    with pytest.raises(ConfigError, match="malformed YAML.*line"):
        load_yaml_config(path)


def test_set_needs_key_value():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_options(["training.lr"])


def test_scenario_training_per_strategy_and_preset_fallback(tmp_path):
    from clbench.scenarios.manifests import load_scenario_manifest, training_for
    from clbench.strategies.registry import strategy_and_base

    path = tmp_path / "s.yaml"
    path.write_text("target: proxy\nshots: 2\nsessions: {sizes: [2]}\ntraining: {lr: 1.0e-5, "
                    "epochs: 3}\nstrategy_training: {lorsu: {lr: 3.0e-4}}\n")
    manifest = load_scenario_manifest(str(path))
    assert training_for(manifest, *strategy_and_base("lorsu")) == {"lr": 3e-4, "epochs": 3}
    assert training_for(manifest, *strategy_and_base("lorsu-official"))["lr"] == 3e-4
    assert training_for(manifest, *strategy_and_base("fft")) == {"lr": 1e-5, "epochs": 3}
    path.write_text("target: proxy\nshots: 2\nsessions: {sizes: [2]}\n"
                    "strategy_training: {lorsu: 3.0e-4}\n")
    with pytest.raises(ConfigError, match="strategy_training"):
        load_scenario_manifest(str(path))


def test_scenario_strategy_parameters_fill_only_unset_ones_of_the_named_strategy(tmp_path):
    from clbench.run.settings import resolve_for_scenario
    from clbench.scenarios.manifests import load_scenario_manifest

    path = tmp_path / "s.yaml"
    path.write_text("target: proxy\nshots: 2\nsessions: {sizes: [2]}\ntraining: {lr: 1.0e-5}\n"
                    "strategy_training: {llu: {lr: 2.0e-5, strategy: {lr: 3.0e-3}}}\n")
    manifest = load_scenario_manifest(str(path))

    def resolved(strategy: dict):
        return resolve_for_scenario({"strategy": strategy, "scenario": str(path)}, manifest)

    declared = resolved({"name": "llu"})
    assert declared.strategy_params == {"lr": 3e-3} and declared.training.lr == 2e-5
    assert resolved({"name": "llu", "lr": 1e-2}).strategy_params == {"lr": 1e-2}  # --set wins
    # a preset takes its base's training keys but never its base's strategy parameters
    preset = resolved({"name": "llu-literal"})
    assert preset.strategy_params == {} and preset.training.lr == 2e-5
    assert resolved({"name": "fft"}).strategy_params == {}
    path.write_text("target: proxy\nshots: 2\nsessions: {sizes: [2]}\n"
                    "strategy_training: {llu: {strategy: 3.0e-3}}\n")
    with pytest.raises(ConfigError, match="strategy_training"):
        load_scenario_manifest(str(path))
