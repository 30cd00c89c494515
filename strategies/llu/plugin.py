"""LLU's plugin: the local affine adapters, their memory and the identity penalty (the method:
this package's docstring)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clbench.strategies.base import StrategyPlugin
from clbench.strategies.llu import LLUConfig


def cluster_memory(points: torch.Tensor, clusters: int) -> torch.Tensor:
    """Complete-linkage agglomerative clustering to `clusters` normalised cluster means."""
    if len(points) <= clusters:
        return points
    from scipy.cluster.hierarchy import fcluster, linkage

    labels = fcluster(linkage(points.double().numpy(), method="complete", metric="cosine"),
                      t=clusters, criterion="maxclust")
    labels = torch.as_tensor(labels, dtype=torch.long)
    means = [points[labels == k].mean(dim=0) for k in labels.unique()]
    return F.normalize(torch.stack(means), dim=-1)


def joint_embedding_width(clip: nn.Module) -> int:
    """Width of the shared image-text embedding, for CLIP and CustomTextCLIP (EVA) alike."""
    text = getattr(clip, "text", clip)  # CustomTextCLIP keeps its text tower in `.text`
    proj = getattr(text, "text_projection", None)
    if isinstance(proj, nn.Linear):
        return proj.out_features
    if proj is not None:
        return int(proj.shape[-1])
    return int(clip.visual.output_dim)


class LocalAffine(nn.Module):
    """g(f) = W f + b, applied with the locality weight a(f, D)."""

    def __init__(self, dim: int, beta: float, gamma: float):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("memory", torch.zeros(0, dim))
        self.beta, self.gamma = beta, gamma

    def locality(self, features: torch.Tensor) -> torch.Tensor:
        if len(self.memory) == 0:
            return features.new_zeros(len(features), 1)
        nearest = (features @ self.memory.t()).max(dim=1, keepdim=True).values
        return self.beta * torch.exp(-self.gamma * (1 - nearest))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        alpha = self.locality(features)
        return alpha * F.linear(features, self.weight, self.bias) + (1 - alpha) * features

    def penalty(self, norm: str = "frobenius") -> torch.Tensor:
        """Eq. 6 without lambda: ||W - I||_F + ||b|| (`frobenius`, as printed), their squares
        (`squared`), or the squares averaged over the D^2 + D entries (`mean_squared`)."""
        eye = torch.eye(len(self.weight), device=self.weight.device)
        if norm == "frobenius":
            return torch.linalg.matrix_norm(self.weight - eye) + self.bias.norm()
        squared = (self.weight - eye).square().sum() + self.bias.square().sum()
        if norm == "squared":
            return squared
        if norm == "mean_squared":
            return squared / (self.weight.numel() + self.bias.numel())
        raise ValueError(f"unknown penalty norm {norm!r}")


class LLUPlugin(StrategyPlugin):
    config_class = LLUConfig
    required_loss: ClassVar[str] = "ce"  # eq. 3: images with classes, not image/text pairs
    # the adapters and their memories are modules and buffers of the model (its state dict)
    stateless_between_sessions = True

    def configure(self, classifier, strategy) -> None:
        sides = ("image", "text") if self.config.sides == "both" else (self.config.sides,)
        dim = classifier.class_embeddings(classifier.active_head).shape[-1]
        device = classifier.clip.logit_scale.device
        for side in sides:
            if side not in classifier.embedding_adapters:
                classifier.embedding_adapters[side] = LocalAffine(
                    dim, self.config.beta, self.config.gamma).to(device)
        self._remember_session(classifier, strategy)
        for side in sides:
            for p in classifier.embedding_adapters[side].parameters():
                p.requires_grad_(True)
        self._adapters = {side: classifier.embedding_adapters[side] for side in sides}
        classifier.invalidate_text_cache()

    @torch.no_grad()
    def _remember_session(self, classifier, strategy) -> None:
        """Add this session's image and caption embeddings to the memories (adapters bypassed)."""
        adapters = dict(classifier.embedding_adapters.items())
        classifier.embedding_adapters.clear()  # raw embeddings of the frozen encoders
        try:
            was_training = classifier.training
            classifier.eval()
            images = []
            loader = torch.utils.data.DataLoader(strategy.adapted_dataset,
                                                 batch_size=strategy.train_mb_size)
            labels = []
            for batch in loader:
                x, y = batch[0], batch[1]
                images.append(classifier.encode_image(x.to(strategy.device)).cpu())
                labels.append(torch.as_tensor(y))
            classes = torch.cat(labels).unique()
            captions = classifier.caption_embeddings(classifier.active_head)[classes.to(
                classifier.clip.logit_scale.device)]
            new = {"image": torch.cat(images), "text": captions.reshape(-1, captions.shape[-1])}
            classifier.train(was_training)
        finally:
            for side, module in adapters.items():
                classifier.embedding_adapters[side] = module
        for side, module in classifier.embedding_adapters.items():
            merged = torch.cat([module.memory.cpu(), new[side].float().cpu()])
            module.memory = cluster_memory(merged, self.config.clusters).to(module.weight.device)

    def prepare_for_load(self, classifier, state) -> None:
        for side in ("image", "text"):
            weight = state.get(f"embedding_adapters.{side}.weight")
            if weight is not None and side not in classifier.embedding_adapters:
                module = LocalAffine(len(weight), self.config.beta, self.config.gamma)
                module.memory = torch.empty(state[f"embedding_adapters.{side}.memory"].shape)
                classifier.embedding_adapters[side] = module

    def planned_trainable(self, clip: nn.Module) -> int:
        dim = joint_embedding_width(clip)
        sides = 2 if self.config.sides == "both" else 1
        return sides * (dim * dim + dim)

    def before_backward(self, strategy, **kwargs: Any) -> None:
        adapters = strategy.model.embedding_adapters
        if self.config.lam and len(adapters):
            strategy.loss = strategy.loss + self.config.lam * sum(
                a.penalty(self.config.penalty_norm) for a in adapters.values())

    def optimizer_groups(self) -> list[dict[str, Any]]:
        return [{"params": [p for m in self._adapters.values() for p in m.parameters()],
                 "lr": self.config.lr}] if getattr(self, "_adapters", None) else []

    def session_facts(self) -> dict[str, Any]:
        return dict(self._facts) if hasattr(self, "_facts") else {}

    def after_training_exp(self, strategy, **kwargs: Any) -> None:
        adapters = strategy.model.embedding_adapters
        self._facts = {f"memory_{side}": len(m.memory) for side, m in adapters.items()}
