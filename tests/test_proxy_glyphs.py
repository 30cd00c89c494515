"""The glyph world: real TrueType fonts, deterministic renders, captions that name the class."""

from __future__ import annotations

import itertools

import pytest
import torch

from clbench.scenarios.proxy import glyphs

DIGITS = "0123456789"


def _masks(file: str, chars: str) -> list[torch.Tensor]:
    return [glyphs.draw_mask(c, file, 26, 0.0, 0.0, 0.0) for c in chars]


@pytest.mark.parametrize("face", glyphs.FACES, ids=lambda f: f.file)
def test_every_face_draws_distinct_characters(face: glyphs.Face) -> None:
    assert (glyphs.font_dir() / face.file).is_file()
    masks = _masks(face.file, DIGITS + "AKXZ")
    assert all(float(m.sum()) > 20 for m in masks)  # ink, not an empty image
    for a, b in itertools.combinations(masks, 2):
        assert float((a - b).abs().sum()) > 10  # not one box for every character


@pytest.mark.parametrize("file", [f for f in glyphs.EXCLUDED_FILES if f != "cmsy10.ttf"])
def test_excluded_fonts_do_not_draw_the_digits(file: str) -> None:
    if not (glyphs.font_dir() / file).is_file():
        pytest.skip(f"{file} not shipped by this matplotlib")
    masks = _masks(file, DIGITS)
    # Nothing, one box for all, or symbols shared by several digits: never ten distinct digits.
    assert any(torch.equal(a, b) for a, b in itertools.combinations(masks, 2))
    assert file not in {f.file for f in glyphs.FACES}


def test_faces_are_the_documented_ones() -> None:
    files = [f.file for f in glyphs.FACES]
    assert len(files) == len(set(files)) == 21
    assert sum(f.startswith("DejaVu") for f in files) == 12
    assert not any("Display" in f or "NonUni" in f or "Siz" in f for f in files)


def test_classes_and_chars() -> None:
    assert glyphs.DIGIT_CLASSES[7] == "digit seven" and glyphs.class_char("digit seven") == "7"
    assert glyphs.class_char("letter k") == "K"
    assert len(glyphs.LETTER_CLASSES) == 24 and "letter i" not in glyphs.LETTER_CLASSES
    assert "letter o" not in glyphs.LETTER_CLASSES
    assert not set(glyphs.DIGIT_CLASSES) & set(glyphs.LETTER_CLASSES)


def test_renders_are_deterministic_and_seeded() -> None:
    classes = ("digit one", "letter k")
    a, la = glyphs.render_glyphs(classes, 3, seed=9)
    glyphs.glyph_masks.cache_clear()  # a real re-render, not the cache
    torch.manual_seed(5)
    b, lb = glyphs.render_glyphs(classes, 3, seed=9)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert a.shape == (6, 3, 32, 32) and float(a.min()) >= 0 and float(a.max()) <= 1
    c, _ = glyphs.render_glyphs(classes, 3, seed=10)
    assert not torch.equal(a, c)


def test_foreground_background_contrast() -> None:
    masks, _, _ = glyphs.glyph_masks(("digit eight",), 16, 3)
    img = glyphs.colourise(masks, torch.Generator().manual_seed(0), noise=0.0)
    lum = img.mean(1, keepdim=True)
    ink, paper = masks > 0.99, masks < 0.01
    for i in range(len(img)):
        gap = lum[i][ink[i]].mean() - lum[i][paper[i]].mean()
        assert abs(float(gap)) >= 0.3


def test_captions_name_the_class_and_face() -> None:
    labels = torch.tensor([7, 12])
    caps = glyphs.glyph_captions(glyphs.GLYPH_CLASSES, labels, [5, 0],
                                 list(range(glyphs.N_GLYPH_TEMPLATES))[1:3])
    assert caps[0] == "the digit seven in bold serif font."
    assert "letter c" in caps[1]
