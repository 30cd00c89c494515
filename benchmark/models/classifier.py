"""CLIPClassifier: a CLIP model used as a zero-shot classifier, and its training losses.

The head of an eval set is the template ensemble of Radford et al. (2021): for each class, the
mean of the L2-normalised text embeddings of its prompts, renormalised. Text embeddings are
cached while the text tower is frozen (the default, `towers=vision`) and recomputed when it
trains. Training uses the FLYP loss (Goyal et al. 2023), as the LoRSU paper does: the CLIP
contrastive loss between the batch's images and captions made from the class prompt templates,
with the logit scale frozen; cross-entropy on the zero-shot head is an option.

While the text side is frozen, the text embeddings of captions can also come from a store given
by the run (`text_store`, `clbench.training.text_cache`: kept on disk across runs), keyed by the sha256 of
the text tower's weights, the caption tokens and the numerics; `visual_sha256` fingerprints the
image tower the same way, so evaluation can reuse image features while it is unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from clbench.hashing import tensors_sha256


@dataclass(frozen=True)
class Head:
    class_names: tuple[str, ...]
    templates: tuple[str, ...]


class TextStore(Protocol):
    """Where caption embeddings computed once are kept, by content key (`clbench.training.text_cache`)."""

    def get(self, key: str) -> torch.Tensor | None: ...

    def put(self, key: str, features: torch.Tensor) -> None: ...


def module_sha256(module: nn.Module, skip: tuple[str, ...] = ()) -> str:
    """sha256 of a module as it computes: every parameter and buffer (non-persistent ones too)
    and the type of every submodule, with any forward it had replaced or hooks added (how
    strategies wrap layers). Names starting with one of `skip` are left out."""
    structure = []
    for name, sub in module.named_modules():
        replaced = getattr(sub.__dict__.get("forward"), "__qualname__", "")
        structure.append(f"{name}:{type(sub).__qualname__}:{replaced}:"
                         f"{len(sub._forward_hooks)}:{len(sub._forward_pre_hooks)}")
    named = [(n, t) for n, t in chain(module.named_parameters(), module.named_buffers())
             if not n.startswith(skip)]
    return tensors_sha256(named, extra="\n".join(structure))


def _any_requires_grad(roots: list[nn.Module | None]) -> bool:
    """Whether a parameter of these modules or their submodules requires grad: the walk that
    `parameters()` does, without its name strings and de-duplication."""
    stack = [m for m in roots if m is not None]
    while stack:
        module = stack.pop()
        if any(p is not None and p.requires_grad for p in module._parameters.values()):
            return True
        stack.extend(m for m in module._modules.values() if m is not None)
    return False


class CLIPClassifier(nn.Module):
    def __init__(self, clip: nn.Module, tokenizer: Callable[[list[str]], torch.Tensor],
                 text_chunk: int = 1024):
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.text_chunk = text_chunk
        self.heads: dict[str, Head] = {}
        self.active_head: str | None = None
        # head name -> [C, T, D] normalised caption embeddings (valid while text is frozen)
        self._caption_cache: dict[str, torch.Tensor] = {}
        # Optional modules on the normalised embeddings ("image", "text"): feature-space
        # strategies such as LLU live here; the output is renormalised.
        self.embedding_adapters = nn.ModuleDict()
        self.text_store: TextStore | None = None
        self._text_sha: str | None = None  # of the text side, until the cache is invalidated

    # ---------------------------------------------------------------- heads
    def register_head(self, name: str, class_names: list[str], templates: list[str]) -> None:
        if not templates or not all("{}" in t for t in templates):
            raise ValueError(f"head '{name}': every prompt template needs a '{{}}' placeholder")
        self.heads[name] = Head(tuple(class_names), tuple(templates))
        self._caption_cache.pop(name, None)
        if self.active_head is None:
            self.active_head = name

    def text_tower_trainable(self) -> bool:
        """True when text embeddings can change during training (so they cannot be cached):
        some parameter of the text side (everything in `clip` but `visual` and the logit
        scale and bias, and a text adapter) requires grad. Asked once per training step, so it
        walks only the text side's modules: 0.1-0.2 ms for ViT-B-16, against 0.6 ms for
        `named_parameters()`, which also walks the image tower."""
        own = self.clip._parameters
        if any(p is not None and p.requires_grad for name, p in own.items()
               if name not in ("logit_scale", "logit_bias")):
            return True
        roots = [m for name, m in self.clip._modules.items() if name != "visual"]
        if "text" in self.embedding_adapters:
            roots.append(self.embedding_adapters["text"])
        return _any_requires_grad(roots)

    def _adapt(self, side: str, features: torch.Tensor) -> torch.Tensor:
        if side not in self.embedding_adapters:
            return features
        return F.normalize(self.embedding_adapters[side](features), dim=-1)

    def invalidate_text_cache(self) -> None:
        """Forget the caption table and the text side's fingerprint (it may have changed)."""
        self.clear_caption_table()
        self._text_sha = None

    def clear_caption_table(self) -> None:
        """Forget the caption table but keep the text side's fingerprint (`text_sha256`): for
        when only the text adapters may have changed, or nothing at all."""
        self._caption_cache.clear()

    def text_sha256(self) -> str:
        """sha256 of the text side as it computes (`module_sha256` of everything but the image
        tower and the logit scale/bias), remembered until `invalidate_text_cache`."""
        if self._text_sha is None:
            self._text_sha = module_sha256(self.clip, skip=("visual.", "logit_scale",
                                                            "logit_bias"))
        return self._text_sha

    def visual_sha256(self) -> str:
        """sha256 of the image tower as it computes now (image adapters on the normalised
        embeddings, such as LLU's, are not part of it)."""
        return module_sha256(self.clip.visual)

    def _device(self) -> torch.device:
        return self.clip.logit_scale.device

    def encode_captions(self, captions: list[str]) -> torch.Tensor:
        """[N, D]: the normalised (and adapted) text embedding of each caption, in chunks."""
        return self._adapt("text", self._caption_features(captions))

    def _caption_features(self, captions: list[str]) -> torch.Tensor:
        """[N, D]: the normalised text embedding of each caption before any text adapter; from
        the text store while the text side is frozen (see `_stored_caption_features`)."""
        tokens = [self.tokenizer(captions[start:start + self.text_chunk])
                  for start in range(0, len(captions), self.text_chunk)]
        if self.text_store is not None and not self.text_tower_trainable():
            return self._stored_caption_features(tokens)
        return self._encode_tokens(tokens)

    def _encode_tokens(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([F.normalize(self.clip.encode_text(t.to(self._device())).float(), dim=-1)
                          for t in tokens])

    def _stored_caption_features(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        device = self._device()
        digest = hashlib.sha256(self.text_sha256().encode())
        digest.update(f"{device.type}|{torch.is_autocast_enabled(device.type)}|"
                      f"{torch.get_autocast_dtype(device.type)}|".encode())
        for t in tokens:  # the chunks are part of the key: they are the batches encoded
            digest.update(f"{tuple(t.shape)}|{t.dtype};".encode())
            digest.update(t.contiguous().numpy().data)
        key = digest.hexdigest()
        features = self.text_store.get(key)
        if features is None:
            with torch.no_grad():
                features = self._encode_tokens(tokens)
            self.text_store.put(key, features.cpu())
        return features.to(device)

    def caption_embeddings(self, name: str) -> torch.Tensor:
        """[C, T, D]: the normalised embedding of every (class, template) caption.

        Cached unless the text side is training with gradients on; the training loop clears the
        cache at session boundaries, so evaluation after a session sees the updated text side.
        """
        return self._caption_table(
            name, cacheable=not (self.text_tower_trainable() and torch.is_grad_enabled()))

    def _caption_table(self, name: str, cacheable: bool) -> torch.Tensor:
        cached = self._caption_cache.get(name)
        if cached is not None and cacheable:
            return cached
        head = self.heads[name]
        captions = [t.format(c) for c in head.class_names for t in head.templates]
        emb = self.encode_captions(captions)
        emb = emb.view(len(head.class_names), len(head.templates), -1)
        if cacheable:
            self._caption_cache[name] = emb.detach()
        return emb

    def class_embeddings(self, name: str) -> torch.Tensor:
        """[C, D]: template-ensemble class embeddings (mean of normalised, renormalised)."""
        return F.normalize(self.caption_embeddings(name).mean(dim=1), dim=-1)

    # ---------------------------------------------------------------- forward
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """[B, D]: normalised image embeddings, before any image adapter (what evaluation can
        reuse while `visual_sha256` is unchanged)."""
        return F.normalize(self.clip.encode_image(images).float(), dim=-1)

    def adapt_image(self, features: torch.Tensor) -> torch.Tensor:
        return self._adapt("image", features)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.adapt_image(self.image_features(images))

    def logits(self, image_features: torch.Tensor, head: str | None = None) -> torch.Tensor:
        weights = self.class_embeddings(head or self.active_head)
        return self.clip.logit_scale.exp() * image_features @ weights.t()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits over the active head's classes (indexed by global class id)."""
        return self.logits(self.encode_image(images))

    # ---------------------------------------------------------------- one caption per image
    def random_templates(self, count: int, generator: torch.Generator,
                         head: str | None = None) -> torch.Tensor:
        """[count]: a prompt-template index per image, drawn uniformly from `generator`."""
        return torch.randint(len(self.heads[head or self.active_head].templates), (count,),
                             generator=generator)

    def image_captions(self, labels: torch.Tensor, template_index: torch.Tensor,
                       head: str | None = None) -> torch.Tensor:
        """[B, D]: the normalised embedding of one templated caption per image, the caption of
        image b being prompt template `template_index[b]` filled with class `labels[b]`
        (FLYP's text side). Taken from the cached caption table while the text side is frozen,
        encoded afresh (with gradients) while it trains."""
        name = head or self.active_head
        if self.text_tower_trainable():
            spec = self.heads[name]
            captions = [spec.templates[t].format(spec.class_names[y])
                        for y, t in zip(labels.tolist(), template_index.tolist())]
            return self.encode_captions(captions)
        # frozen text side: the table is cacheable (as `caption_embeddings` would decide)
        table = self._caption_table(name, cacheable=True)
        return table[labels, template_index.to(labels.device)]

    # ---------------------------------------------------------------- losses
    def flyp_loss(self, image_features: torch.Tensor, labels: torch.Tensor,
                  template_index: torch.Tensor, head: str | None = None) -> torch.Tensor:
        """Symmetric CLIP loss between images and one templated caption per image (FLYP)."""
        text = self.image_captions(labels, template_index, head)
        logits = self.clip.logit_scale.exp() * image_features @ text.t()
        target = torch.arange(len(labels), device=logits.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2

    def ce_loss(self, image_features: torch.Tensor, labels: torch.Tensor,
                head: str | None = None) -> torch.Tensor:
        return F.cross_entropy(self.logits(image_features, head), labels)
