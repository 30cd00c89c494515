"""Speed switches (`clbench.training.speed`): each changes how a run computes, never what it computes.

Activation checkpointing trains bit-identical weights; channels-last, fused attention and a
compiled image tower give the same outputs within float rounding; workers reach the DataLoader
and load the same batches; a default config keeps the hash it had before the switches existed;
bad values and a failing compiler give one clear error naming the key.
"""

from __future__ import annotations

import json

import pytest
import torch

from clbench.config.run_config import (
    RunConfig,
    TrainingConfig,
    assemble,
    parse_set_options,
    resolve,
)
from clbench.errors import ConfigError, UserError
from clbench.training import speed
from clbench.training.speed import CompileFailed, apply_speed_switches, loader_options
from clbench.training.strategy_kit import (
    TinyImages,
    proxy_classifier,
    tiny_sessions,
    train_sessions,
    train_stream,
    trainer,
)

CPU = torch.device("cpu")


def switched(**switches):
    """A `proxy_classifier` factory (weights from torch's global RNG, as `train_sessions`
    seeds it) with the speed switches applied as `clbench run` does."""
    def make():
        model = proxy_classifier()
        apply_speed_switches(model, TrainingConfig(**switches), CPU)
        return model
    return make


def seeded(**switches):
    """The proxy classifier of seed 0, with the speed switches."""
    torch.manual_seed(0)
    return switched(**switches)()


def images(n: int = 4) -> torch.Tensor:
    return TinyImages(labels=list(range(n)), seed=5, uniform=True, size=32).x


def assert_same_state(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if atol == 0.0:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


# ---------------------------------------------------------------------------- config and hash


def test_default_config_hashes_are_those_from_before_the_switches():
    # computed on the config module before the switches were added
    assert RunConfig(strategy="lorsu", scenario="proxy-20shot").hash() == "bbdd8643dfa52f85"
    assert RunConfig(strategy="lora", scenario="proxy-20shot", training=TrainingConfig(
        epochs=3, batch_size=8, lr=1e-5)).hash() == "df8d48d401e42d29"
    raw = assemble([{"strategy": "lorsu", "scenario": "proxy-20shot"}])
    assert resolve(raw).hash() == "c898c454618c201c"


@pytest.mark.parametrize("override", ["training.grad_checkpointing=true",
                                      "training.channels_last=true", "training.compile=true",
                                      "training.workers=2", "training.workers=0",
                                      "training.sdpa=true"])
def test_a_switch_set_is_hashed_and_stored(override):
    base = assemble([{"strategy": "lorsu", "scenario": "proxy-20shot"}])
    config = resolve(assemble([base, parse_set_options([override])]))
    key, value = override.removeprefix("training.").split("=")
    assert str(config.to_dict()["training"][key]).lower() == value
    assert config.hash() != resolve(base).hash()
    # set to its default: the default's hash
    default = {"workers": "null"}.get(key, "false")
    same = resolve(assemble([base, parse_set_options([f"training.{key}={default}"])]))
    assert key not in same.to_dict()["training"] and same.hash() == resolve(base).hash()


@pytest.mark.parametrize("override, message", [
    ("training.workers=-1", "training.workers: -1 is outside the allowed range (≥ 0)"),
    ("training.workers=two", "training.workers: expected an integer, got 'two'"),
    ("training.workers=1.5", "training.workers: expected an integer"),
    ("training.grad_checkpointing=maybe", "training.grad_checkpointing: expected true or false"),
    ("training.compile=2", "training.compile: expected true or false, got 2"),
    ("training.channels_lst=true", "did you mean 'training.channels_last'"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        resolve(assemble([{"strategy": "lorsu", "scenario": "proxy-20shot"},
                          parse_set_options([override])]))
    assert message in str(err.value)


def test_the_cli_refuses_a_bad_value_before_anything_runs(tmp_path, capsys):
    from clbench.cli.main import main

    code = main(["run", "--strategy", "lorsu", "--scenario", "proxy-20shot", "--set",
                 "training.workers=-1", "--db", str(tmp_path / "r.db")])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: training.workers: -1 is outside the allowed range" in err
    assert "hint:" in err and "Traceback" not in err
    assert not (tmp_path / "r.db").exists()


# ---------------------------------------------------------------------------- grad checkpointing


@pytest.mark.parametrize("strategy", ["lorsu", "lora", "gated-lora", "spu", "fft", "ln",
                                      "llu"])
def test_grad_checkpointing_trains_the_same_weights(strategy):
    """Every strategy that patches the tower (adapters as parametrizations, masked gradients of
    attention and fc1 weights) or trains beside it: bit-identical weights."""
    session = tiny_sessions()[:1]
    plain = train_sessions(strategy, sessions=session, epochs=1)
    checkpointed = train_sessions(strategy, sessions=session, epochs=1,
                                  model_factory=switched(grad_checkpointing=True))
    assert plain.changed()  # it trained
    assert_same_state(plain.after(), checkpointed.after())


def test_grad_checkpointing_recomputes_the_image_blocks_only():
    model = seeded(grad_checkpointing=True)
    assert model.clip.visual.transformer.grad_checkpointing
    assert not model.clip.transformer.grad_checkpointing  # the text tower is left as it is
    calls = []
    block = model.clip.visual.transformer.resblocks[0]
    forward = block.forward
    block.forward = lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs)
    model.clip.visual.requires_grad_(True)
    model.train()
    features = model.encode_image(images())
    assert len(calls) == 1
    features.sum().backward()
    assert len(calls) == 2  # run again in the backward pass


def test_grad_checkpointing_on_a_tower_without_it_is_a_config_error():
    import open_clip
    from open_clip.model import CLIPVisionCfg

    from clbench.training.strategy_kit import classifier, text_cfg

    resnet = open_clip.CLIP(embed_dim=32, text_cfg=text_cfg(), vision_cfg=CLIPVisionCfg(
        layers=(1, 1, 1, 1), width=16, image_size=32))  # open_clip's ModifiedResNet
    with pytest.raises(ConfigError, match=r"training.grad_checkpointing: the image tower "
                       r"\(ModifiedResNet\) has no activation checkpointing"):
        apply_speed_switches(classifier(resnet), TrainingConfig(grad_checkpointing=True), CPU)


# ---------------------------------------------------------------------------- channels last, sdpa


def test_channels_last_same_outputs_and_gradients():
    plain, fast = seeded().eval(), seeded(channels_last=True).eval()
    conv = fast.clip.visual.conv1
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    conv.register_forward_pre_hook(lambda m, args: seen.append(
        args[0].is_contiguous(memory_format=torch.channels_last)))
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), atol=1e-5, rtol=1e-5)
    assert seen == [True]  # the batch reached the patch embedding in channels-last
    grads = []
    for model in (plain, fast):  # a training step's gradients, every weight of the tower
        model.train().clip.visual.requires_grad_(True)
        model.flyp_loss(model.encode_image(x), torch.arange(4), torch.zeros(4, dtype=torch.long)
                        ).backward()
        grads.append({n: p.grad for n, p in model.clip.visual.named_parameters()})
    assert_same_state(*grads, atol=1e-5)


def test_sdpa_evaluates_with_fused_attention(monkeypatch):
    native = torch._native_multi_head_attention
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return native(*args, **kwargs)

    monkeypatch.setattr(torch, "_native_multi_head_attention", spy)
    plain, fast = seeded().eval(), seeded(sdpa=True).eval()
    x = images()
    with torch.no_grad():
        expected = plain(x)
        assert calls  # without the switch, evaluation takes the unfused fast path
        calls.clear()
        got = fast(x)
    assert not calls
    assert torch.backends.mha.get_fastpath_enabled()  # put back after the call
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------- compile


@pytest.mark.parametrize("strategy", ["lorsu", "lora"])
@pytest.mark.slow
def test_compile_trains_the_same_weights(monkeypatch, strategy):
    """Dynamo's own backend (no code generation: fast) through the path `clbench run` takes;
    inductor, the default, in the slow test below."""
    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")
    session = tiny_sessions()[:1]
    plain = train_sessions(strategy, sessions=session, epochs=1)
    compiled = train_sessions(strategy, sessions=session, epochs=1,
                              model_factory=switched(compile=True))
    assert compiled.model.clip.visual._compiled_call_impl is not None
    assert_same_state(plain.after(), compiled.after(), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["lorsu", "lora"])
def test_compile_with_inductor_trains_the_same_weights(strategy):
    """Inductor fuses and reorders float operations: gradients differ in the last bits. With
    SGD the weights then agree to 1e-5; Adam's first steps are about lr * sign(gradient), which
    turns a rounding difference in a gradient entry near zero into an lr-sized one (LoRA's
    zero-initialised B), so SGD is what shows that the computation is the same."""
    plain = train_sessions(strategy, epochs=1, optimizer="sgd")
    compiled = train_sessions(strategy, epochs=1, optimizer="sgd",
                              model_factory=switched(compile=True))
    assert_same_state(plain.after(), compiled.after(), atol=1e-5)


def test_a_compilation_failure_is_one_clear_error(monkeypatch):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no code generator here")

    # a compile test before this one (the inductor check, in the same process) leaves compiled
    # code in dynamo's cache, which would run without calling the broken backend
    torch._dynamo.reset()

    monkeypatch.setattr(speed, "COMPILE_BACKEND", broken_backend)
    model = seeded(compile=True)
    with pytest.raises(CompileFailed) as err, torch.no_grad():
        model(images())
    assert isinstance(err.value, UserError)
    assert "training.compile: torch.compile of the image encoder failed" in str(err.value)
    assert "no code generator here" in str(err.value)
    assert "training.compile=false" in err.value.hint


def test_compile_without_a_cpp_compiler_is_refused_before_the_run(monkeypatch):
    from torch._inductor import config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++",))
    with pytest.raises(ConfigError, match="training.compile: .*needs a C\\+\\+ compiler"):
        apply_speed_switches(proxy_classifier(), TrainingConfig(compile=True), CPU)


# ---------------------------------------------------------------------------- workers


def test_loader_options_automatic_and_explicit(monkeypatch):
    monkeypatch.setattr(speed.os, "cpu_count", lambda: 16)
    cuda = torch.device("cuda")
    assert loader_options(TrainingConfig(), CPU) == {"num_workers": 0, "pin_memory": False}
    assert loader_options(TrainingConfig(), cuda) == {"num_workers": 4, "pin_memory": True}
    assert loader_options(TrainingConfig(workers=2), CPU)["num_workers"] == 2
    assert loader_options(TrainingConfig(workers=0), cuda)["num_workers"] == 0
    monkeypatch.setattr(speed.os, "cpu_count", lambda: 2)
    assert loader_options(TrainingConfig(), cuda)["num_workers"] == 2


def test_workers_load_the_same_batches():
    """A worker process per epoch: the batches, hence the trained weights, are the same."""
    from avalanche.core import SupervisedPlugin

    from clbench.strategies import registry

    class Loader(SupervisedPlugin):
        def before_training_epoch(self, strategy, **kwargs):
            self.workers = strategy.dataloader.num_workers

    states = []
    for workers in (0, 1):
        torch.manual_seed(0)
        model, seen = proxy_classifier(), Loader()
        loop = trainer(model, [registry.create("ln", {}), seen], epochs=2, batch_size=4,
                       lr=1e-2, workers=workers)
        loop.train(train_stream(tiny_sessions()[0])[0], eval_streams=[],
                   **loader_options(loop.training, CPU))
        assert seen.workers == workers
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    assert_same_state(*states)


def test_clbench_run_applies_the_switches(tiny_scenario, db_path, monkeypatch, capsys):
    """`clbench run --set training.…`: the model gets the switches, each session's DataLoader
    its workers, and the stored config both."""
    import avalanche.training.templates.base_sgd as base_sgd

    from clbench.cli.main import main
    from clbench.store import Store

    loaders, applied = [], []

    class SpyLoader(base_sgd.DataLoader):
        def __init__(self, *args, **kwargs):
            loaders.append(kwargs)
            super().__init__(*args, **kwargs)

    real_apply = speed.apply_speed_switches
    monkeypatch.setattr(base_sgd, "DataLoader", SpyLoader)
    monkeypatch.setattr(speed, "apply_speed_switches",
                        lambda *args: applied.append(real_apply(*args)) or applied[-1])
    code = main(["run", "--strategy", "lorsu", "--scenario", str(tiny_scenario), "--db",
                 str(db_path), "--no-progress", "--quiet", "--json",
                 "--set", "training.grad_checkpointing=true", "--set", "training.workers=1"])
    assert code == 0, capsys.readouterr().err
    stored = json.loads(capsys.readouterr().out)
    assert applied == [["grad_checkpointing"]]
    assert [kw["num_workers"] for kw in loaders] == [1, 1, 1]  # one loader a session
    assert all(kw["pin_memory"] is False for kw in loaders)
    run = Store(f"sqlite:///{db_path}", create=False).get_run(stored["id"])
    assert run["status"] == "completed"
    assert run["config"]["training"]["grad_checkpointing"] is True
    assert run["config"]["training"]["workers"] == 1
    assert "compile" not in run["config"]["training"]  # switches left off are not stored


def evaluation_of(scenario, workers: int = 0, device: torch.device = CPU):
    from clbench.models.loading import make_transform
    from clbench.training.evaluation import SessionEvaluation

    transform = make_transform(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    return SessionEvaluation(scenario, transform, 16, device, workers=workers)


def test_evaluation_uses_workers_only_where_it_decodes_images():
    """The image cache's images (read from one memory-mapped file) and tensors in memory are
    read without workers."""
    from clbench.scenarios.stream import load_scenario

    scenario = load_scenario("proxy-20shot", 0)
    target = scenario.eval_sets[0]
    decoding = evaluation_of(scenario, workers=3)
    dataset = decoding.dataset(target)  # the proxy's images are not in the image cache
    assert decoding.loader_options(dataset) == {"num_workers": 3, "pin_memory": False}
    on_cuda = evaluation_of(scenario, workers=3, device=torch.device("cuda"))
    assert on_cuda.loader_options(dataset) == {"num_workers": 3, "pin_memory": True}
    in_memory = torch.utils.data.TensorDataset(torch.zeros(2, 3, 32, 32), torch.zeros(2))
    assert decoding.loader_options(in_memory) == {"num_workers": 0, "pin_memory": False}


def test_evaluation_with_workers_predicts_the_same():
    """Worker processes decode in order (no shuffling): the same predictions and features."""
    from clbench.scenarios.stream import load_scenario
    from clbench.training.evaluation import predict

    scenario = load_scenario("proxy-20shot", 0)
    target = scenario.eval_sets[0]
    from clbench.config.run_config import ModelConfig
    from clbench.models import load_model
    from clbench.models.classifier import CLIPClassifier

    bundle = load_model(ModelConfig())  # the proxy's pretrained weights: varied predictions
    model = CLIPClassifier(bundle.clip, bundle.tokenizer)
    model.register_head(target.name, target.data.class_names, target.data.templates)
    evaluation = evaluation_of(scenario, workers=2)
    dataset = torch.utils.data.Subset(evaluation.dataset(target), range(100))
    results = []
    for options in ({"num_workers": 0}, {"num_workers": 2}):
        features: list[torch.Tensor] = []
        preds, labels = predict(model, dataset, target.name, 16, CPU, None, features, options)
        assert len(features) == 1 and features[0].shape[0] == 100
        results.append((preds, labels, features[0]))
    for first, second in zip(*results):
        assert torch.equal(first, second)
    assert len(set(results[0][0].tolist())) > 1  # predictions that can differ
