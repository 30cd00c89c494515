"""Printed characters for the proxy world: digits and capital letters in real TrueType fonts.

The proxy CLIP also knows printed characters, so the handwriting target (``handwriting.py``) has
the same relation to pretraining as a home camera to CLIP's web photos: known classes (the ten
digits) in a style the model never saw. Glyphs are rendered with PIL from the fonts matplotlib
ships (``matplotlib.get_data_path()/fonts/ttf``): the 12 DejaVu Sans/Serif/Mono faces, 4
STIXGeneral faces and the Computer Modern cmr10, cmb10, cmti10, cmss10 and cmtt10. The other
files there (DejaVu*Display, LastResort, STIXNonUni*, STIXSiz*, cmex10, cmsy10, cmmi10) draw
empty boxes or other symbols for plain letters and digits, so they are left out
(``tests/test_proxy_glyphs.py`` checks both lists).

A render is 32x32 RGB: a random font, size, offset and rotation (within +-15 degrees), drawn at
twice the resolution and box-downsampled, then coloured with a random foreground and background
whose luminances differ by at least 0.4. Ink masks are rendered once per (seed, classes, count)
and cached in-process; colouring is vectorised torch. Everything is deterministic given a seed.

Classes: ``digit zero`` ... ``digit nine`` (digit words, not numerals) and ``letter a`` ...
``letter z`` for the 24 capital letters other than I and O (ambiguous with one and zero; the word
tokenizer is case-insensitive, so lowercase letters would need other class names and are not in
this world). Captions name the class and often the typeface: "the letter k in bold serif font."
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

IMAGE_SIZE = 32
_SUPER = 2  # drawn at 2x, then box-downsampled: anti-aliased strokes

DIGIT_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)
DIGIT_CLASSES: tuple[str, ...] = tuple(f"digit {w}" for w in DIGIT_WORDS)
LETTERS: tuple[str, ...] = tuple(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "IO")
LETTER_CLASSES: tuple[str, ...] = tuple(f"letter {c.lower()}" for c in LETTERS)
GLYPH_CLASSES: tuple[str, ...] = DIGIT_CLASSES + LETTER_CLASSES


@dataclass(frozen=True)
class Face:
    file: str
    family: str  # caption word: sans, serif, mono
    style: str  # caption word: regular, bold, italic (obliques are called italic)


FACES: tuple[Face, ...] = (
    Face("DejaVuSans.ttf", "sans", "regular"),
    Face("DejaVuSans-Bold.ttf", "sans", "bold"),
    Face("DejaVuSans-Oblique.ttf", "sans", "italic"),
    Face("DejaVuSans-BoldOblique.ttf", "sans", "bold"),
    Face("DejaVuSerif.ttf", "serif", "regular"),
    Face("DejaVuSerif-Bold.ttf", "serif", "bold"),
    Face("DejaVuSerif-Italic.ttf", "serif", "italic"),
    Face("DejaVuSerif-BoldItalic.ttf", "serif", "bold"),
    Face("DejaVuSansMono.ttf", "mono", "regular"),
    Face("DejaVuSansMono-Bold.ttf", "mono", "bold"),
    Face("DejaVuSansMono-Oblique.ttf", "mono", "italic"),
    Face("DejaVuSansMono-BoldOblique.ttf", "mono", "bold"),
    Face("STIXGeneral.ttf", "serif", "regular"),
    Face("STIXGeneralBol.ttf", "serif", "bold"),
    Face("STIXGeneralItalic.ttf", "serif", "italic"),
    Face("STIXGeneralBolIta.ttf", "serif", "bold"),
    Face("cmr10.ttf", "serif", "regular"),
    Face("cmb10.ttf", "serif", "bold"),
    Face("cmti10.ttf", "serif", "italic"),
    Face("cmss10.ttf", "sans", "regular"),
    Face("cmtt10.ttf", "mono", "regular"),
)
# Files in matplotlib's font folder that do not draw plain letters and digits (boxes or symbols).
EXCLUDED_FILES: tuple[str, ...] = (
    "DejaVuSansDisplay.ttf", "DejaVuSerifDisplay.ttf", "LastResortHE-Regular.ttf",
    "STIXNonUni.ttf", "STIXSizOneSymReg.ttf", "cmex10.ttf", "cmsy10.ttf",
)
GLYPH_WORDS: tuple[str, ...] = (
    "digit", "letter", "font", "sans", "serif", "mono", "regular", "bold", "italic", "printed",
    "number", "character",
)


def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@cache
def _font(file: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(font_dir() / file), size)


def class_char(name: str) -> str:
    """The character a glyph class draws: ``digit seven`` -> "7", ``letter k`` -> "K"."""
    kind, word = name.split()
    return str(DIGIT_WORDS.index(word)) if kind == "digit" else word.upper()


def draw_mask(char: str, file: str, size: int, dx: float, dy: float, angle: float) -> torch.Tensor:
    """Ink coverage [32, 32] in [0, 1] of one character (font size in output pixels)."""
    from PIL import Image, ImageDraw

    big = IMAGE_SIZE * _SUPER
    img = Image.new("L", (big, big), 0)
    ImageDraw.Draw(img).text(
        (big / 2 + dx * _SUPER, big / 2 + dy * _SUPER), char, fill=255,
        font=_font(file, size * _SUPER), anchor="mm",
    )
    img = img.rotate(angle, resample=Image.BILINEAR)
    img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX)
    return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(
        IMAGE_SIZE, IMAGE_SIZE).float() / 255


@cache
def glyph_masks(
    class_names: tuple[str, ...], per_class: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Ink masks [N, 1, 32, 32], labels (index into class_names) and face index of each render.

    Cached in-process (callers must not modify the tensors); deterministic given the seed.
    """
    rng = random.Random(seed)
    masks, labels, faces = [], [], []
    for k, name in enumerate(class_names):
        char = class_char(name)
        for _ in range(per_class):
            f = rng.randrange(len(FACES))
            size = rng.randint(22, 30)
            dx, dy = rng.uniform(-2.5, 2.5), rng.uniform(-2.5, 2.5)
            angle = rng.uniform(-15.0, 15.0)
            masks.append(draw_mask(char, FACES[f].file, size, dx, dy, angle))
            labels.append(k)
            faces.append(f)
    return torch.stack(masks)[:, None], torch.tensor(labels), tuple(faces)


def colourise(masks: torch.Tensor, gen: torch.Generator, noise: float = 0.02) -> torch.Tensor:
    """Random foreground/background colours (luminance gap >= 0.4) for ink masks [N, 1, H, W]."""
    n = masks.shape[0]
    lo = 0.05 + 0.3 * torch.rand(n, generator=gen)
    hi = lo + 0.4 + (0.95 - lo - 0.4) * torch.rand(n, generator=gen)
    dark_ink = torch.rand(n, generator=gen) < 0.5
    fg_l, bg_l = torch.where(dark_ink, lo, hi), torch.where(dark_ink, hi, lo)

    def colour(lum: torch.Tensor) -> torch.Tensor:
        # A grey of that luminance plus a zero-mean chroma offset (often none).
        chroma = (torch.rand(n, 3, generator=gen) - 0.5) * 0.5
        chroma = chroma - chroma.mean(1, keepdim=True)
        chroma = chroma * (torch.rand(n, 1, generator=gen) < 0.6)
        return (lum[:, None] + chroma).clamp(0, 1)[:, :, None, None]

    fg, bg = colour(fg_l), colour(bg_l)
    img = bg * (1 - masks) + fg * masks
    img = img + noise * torch.randn(img.shape, generator=gen)
    return img.clamp(0, 1)


def render_glyphs(
    class_names: tuple[str, ...] | list[str], per_class: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 3, 32, 32] and labels of ``per_class`` renders of each glyph class."""
    masks, labels, _ = glyph_masks(tuple(class_names), per_class, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    return colourise(masks, gen), labels.clone()


_TEMPLATES_GLYPH = (
    "a photo of the {}.",
    "the {} in {} {} font.",
    "a picture of a {}.",
    "a printed {}.",
    "an image of the {} in {} font.",
    "a {} in {} {} font.",
)


def glyph_captions(
    class_names: tuple[str, ...], labels: torch.Tensor, faces: list[int], template_ids: list[int]
) -> list[str]:
    """Captions naming each render's class and, for some templates, its typeface."""
    out = []
    for k, f, t in zip(labels.tolist(), faces, template_ids):
        name, face = class_names[k], FACES[f]
        tpl = _TEMPLATES_GLYPH[t % len(_TEMPLATES_GLYPH)]
        n_slots = tpl.count("{}")
        if n_slots == 1:
            out.append(tpl.format(name))
        elif n_slots == 2:
            out.append(tpl.format(name, face.style))
        else:
            out.append(tpl.format(name, face.style, face.family))
    return out


N_GLYPH_TEMPLATES = len(_TEMPLATES_GLYPH)


def glyph_vocabulary() -> set[str]:
    words = set(GLYPH_WORDS) | set(DIGIT_WORDS) | {c.lower() for c in LETTERS}
    words |= {f.family for f in FACES} | {f.style for f in FACES}
    for t in _TEMPLATES_GLYPH:
        words |= set(t.replace("{}", " ").replace(".", " . ").split())
    return words
