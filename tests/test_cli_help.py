"""What the command line says about itself matches what it does: `runs --help` names exactly
the keys `runs --json` prints, `list strategies -v` shows every parameter's allowed range (the
hint of a bad strategy value promises it), and ranges read as a person writes them."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from leaderboard_synthetic import Spec, add_run

from clbench.cli.main import main
from clbench.errors import ConfigError
from clbench.options import build_dataclass, option
from clbench.store import Store


def help_text(argv: list[str], capsys) -> str:
    """`clbench ARGV --help`, its lines joined (argparse wraps them anywhere)."""
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_runs_help_names_exactly_the_keys_runs_json_prints(tmp_path, capsys):
    db = tmp_path / "runs.db"
    with Store(f"sqlite:///{db}") as store:
        add_run(store, Spec("lora", gain=0.3, drop=0.1), 0)
        add_run(store, Spec("fft", gain=0.2, drop=0.2, third_party=True), 1)
    assert main(["runs", "--json", "--db", str(db)]) == 0
    printed = [list(row) for row in json.loads(capsys.readouterr().out)]
    assert len(printed) == 2 and printed[0] == printed[1]
    named = re.search(r"--json +a JSON list, one object per run with the keys (.*?) --limit",
                      help_text(["runs"], capsys))
    assert named, "runs --help does not list the keys of --json"
    assert named.group(1).split(", ") == printed[0]


@pytest.mark.parametrize("bounds, text", [
    ({"low": 0, "low_open": True}, "> 0"),
    ({"low": 0.0, "low_open": True}, "> 0"),  # issue 27: printed "(0.0, inf]"
    ({"low": 1}, "≥ 1"),
    ({"high": 100.0}, "≤ 100"),
    ({"low": 0, "high": 1}, "0 to 1"),
    ({"low": 0.0, "low_open": True, "high": 100.0}, "> 0 and ≤ 100"),
    ({"low": 1e-8, "high": 0.5}, "1e-08 to 0.5"),
    ({}, None),
])
def test_a_range_reads_as_a_person_writes_it(bounds, text):
    from clbench.options import range_text

    assert range_text({"low": None, "high": None, "low_open": False, **bounds}) == text


def test_a_value_outside_its_range_is_refused_in_those_words():
    @dataclasses.dataclass
    class Config:
        lr: float = option(1e-4, "learning rate", low=0.0, low_open=True)
        share: float = option(0.5, "a share", low=0, high=1)

    with pytest.raises(ConfigError) as refused:
        build_dataclass(Config, {"lr": 0}, "training.")
    assert str(refused.value) == "training.lr: 0.0 is outside the allowed range (> 0)"
    with pytest.raises(ConfigError, match=r"^strategy.share: 1.5 is outside the allowed range "
                                          r"\(0 to 1\)$"):
        build_dataclass(Config, {"share": 1.5}, "strategy.")


def listed_parameters(out: str) -> dict[str, dict[str, str]]:
    """`list strategies -v` as {strategy: {parameter: its line}}."""
    listed: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        if not line.startswith(" "):
            current = listed.setdefault(line.split()[0], {})
        elif not line.strip().startswith("BROKEN"):
            current[line.split()[0]] = line
    return listed


def test_list_strategies_v_shows_every_parameters_range(capsys):
    """Each bounded parameter's line says its range, in the words of the error; the hint of a
    bad strategy value sends the user there."""
    from clbench.strategies import registry

    assert main(["list", "strategies", "-v"]) == 0
    listed = listed_parameters(capsys.readouterr().out)
    assert "default 32, allowed ≥ 1: " in listed["lora"]["rank"]
    assert "default None, allowed > 0: " in listed["lora"]["alpha"]
    assert ", allowed " not in listed["lora"]["targets"]
    from clbench.options import range_text

    bounded = 0
    for name, info in registry.built_ins().items():
        fields = dataclasses.fields(info.config)
        assert list(listed[name]) == [f.name for f in fields], name
        for field in fields:
            allowed = range_text(field.metadata)
            if allowed:
                assert f", allowed {allowed}: " in listed[name][field.name], (name, field.name)
                bounded += 1
            else:
                assert ", allowed " not in listed[name][field.name], (name, field.name)
    assert bounded > 10
    with pytest.raises(ConfigError) as refused:
        registry.check_params("lora", {"rank": 0})
    assert "is outside the allowed range (≥ 1)" in str(refused.value)
    assert "`clbench list strategies -v` lists every strategy parameter with its range" in \
        refused.value.hint


def test_list_strategies_v_json_has_each_parameters_range(capsys):
    assert main(["list", "strategies", "-v", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    params = {p["name"]: p for p in rows["lora"]["params"]}
    assert params["rank"]["range"] == "≥ 1" and params["alpha"]["range"] == "> 0"
    assert params["targets"]["range"] is None
