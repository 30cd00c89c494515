"""LLU invariants: local updates only near stored data, encoders untouched, bounded memory."""

from __future__ import annotations

import open_clip
import torch
import torch.nn.functional as F
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils.utils import as_classification_dataset
from avalanche.training.plugins import EvaluationPlugin
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from clbench.classifier import CLIPClassifier
from clbench.config import TrainingConfig
from clbench.strategies import registry
from clbench.strategies.base import snapshot
from clbench.strategies.llu import LocalAffine, cluster_memory
from clbench.template import CLIPTemplate


class Images(torch.utils.data.Dataset):
    def __init__(self, n=12, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 32, 32, generator=g)
        self.targets = [i % 3 for i in range(n)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def tiny_classifier():
    torch.manual_seed(0)
    clip = open_clip.CLIP(32, CLIPVisionCfg(layers=2, width=64, head_width=16, patch_size=8,
                                            image_size=32),
                          CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=4,
                                      layers=2))
    model = CLIPClassifier(clip, open_clip.get_tokenizer("ViT-B-32"))
    model.register_head("toy", ["cat", "dog", "bird"], ["a photo of a {}.", "a {}."])
    return model


def test_far_from_memory_equals_zero_shot():
    adapter = LocalAffine(8, beta=0.5, gamma=20.0)
    with torch.no_grad():
        adapter.weight.add_(torch.randn(8, 8))
        adapter.bias.add_(torch.randn(8))
    adapter.memory = F.normalize(torch.eye(8)[:1], dim=-1)  # one stored point: e1
    near, far = torch.eye(8)[:1], -torch.eye(8)[:1]  # cosine 1 and -1 to the memory
    assert not torch.allclose(adapter(near), near)  # updated where data was seen
    assert torch.allclose(adapter(far), far, atol=1e-15)  # exp(-40) * beta ~ 0: zero-shot kept
    empty = LocalAffine(8, 0.5, 20.0)
    with torch.no_grad():
        empty.weight.mul_(3)
    assert torch.equal(empty(near), near)  # no memory yet: exactly the zero-shot embedding


def test_clustering_bounds_memory_with_normalised_means():
    points = F.normalize(torch.randn(50, 6, generator=torch.Generator().manual_seed(1)), dim=-1)
    reduced = cluster_memory(points, 10)
    assert reduced.shape == (10, 6)
    assert torch.allclose(reduced.norm(dim=-1), torch.ones(10), atol=1e-5)
    assert torch.equal(cluster_memory(points[:5], 10), points[:5])


def test_session_trains_adapters_only():
    model = tiny_classifier()
    plugin = registry.create("llu", {"clusters": 8, "lam": 1.0, "lr": 5e-2})
    before = snapshot(model.clip)
    template = CLIPTemplate(model=model, training=TrainingConfig(epochs=2, batch_size=4, lr=1e-2),
                            device=torch.device("cpu"), seed=0, plugins=[plugin],
                            evaluator=EvaluationPlugin(loggers=[]))
    assert template.training.loss == "ce"  # LLU prescribes cross-entropy (eq. 3)
    bench = benchmark_from_datasets(train=[as_classification_dataset(Images())])
    template.train(bench.train_stream[0], eval_streams=[])
    after = snapshot(model.clip)
    assert all(torch.equal(before[k], after[k]) for k in before)  # encoders frozen
    image_adapter = model.embedding_adapters["image"]
    assert len(image_adapter.memory) == 8  # 12 images clustered to 8
    assert not torch.equal(image_adapter.weight, torch.eye(len(image_adapter.weight)))
    assert plugin.session_facts() == {"memory_image": 8, "memory_text": 6}
    # the adapters train at LLU's own rate (the paper's CoOp lr), not the encoder lr
    adapter_ids = {id(p) for m in model.embedding_adapters.values() for p in m.parameters()}
    (group,) = template.optimizer.param_groups
    assert group["initial_lr"] == 5e-2 and {id(p) for p in group["params"]} == adapter_ids
