"""CONTRIBUTING's trace "add a dataset kind", done once: a kind registered here, in the test,
declares one preparation flag, and `clbench data prepare`, its `--help`, the refusal of other
kinds' flags and `clbench data check` all work for it with no edit anywhere else. Also the
rules a preparation declaration is held to."""

from __future__ import annotations

import json
import shutil

import pytest
from paper_data import tiny_image

from clbench.cli.main import main
from clbench.errors import UserError
from clbench.scenarios import loaders
from clbench.scenarios.manifests import load_dataset_manifest, use_manifest_dirs
from clbench.scenarios.prepare import prepare_in_place

SHAPES = ("loader: flat\nsplits: [test]\nclass_names: [circle, square]\n"
          "templates: ['a drawing of a {}.']\ndescription: drawn shapes\n"
          "obtain: Draw them, one file per shape, named <class>_<n>.png.\n")


def prepare_flat(manifest, args, log):
    """Sort `<images>/<class>_<n>.<ext>` into `<dataset folder>/<split>/<class>/`, then index."""
    split = manifest.splits[0]
    for path in sorted(args.images.iterdir()):
        label = path.stem.split("_")[0]
        if label in manifest.class_names:
            (args.folder / split / label).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, args.folder / split / label / path.name)
    log(f"sorted {args.images}")
    return prepare_in_place(manifest, args.folder)


@pytest.fixture
def flat_kind(tmp_path):
    """The kind `flat`, registered for one test, and a manifest folder declaring `shapes`."""

    @loaders.register_loader("flat")
    class FlatKind(loaders.FolderKind):
        summary = "one flat folder, <class>_<n>.png"
        preparation = loaders.Preparation(
            flags=[loaders.Flag("--images", "flat folder of <class>_<n>.png files",
                                required=True)],
            run=prepare_flat)

    (tmp_path / "m" / "datasets").mkdir(parents=True)
    (tmp_path / "m" / "datasets" / "shapes.yaml").write_text(SHAPES)
    try:
        yield tmp_path / "m"
    finally:
        loaders.unregister_loader("flat")
        use_manifest_dirs(None)


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_add_a_dataset_kind(flat_kind, tmp_path, capsys):
    source, data = tmp_path / "drawn", tmp_path / "data"
    images = {name: tiny_image(source / name, seed)
              for seed, name in enumerate(["circle_0.png", "circle_1.png", "square_0.png"])}
    (source / "notes_0.png").write_text("not a shape of the dataset")
    cli = ["--manifests", str(flat_kind), "data"]

    code, out, _ = run([*cli, "prepare", "shapes", "--images", str(source), "--data-root",
                        str(data)], capsys)
    assert code == 0 and f"sorted {source}" in out and "3 images (test 3)" in out
    for name, image in images.items():
        sorted_file = data / "shapes" / "test" / name.split("_")[0] / name
        assert sorted_file.read_bytes() == image.read_bytes()
    index = json.loads((data / "shapes" / "manifest.json").read_text())
    assert index["dataset"] == "shapes" and index["totals"] == {"test": 3}
    assert index["counts"]["test"] == {"circle": 2, "square": 1}

    code, out, _ = run([*cli, "check", "shapes", "--data-root", str(data)], capsys)
    assert code == 0 and "test: 3 images, 2 classes" in out
    assert "sha256 against manifest.json" in out and out.rstrip().endswith("OK")

    # the flag's declaration is its help, in NAME's help and in the help of all kinds
    code, out, _ = run([*cli, "prepare", "shapes", "--help"], capsys)
    assert code == 0 and "prepare shapes --images DIR [--data-root DIR]" in out
    assert "flat folder of <class>_<n>.png files" in out and "Draw them" in out
    assert "--videos" not in out
    code, out, _ = run(["data", "prepare", "--help"], capsys)
    assert code == 0 and "flat: flat folder of <class>_<n>.png files" in out

    # required, and refused where the kind does not declare it (and the other way round)
    code, _, err = run([*cli, "prepare", "shapes", "--data-root", str(data)], capsys)
    assert code == 2 and "`clbench data prepare shapes` needs --images DIR" in err
    assert "hint: Draw them" in err
    code, _, err = run([*cli, "prepare", "shapes", "--images", str(source), "--out",
                        str(tmp_path / "x")], capsys)
    assert code == 2 and "--out: not used by `clbench data prepare shapes` (kind flat; it " \
                         "takes --images)" in err
    code, _, err = run(["data", "prepare", "tsi", "--images", str(source)], capsys)
    assert code == 2 and "--images: not used by `clbench data prepare tsi`" in err
    code, _, err = run(["data", "prepare", "dalle", "--image", str(source)], capsys)
    assert code == 2 and "--images: not used" in err  # argparse completes the prefix
    assert not (tmp_path / "x").exists()


def test_the_flags_a_kind_takes_come_from_its_declaration(flat_kind, tmp_path):
    """Called from Python, a kind reads the same declaration: values are converted to the
    declared type, and a flag of another kind is refused with the closest one it takes."""
    use_manifest_dirs([str(flat_kind)])
    shapes = load_dataset_manifest("shapes")
    for seed, name in enumerate(["square_3.png", "circle_7.png"]):
        tiny_image(tmp_path / "drawn" / name, seed)
    report = shapes.kind.prepare(shapes, {"--images": str(tmp_path / "drawn")},
                                 str(tmp_path / "data"), log=lambda _: None)
    assert [r.path for r in report["records"]] == ["test/circle/circle_7.png",
                                                   "test/square/square_3.png"]
    with pytest.raises(UserError, match=r"--image: not used .* did you mean --images\?"):
        shapes.kind.prepare(shapes, {"--image": "x"})
    tsi = load_dataset_manifest("tsi")
    with pytest.raises(UserError, match="--workers: expected an integer, got 'many'"):
        tsi.kind.prepare(tsi, {"--videos": "clips", "--workers": "many"})


@pytest.mark.parametrize("build, message", [
    (lambda: loaders.Flag("--data-root", "x"), "every `clbench data prepare` has it"),
    (lambda: loaders.Flag("videos", "x"), "a flag is '--' and lower-case words"),
    (lambda: loaders.Flag("--from", "x"), "'from' cannot be an attribute name; pass dest="),
    (lambda: loaders.Flag("--fast", "x", type=bool, required=True), "a switch is off unless"),
    (lambda: loaders.Flag("--size", "x", type=tuple), "type must be one of"),
    (lambda: loaders.Preparation([loaders.Flag("--a", "x"), loaders.Flag("--a", "y")], print),
     "name --a declared twice"),
])
def test_a_bad_declaration_fails_where_it_is_written(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_flag_has_one_type_across_kinds():
    """The CLI parses a flag once for every kind, so a kind may share another's flag only with
    its type; the refused kind is not registered."""
    with pytest.raises(ValueError, match=r"declares --workers as str, kind 'tsi' as int"):
        @loaders.register_loader("odd")
        class Odd(loaders.DatasetKind):
            preparation = loaders.Preparation([loaders.Flag("--workers", "x", type=str)], print)
    assert "odd" not in loaders.kinds()
