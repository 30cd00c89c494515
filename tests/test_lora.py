"""LoRA, DoRA and gated variants: agreement with HF peft, fused q/k/v, gates, merging, configs."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import peft
import pytest
import torch
from tiny_models import (
    WIDTH,
    TinyImages,
    classifier,
    snapshot,
    tiny_clip,
    train_stream,
    trainer,
)
from torch import nn
from torch.nn.utils import parametrize

from clbench.errors import ConfigError
from clbench.strategies import registry
from clbench.strategies.lora import LoRAConfig, adapter_state, attach_adapters, merge_adapters
from clbench.strategies.lora_layers import LowRankDelta, attach


def images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def randomize(adapters, seed: int = 2) -> None:
    """Non-zero B (and perturbed magnitudes) so that adapters change the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for a in adapters:
            a.lora_B.copy_(torch.randn(a.lora_B.shape, generator=g) * 0.1)
            if a.dora:
                a.magnitude.mul_(1 + 0.1 * torch.rand(a.magnitude.shape, generator=g))


def plugin(name: str, **params):
    return registry.create(name, params)


# ---------------------------------------------------------------- agreement with HF peft


@pytest.mark.parametrize("dora", [False, True])
def test_matches_peft_on_a_linear(dora):
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(16, 12))
    ours = copy.deepcopy(base)[0].requires_grad_(False)
    ref = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["0"], use_dora=dora, lora_dropout=0.0))
    adapter = LowRankDelta(ours.weight, slice(0, 12), rank=4, alpha=8, dora=dora)
    layer = ref.base_model.model[0]
    x = torch.randn(5, 16)
    if dora:  # same initial magnitude: ||W|| per output row
        torch.testing.assert_close(adapter.magnitude, layer.lora_magnitude_vector["default"].weight)
    attach(ours, "weight", {"w": adapter})
    with torch.no_grad():  # at init both equal the base layer
        torch.testing.assert_close(ours(x), base(x))
        randomize([adapter])
        layer.lora_A["default"].weight.copy_(adapter.lora_A)
        layer.lora_B["default"].weight.copy_(adapter.lora_B)
        if dora:
            layer.lora_magnitude_vector["default"].weight.copy_(adapter.magnitude)
    out, expected = ours(x), ref(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out, base(x), atol=1e-3)
    # same gradients too: the DoRA norm is detached in both
    out.square().sum().backward()
    expected.square().sum().backward()
    torch.testing.assert_close(adapter.lora_A.grad, layer.lora_A["default"].weight.grad)
    torch.testing.assert_close(adapter.lora_B.grad, layer.lora_B["default"].weight.grad)
    if dora:
        torch.testing.assert_close(adapter.magnitude.grad,
                                   layer.lora_magnitude_vector["default"].weight.grad)
    # merging leaves a plain Linear computing the adapted function, same Parameter object
    param = ours.parametrizations.weight.original
    merge_adapters(ours)
    assert not parametrize.is_parametrized(ours) and ours.weight is param
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- fused q/k/v on open_clip


def test_lora_on_q_changes_only_q_rows():
    clip = tiny_clip()
    w0 = clip.visual.transformer.resblocks[0].attn.in_proj_weight.clone()
    adapters = attach_adapters(clip, LoRAConfig(rank=4, targets=["q"], proj_lora=False))
    assert len(adapters) == 2 and all(a.rows == slice(0, WIDTH) for a in adapters)
    randomize(adapters)
    w = clip.visual.transformer.resblocks[0].attn.in_proj_weight
    assert not torch.allclose(w[:WIDTH], w0[:WIDTH])
    assert torch.equal(w[WIDTH:], w0[WIDTH:])
    # the text tower is untouched with towers=vision
    assert not parametrize.is_parametrized(clip.transformer.resblocks[0].attn)


@pytest.mark.parametrize("name", ["lora", "dora", "gated-lora", "gated-dora"])
def test_adapted_clip_equals_base_at_init_and_merged_equals_adapted(name):
    clip = tiny_clip()
    x = images()
    with torch.no_grad():
        base = clip.encode_image(x)
    p = plugin(name, rank=4)
    p.configure(SimpleNamespace(clip=clip), None)
    # gated: q, k, v, Wo, fc1, fc2 per block (Selective LoRA 4.4); plain: Table 9's fused qkv,
    # Wo, fc1, fc2 per block and the image projection
    assert p.session_facts()["adapted_blocks"] == (2 * 6 if name.startswith("gated") else
                                                   2 * 4 + 1)
    with torch.no_grad():
        out = clip.encode_image(x)
    if name in ("lora", "gated-lora"):
        assert torch.equal(out, base)
    else:
        torch.testing.assert_close(out, base, rtol=1e-5, atol=1e-6)
    randomize(p.adapters)
    with torch.no_grad():
        adapted = clip.encode_image(x)
    assert not torch.allclose(adapted, base, atol=1e-3)
    merge_adapters(clip)
    assert not any(".parametrizations." in k for k in clip.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(clip.encode_image(x), adapted, rtol=1e-5, atol=1e-5)


def test_adapter_state_round_trip():
    clip, fresh = tiny_clip(), tiny_clip()
    config = LoRAConfig(rank=4, targets=["v", "fc2"])
    randomize(attach_adapters(clip, config, dora=True))
    state = adapter_state(clip)
    assert state and all(".adapters." in k for k in state)
    attach_adapters(fresh, config, dora=True)
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    assert not unexpected
    x = images()
    with torch.no_grad():
        assert torch.equal(fresh.encode_image(x), clip.encode_image(x))


# ---------------------------------------------------------------- gates


def test_closed_gate_contributes_exactly_zero():
    clip = tiny_clip()
    x = images()
    with torch.no_grad():
        base = clip.encode_image(x)
    weights = {k: v.clone() for k, v in clip.state_dict().items()}
    for name in ("gated-lora", "gated-dora"):
        model = copy.deepcopy(clip)
        p = plugin(name, rank=4)
        p.configure(SimpleNamespace(clip=model), None)
        randomize(p.adapters)
        with torch.no_grad():
            for a in p.adapters:
                a.score.fill_(0.05)  # below tau = 0.1
            block = model.visual.transformer.resblocks[1]
            prefix = "visual.transformer.resblocks.1."
            assert torch.equal(block.attn.in_proj_weight, weights[prefix + "attn.in_proj_weight"])
            assert torch.equal(block.mlp.c_fc.weight, weights[prefix + "mlp.c_fc.weight"])
            assert torch.equal(model.encode_image(x), base)
        assert p.session_facts()["active_fraction"] == 0.0


def test_gated_with_lambda_zero_and_open_gates_equals_lora():
    clip = tiny_clip()
    lora, gated = copy.deepcopy(clip), copy.deepcopy(clip)
    # the gated default's targets are lora-qkv-split's (q, k, v, Wo, fc1, fc2; no projection)
    p_lora, p_gated = plugin("lora-qkv-split", rank=4), plugin("gated-lora", rank=4, lam=0.0)
    p_lora.configure(SimpleNamespace(clip=lora), None)
    p_gated.configure(SimpleNamespace(clip=gated), None)
    randomize(p_lora.adapters)
    missing, unexpected = gated.load_state_dict(adapter_state(lora), strict=False)
    assert not unexpected and all(k.endswith(".score") for k in missing if ".adapters." in k)
    x = images()
    out_lora, out_gated = lora.encode_image(x), gated.encode_image(x)
    assert torch.equal(out_lora, out_gated)
    strategy = SimpleNamespace(loss=out_gated.square().mean())
    p_gated.before_backward(strategy)  # lam = 0: nothing added
    assert torch.equal(strategy.loss, out_gated.square().mean())


def test_straight_through_gradient_and_penalties():
    clip = tiny_clip()
    p = plugin("gated-lora", rank=4)
    p.configure(SimpleNamespace(clip=clip), None)
    randomize(p.adapters)
    clip.encode_image(images()).square().sum().backward()
    assert all(a.score.grad is not None and a.score.grad != 0 for a in p.adapters)

    for penalty, per_score in (("l1", 0.15), ("l2", 0.15 ** 2), ("hinge", 0.05)):
        # the TAPS preset averages the penalty over the gated blocks
        q = plugin("gated-lora-taps", rank=4, penalty=penalty, lam=2.0)
        q.configure(SimpleNamespace(clip=tiny_clip()), None)
        strategy = SimpleNamespace(loss=torch.tensor(1.0))
        q.before_backward(strategy)
        torch.testing.assert_close(strategy.loss, torch.tensor(1.0 + 2.0 * per_score))
        strategy.loss.backward()
        assert all(a.score.grad is not None for a in q.adapters)
        # the default sums it (eq. 4): 12 blocks of the tiny model
        d = plugin("gated-lora", rank=4, penalty=penalty, lam=2.0)
        d.configure(SimpleNamespace(clip=tiny_clip()), None)
        strategy = SimpleNamespace(loss=torch.tensor(1.0))
        d.before_backward(strategy)
        torch.testing.assert_close(strategy.loss, torch.tensor(1.0 + 2.0 * 12 * per_score))

    with torch.no_grad():
        for a in p.adapters[:3]:
            a.score.fill_(-1.0)
    facts = p.session_facts()
    assert facts["active_blocks"] == len(p.adapters) - 3
    assert facts["active_fraction"] == pytest.approx(1 - 3 / len(p.adapters))


# ---------------------------------------------------------------- configuration


def test_config_errors_name_the_key_and_range():
    with pytest.raises(ConfigError, match=r"strategy.tau.*no gate able to open.*\(0, 0.15\]"):
        plugin("gated-lora", tau=0.2)
    with pytest.raises(ConfigError, match=r"unknown target\(s\) attn.*q, k, v, out_proj, fc1"):
        plugin("lora", targets=["q", "attn"])
    with pytest.raises(ConfigError, match="cannot be combined"):
        plugin("dora", targets="qkv,q")
    with pytest.raises(ConfigError, match=r"strategy.rank: 0 is outside the allowed range \(≥ 1\)"):
        plugin("lora", rank=0)
    with pytest.raises(ConfigError, match=r"strategy.alpha"):
        plugin("lora", alpha=0)
    p = plugin("lora-qkv-split", rank=WIDTH + 1)
    with pytest.raises(ConfigError, match=rf"strategy.rank: {WIDTH + 1} .* \[1, {WIDTH}\]"):
        p.configure(SimpleNamespace(clip=tiny_clip()), None)
    # the default's projection factor (64 x 32 on the tiny model) limits the rank further
    with pytest.raises(ConfigError, match=r"strategy.rank: 33 .* \[1, 32\]"):
        plugin("lora", rank=33).configure(SimpleNamespace(clip=tiny_clip()), None)
    assert plugin("lora", targets="q,v").config.targets == ["q", "v"]


def test_qkv_target_is_one_adapter_on_the_fused_weight():
    clip = tiny_clip()
    adapters = attach_adapters(clip, LoRAConfig(rank=4, targets=["qkv"]))
    assert [a.rows for a in adapters[:2]] == [slice(0, 3 * WIDTH)] * 2
    assert adapters[0].lora_B.shape == (3 * WIDTH, 4)
    # the default's projection factor: open_clip's visual.proj (width x embed, 64 x 32)
    assert len(adapters) == 3 and adapters[2].lora_B.shape == (WIDTH, 4)
    assert parametrize.is_parametrized(clip.visual, "proj")


# ---------------------------------------------------------------- through the training loop


def base_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Base weights under their plain names (a parametrized W is stored as `.original`)."""
    out = {}
    for key, value in state.items():
        if ".adapters." in key:
            continue
        out[key.replace(".parametrizations.", ".").replace(".original", "")] = value
    return out


@pytest.mark.parametrize("name,merge", [("gated-dora", False), ("lora", True)])
def test_two_sessions_leave_every_base_tensor_bit_identical(name, merge):
    model = classifier(tiny_clip(), templates=["a photo of a {}."])
    p = plugin(name, rank=4, merge_each_session=merge)
    before = snapshot(model)
    loop = trainer(model, [p], epochs=2, batch_size=2, lr=1e-2, optimizer="adamw",
                   weight_decay=0.1)
    stream = train_stream(TinyImages(4, 0), TinyImages(4, 1))
    loop.train(stream[0], eval_streams=[])
    first = list(p.adapters)
    trained = adapter_state(model)
    loop.train(stream[1], eval_streams=[])
    after = snapshot(model)
    if merge:  # merged after each session: a plain model that differs from the start
        assert p.adapters == [] and not any(".parametrizations." in k for k in after)
        assert not torch.equal(after["clip.visual.transformer.resblocks.0.mlp.c_fc.weight"],
                               before["clip.visual.transformer.resblocks.0.mlp.c_fc.weight"])
        return
    assert p.adapters == first  # the same adapters kept training in session 2
    assert all(not torch.equal(trained[k], v) for k, v in adapter_state(model).items()
               if k.endswith("lora_B"))
    base_after = base_tensors(after)
    assert base_after.keys() == before.keys()
    moved = [k for k in before if not torch.equal(before[k], base_after[k])]
    assert moved == [], f"frozen base tensors changed: {moved[:5]}"
    facts = p.session_facts()
    assert facts["adapted_blocks"] == 12 and 0 <= facts["active_fraction"] <= 1



def test_gate_scores_train_at_their_own_rate_and_a_strong_penalty_closes_gates():
    def session(**params):
        model = classifier(tiny_clip(), templates=["a photo of a {}."])
        p = plugin("gated-lora", rank=4, **params)
        loop = trainer(model, [p], epochs=3, batch_size=2, lr=1e-5)
        loop.train(train_stream(TinyImages(8, 0))[0], eval_streams=[])
        return loop.optimizer, p

    optimizer, p = session(lam=50.0, score_lr=1e-2)
    score_ids = {id(a.score) for a in p.adapters}
    groups = {g["initial_lr"]: {id(x) for x in g["params"]} for g in optimizer.param_groups}
    assert groups[1e-2] == score_ids and not groups[1e-5] & score_ids
    assert p.session_facts()["active_fraction"] < 1.0  # 12 steps of 1e-2 cross 0.05 to tau
    _, open_plugin = session(lam=0.0, score_lr=1e-2)
    assert open_plugin.session_facts()["active_fraction"] == 1.0
