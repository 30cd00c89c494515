"""Declarations: `include:` with overrides, user manifest folders ($CLBENCH_MANIFESTS and
`use_manifest_dirs`), the dataset-kind registry, one-line errors for bad YAML, and
`clbench data prepare` refusing bad output folders."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from paper_data import make_dalle, tiny_image

from clbench.cli.main import main
from clbench.errors import ConfigError, UserError
from clbench.scenarios import loaders, manifests
from clbench.scenarios.datasets import load_split
from clbench.scenarios.manifests import (
    MANIFESTS_ENV,
    list_datasets,
    list_scenarios,
    load_dataset_manifest,
    load_scenario_manifest,
    use_manifest_dirs,
)
from clbench.scenarios.stream import load_scenario

BUILT_IN = manifests.manifest_dir()
CAPTIONS = list(load_dataset_manifest("tsi").class_names)


@pytest.fixture(autouse=True)
def no_user_folders(monkeypatch):
    monkeypatch.delenv(MANIFESTS_ENV, raising=False)
    use_manifest_dirs(None)
    yield
    use_manifest_dirs(None)


def cli(args, capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def user_folder(root: Path, scenarios: dict[str, str] | None = None,
                datasets: dict[str, str] | None = None) -> Path:
    for sort, files in (("scenarios", scenarios or {}), ("datasets", datasets or {})):
        (root / sort).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / sort / f"{name}.yaml").write_text(text)
    return root


# --------------------------------------------------------------------------- include


@pytest.mark.parametrize("name, base, differs", [
    ("gts-50shot", "gts-20shot", {"shots": 50}),
    ("tsi-50shot", "tsi-20shot", {"shots": 50}),
    ("tsi-50shot-actions", "tsi-20shot-actions", {"shots": 50}),
    ("proxy-50shot", "proxy-20shot", {"shots": 50}),
])
def test_rewritten_scenarios_resolve_to_their_base_but_shots(name, base, differs):
    fifty, twenty = load_scenario_manifest(name), load_scenario_manifest(base)
    assert fifty.includes == (str((BUILT_IN / "scenarios" / f"{base}.yaml").resolve()),)
    expected = {**twenty.declaration, **differs, "name": name}
    assert {k: v for k, v in fifty.declaration.items() if k != "description"} == \
        {k: v for k, v in expected.items() if k != "description"}
    assert fifty.description.replace("50", "20") == twenty.description.replace("50", "20")
    assert fifty.shots == 50 and fifty.session_sizes == twenty.session_sizes
    assert fifty.class_order == twenty.class_order and fifty.training == twenty.training
    assert fifty.strategy_training == twenty.strategy_training


def test_proxy_50shot_gets_the_per_strategy_settings():
    manifest = load_scenario_manifest("proxy-50shot")
    assert manifest.strategy_training["lorsu"] == {"lr": 1.0e-4}  # proxy-20shot's tuned rate
    assert manifest.strategy_training == load_scenario_manifest("proxy-20shot").strategy_training


def test_hash_of_a_file_without_include_is_its_text_hash():
    path = BUILT_IN / "scenarios" / "gts-20shot.yaml"
    assert load_scenario_manifest("gts-20shot").hash == \
        hashlib.sha256(path.read_text().encode()).hexdigest()[:16]
    assert load_scenario_manifest("gts-50shot").hash != load_scenario_manifest("gts-20shot").hash


def test_include_overrides_deep_merge_and_list_replace(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("include: proxy-20shot\nshots: 3\neval_sets: [proxy-clean]\n"
                    "training: {epochs: 2}\nstrategy_training: {lorsu: {epochs: 1}}\n")
    manifest = load_scenario_manifest(str(path))
    assert manifest.name == "mine" and manifest.origin == "file"  # name is never inherited
    assert manifest.shots == 3 and manifest.eval_sets == ("proxy-clean",)
    assert manifest.training == {"epochs": 2, "batch_size": 8, "lr": 2.0e-5}
    assert manifest.strategy_training["lorsu"] == {"lr": 1.0e-4, "epochs": 1}  # lr inherited
    assert manifest.session_sizes == (4, 4, 4, 4, 4)
    scenario = load_scenario(str(path), seed=0)
    assert [len(s.sample_indices) for s in scenario.sessions] == [12] * 5


def test_include_chains_by_relative_path_and_the_hash_follows_the_base(tmp_path):
    (tmp_path / "base").mkdir()
    base = tmp_path / "base" / "b.yaml"
    base.write_text("include: proxy-20shot\ntraining: {epochs: 4}\n")
    top = tmp_path / "top.yaml"
    top.write_text("include: base/b.yaml\nshots: 2\n")
    manifest = load_scenario_manifest(str(top))
    assert manifest.includes == (str(base.resolve()),
                                 str((BUILT_IN / "scenarios" / "proxy-20shot.yaml").resolve()))
    assert manifest.training["epochs"] == 4 and manifest.shots == 2
    before = manifest.hash
    base.write_text("include: proxy-20shot\ntraining: {epochs: 5}\n")
    assert load_scenario_manifest(str(top)).hash != before
    base.write_text("# a comment only\ninclude: proxy-20shot\ntraining: {epochs: 4}\n")
    assert load_scenario_manifest(str(top)).hash == before  # resolved content, not text


def test_include_cycle_and_missing_include_are_one_line_errors(tmp_path, capsys):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("include: b.yaml\nshots: 2\n")
    b.write_text("include: a.yaml\n")
    with pytest.raises(ConfigError, match=r"include 'a.yaml' makes a cycle \(a.yaml -> b.yaml "
                                          r"-> a.yaml\)") as err:
        load_scenario_manifest(str(a))
    assert str(b) in str(err.value)
    a.write_text("include: a.yaml\n")
    with pytest.raises(ConfigError, match="makes a cycle"):
        load_scenario_manifest(str(a))
    a.write_text("include: gts-20shott\n")
    with pytest.raises(ConfigError, match=r"include 'gts-20shott': unknown scenario "
                                          r"'gts-20shott' \(did you mean: gts-20shot"):
        load_scenario_manifest(str(a))
    a.write_text("include: nowhere/base.yaml\n")
    code, _, err = cli(["run", "--strategy", "fft", "--scenario", str(a)], capsys)
    assert code == 2 and str(a) in err and "include 'nowhere/base.yaml': no such file" in err
    assert len([x for x in err.splitlines() if x.startswith("error:")]) == 1


# --------------------------------------------------------------------------- user folders


MINE = "include: proxy-20shot\nname: mine-3shot\nshots: 3\n"
FOLDER_DATASET = ("loader: folder\nsplits: [train, test]\nclass_names: [cat, dog]\n"
                  "templates: ['a photo of a {}.']\ndescription: my pets\n")


def test_user_folder_via_env_is_listed_with_its_origin(tmp_path, monkeypatch, capsys):
    folder = user_folder(tmp_path / "mine", {"mine-3shot": MINE}, {"pets": FOLDER_DATASET})
    monkeypatch.setenv(MANIFESTS_ENV, os.pathsep.join([str(folder)]))
    assert "mine-3shot" in list_scenarios() and "pets" in list_datasets()
    assert "gts-20shot" in list_scenarios()  # the built-in ones stay
    code, out, _ = cli(["list", "scenarios"], capsys)
    line = next(x for x in out.splitlines() if x.startswith("mine-3shot"))
    assert "3-shot" in line and f"[user: {folder.resolve()}]" in line
    code, out, _ = cli(["list", "scenarios", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["mine-3shot"]["origin"] == str(folder.resolve())
    assert rows["mine-3shot"]["includes"] == ["proxy-20shot"]
    assert rows["gts-20shot"]["origin"] == "built-in"
    code, out, _ = cli(["list", "datasets", "--json"], capsys)
    pets = next(r for r in json.loads(out) if r["name"] == "pets")
    assert pets["loader"] == "folder" and pets["origin"] == str(folder.resolve())
    scenario = load_scenario("mine-3shot", seed=0)
    assert scenario.name == "mine-3shot" and len(scenario.sessions[0].sample_ids) == 12


def test_user_folder_via_the_setter_replaces_the_env(tmp_path, monkeypatch):
    env_folder = user_folder(tmp_path / "env", {"from-env": MINE.replace("mine-3shot",
                                                                         "from-env")})
    set_folder = user_folder(tmp_path / "set", {"mine-3shot": MINE})
    monkeypatch.setenv(MANIFESTS_ENV, str(env_folder))
    assert "from-env" in list_scenarios()
    use_manifest_dirs([str(set_folder)])
    assert "mine-3shot" in list_scenarios() and "from-env" not in list_scenarios()
    assert load_scenario_manifest("mine-3shot").origin == str(set_folder.resolve())
    use_manifest_dirs(None)
    assert "from-env" in list_scenarios()


def test_user_dataset_is_prepared_and_loaded_like_a_built_in_one(tmp_path, monkeypatch, capsys):
    use_manifest_dirs([str(user_folder(tmp_path / "m", datasets={"pets": FOLDER_DATASET}))])
    data = tmp_path / "data"
    for split in ("train", "test"):
        for i, name in enumerate(("cat", "dog")):
            tiny_image(data / "pets" / split / name / f"{i}.png", i)
    code, out, _ = cli(["data", "prepare", "pets", "--data-root", str(data)], capsys)
    assert code == 0 and "4 images" in out
    assert json.loads((data / "pets" / "manifest.json").read_text())["dataset"] == "pets"
    train = load_split(load_dataset_manifest("pets"), "train", str(data))
    assert train.class_names == ["cat", "dog"] and train.prepared_sha256
    code, out, _ = cli(["data", "check", "pets", "--data-root", str(data)], capsys)
    assert code == 0 and "OK" in out
    code, out, _ = cli(["data", "show", "pets"], capsys)
    assert "declared in:" in out and "<data root>/pets/<split>/<class name>" in out


def test_a_user_file_named_like_a_built_in_is_refused(tmp_path, capsys):
    folder = user_folder(tmp_path / "m", {"gts-20shot": MINE.replace("mine-3shot", "gts-20shot")})
    use_manifest_dirs([str(folder)])
    with pytest.raises(UserError, match="scenario 'gts-20shot' is declared twice") as err:
        load_scenario_manifest("proxy-20shot")
    assert str(BUILT_IN / "scenarios" / "gts-20shot.yaml") in str(err.value)
    assert str(folder.resolve() / "scenarios" / "gts-20shot.yaml") in str(err.value)
    other = user_folder(tmp_path / "n", datasets={"pets": FOLDER_DATASET})
    again = user_folder(tmp_path / "o", datasets={"pets": FOLDER_DATASET})
    use_manifest_dirs([str(other), str(again)])
    code, _, err = cli(["list", "datasets"], capsys)
    assert code == 2 and "dataset 'pets' is declared twice" in err
    assert str(other.resolve()) in err and str(again.resolve()) in err


def test_missing_or_empty_user_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(MANIFESTS_ENV, str(tmp_path / "nope"))
    code, _, err = cli(["list", "scenarios"], capsys)
    assert code == 2 and f"${MANIFESTS_ENV}: manifest folder {tmp_path / 'nope'} not found" in err
    use_manifest_dirs([str(tmp_path)])
    code, _, err = cli(["list", "scenarios"], capsys)
    assert code == 2 and "--manifests" in err and "neither a datasets/ nor a scenarios/" in err


@pytest.mark.parametrize("text, message", [
    (b"target: proxy\nshots: 2\nsessions: {sizes: [four, 4]}\n",
     "sessions.sizes[0] must be a positive integer, got 'four'"),
    (b"target: proxy\nshots: 2\nsessions: {sizes: [2]}\neval_sets: proxy-clean\n",
     "eval_sets must be a list of strings, got 'proxy-clean'"),
    (b"target: proxy\nshots: two\nsessions: {sizes: [2]}\n",
     "shots must be a positive integer, got 'two'"),
    (b"target: proxy\nshots: 2\nsessions: {sizes: [2]\n", "malformed YAML in"),
    (b"target: proxy\ndescription: caf\xe9\n", "not UTF-8 text (byte 0xe9"),
    (b"- a list\n", "expected a mapping at the top level"),
    (b"target: proxy\nshots: 2\nsesions: {sizes: [2]}\n",
     "unknown key 'sesions' (did you mean 'sessions'?)"),
    (b"name: other\ntarget: proxy\nshots: 2\nsessions: {sizes: [2]}\n",
     "name 'other' differs from the file name 'bad'"),
    (b"target: proxy\nshots: 2\nsessions: {sizes: [2]}\nseeds: 0\n",
     "seeds must be a positive integer (how many seeds a result needs), got 0"),
])
def test_bad_user_scenario_is_a_one_line_error_naming_file_and_key(tmp_path, capsys, text,
                                                                    message):
    folder = user_folder(tmp_path / "m")
    (folder / "scenarios" / "bad.yaml").write_bytes(text)
    use_manifest_dirs([str(folder)])
    for args in (["list", "scenarios"], ["run", "--strategy", "fft", "--scenario", "bad"]):
        code, _, err = cli(args, capsys)
        assert code == 2 and message in err and str(folder / "scenarios" / "bad.yaml") in err
        assert len([x for x in err.splitlines() if x.startswith("error:")]) == 1


@pytest.mark.parametrize("text, message", [
    ("loader: foldr\nsplits: [test]\n",
     "loader: unknown dataset kind (loader) 'foldr' (did you mean: folder"),
    ("loader: folder\nsplits: [test]\nexpected: {test: many}\n",
     "expected.test must be a non-negative integer, got 'many'"),
    ("loader: folder\nsplits: [test]\nclass_names: [cat, 3]\n",
     "class_names[1] must be a string, got 3"),
])
def test_bad_user_dataset(tmp_path, capsys, text, message):
    use_manifest_dirs([str(user_folder(tmp_path / "m", datasets={"bad": text}))])
    code, _, err = cli(["list", "datasets"], capsys)
    assert code == 2 and message in err and "bad.yaml" in err


# --------------------------------------------------------------------------- loader registry


def test_every_declared_kind_is_registered_and_unknown_ones_suggest():
    assert set(loaders.kinds()) >= {"proxy", "folder", "tsi", "dalle", "gtsrb", "imagenet"}
    for name in list_datasets():
        manifest = load_dataset_manifest(name)
        assert loaders.kind_of(manifest).name == manifest.loader
    with pytest.raises(ConfigError, match=r"unknown dataset kind \(loader\) 'gtsbr' "
                                          r"\(did you mean: gtsrb"):
        loaders.get_kind("gtsbr")


def test_a_new_kind_is_one_registration(tmp_path, monkeypatch):
    @loaders.register_loader("two-pets")
    class TwoPets(loaders.FolderKind):
        summary = "test kind"

        def default_layout(self, manifest):
            return "anywhere"

    try:
        folder = user_folder(tmp_path / "m", datasets={
            "twin": FOLDER_DATASET.replace("loader: folder", "loader: two-pets")})
        use_manifest_dirs([str(folder)])
        manifest = load_dataset_manifest("twin")
        assert isinstance(loaders.kind_of(manifest), TwoPets)
        with pytest.raises(UserError) as err:
            load_split(manifest, "train", str(tmp_path / "data"))
        assert "Expected layout: anywhere" in err.value.hint
        with pytest.raises(ValueError, match="registered twice"):
            loaders.register_loader("two-pets")(TwoPets)
    finally:
        loaders.unregister_loader("two-pets")


def test_proxy_has_nothing_to_check_or_prepare(capsys):
    code, out, _ = cli(["data", "check", "proxy"], capsys)
    assert code == 0 and "nothing to check" in out
    code, _, err = cli(["data", "prepare", "proxy"], capsys)
    assert code == 2 and "has nothing to prepare" in err and "tsi" in err
    code, _, err = cli(["data", "prepare", "dalee"], capsys)
    assert code == 2 and "did you mean: dalle" in err


# --------------------------------------------------------------------------- prepare outputs


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_prepare_out_is_an_existing_file(tmp_path, capsys):
    source = make_dalle(tmp_path / "gen", CAPTIONS, per_caption=1)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    before = listing(tmp_path)
    for out in (blocker, blocker / "below"):
        code, _, err = cli(["data", "prepare", "dalle", "--from", str(source), "--out",
                            str(out)], capsys)
        assert code == 2 and str(out) in err and "file" in err
        assert len([x for x in err.splitlines() if x.startswith("error:")]) == 1
    videos = tmp_path / "clips"
    videos.mkdir()
    (videos / "Walk_p03_r00_v00_c01.mp4").write_bytes(b"not a video")
    before = listing(tmp_path)
    code, _, err = cli(["data", "prepare", "tsi", "--videos", str(videos), "--out",
                        str(blocker)], capsys)
    assert code == 2 and f"--out {blocker} is a file" in err
    assert listing(tmp_path) == before and blocker.read_text() == "x"


def test_prepare_out_in_a_read_only_folder(tmp_path, capsys):
    source = make_dalle(tmp_path / "gen", CAPTIONS, per_caption=1)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write to a 0o555 folder (root)")
        for out in (locked, locked / "new"):
            code, _, err = cli(["data", "prepare", "dalle", "--from", str(source), "--out",
                                str(out)], capsys)
            assert code == 2 and "not writable" in err and str(out) in err
        assert listing(locked) == []
    finally:
        locked.chmod(0o755)


def test_prepare_rejects_options_its_kind_does_not_use(tmp_path, capsys):
    code, _, err = cli(["data", "prepare", "gts", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "--out: not used by `clbench data prepare gts`" in err
    assert not (tmp_path / "x").exists()


def test_rejected_dalle_source_writes_nothing(tmp_path, capsys):
    source = make_dalle(tmp_path / "gen", CAPTIONS, per_caption=1)
    (source / "eating" / "00.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, _, err = cli(["data", "prepare", "dalle", "--from", str(source), "--out",
                        str(tmp_path / "out")], capsys)
    assert code == 2 and "eating/00.png" in err and not (tmp_path / "out").exists()


def test_file_index_error_texts_carry_no_absolute_paths(tmp_path, capsys):
    videos = tmp_path / "clips" / "batch"
    videos.mkdir(parents=True)
    (videos / "Walk_p03_r00_v00_c01.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    code, _, _ = cli(["data", "prepare", "tsi", "--videos", str(tmp_path / "clips"), "--out",
                      str(out)], capsys)
    assert code == 0
    text = (out / "manifest.json").read_text()
    (unreadable,) = json.loads(text)["info"]["skipped"]["unreadable"]
    assert unreadable.startswith("Walk_p03_r00_v00_c01.mp4: ")
    assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text


@pytest.mark.parametrize("scenario", ["proxy-20shot", "proxy-hand-20shot"])
def test_every_tuned_entry_names_the_grid_the_comparison_script_tunes(scenario):
    """Each strategy_training entry's command is the one `scripts/compare_strategies.py tune`
    runs, so `tune` reproduces the declared settings."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "compare_strategies.py"
    spec = importlib.util.spec_from_file_location("compare_strategies", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    manifest = load_scenario_manifest(scenario)
    declared = Path(manifest.path).read_text()
    for strategy, grids in script.GRIDS.items():
        command = f"# clbench tune --strategy {strategy} --scenario {scenario} " + " ".join(
            f"--grid {g}" for g in grids)
        assert command in declared, command
        assert strategy in manifest.strategy_training


def test_seeds_a_result_needs_default_to_three_and_can_be_declared(tmp_path):
    from clbench.scenarios.manifests import load_scenario_manifest

    assert load_scenario_manifest("proxy-20shot").seeds == 3
    folder = user_folder(tmp_path / "m", {"five": "include: proxy-20shot\nseeds: 5\n"})
    use_manifest_dirs([str(folder)])
    assert load_scenario_manifest("five").seeds == 5
