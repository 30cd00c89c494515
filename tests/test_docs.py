"""The documentation: the README (the front page) and the MkDocs site in docs/.

* every `clbench ...` command the README and the pages show (in code blocks, and in inline code
  that starts with `clbench `) names a sub-command of the real command line, with flags that
  sub-command has (the tree is read from clbench's argparse parser, not from a list kept here);
* the README's links are relative links to files of the repository, and the quick start's two
  commands are the ones CI and users run;
* mkdocs.yml's navigation lists every page of docs/ and nothing else;
* docs/proxy-vs-paper.md's Kendall τ: its copy of the LoRSU paper's Table 4 and of the stored
  3-seed comparison (docs/strategies-on-proxy.md) are what its script holds, the script prints
  the table the page shows, and this file recomputes every ranking and τ on its own;
* `mkdocs build --strict` passes (about a second; skipped without mkdocs-material, failed
  under CI).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PROXY_PAGE = DOCS / "proxy-vs-paper.md"
COMPARISON_PAGE = DOCS / "strategies-on-proxy.md"

# the README's quick start: CI (`.ci/run`) and users run these lines as they are
QUICK_START = [
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[app]" && clbench run '
    '--strategy lorsu --scenario proxy-20shot',
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && python -m pytest',
]


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


# ------------------------------------------------------------------ Markdown, read simply
def split_markdown(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The prose (fenced code blocks blanked out) and the fenced blocks as (language, body)."""
    prose, blocks, fence, lang, body = [], [], None, "", []
    for line in text.split("\n"):
        opening = re.match(r"\s*(`{3,}|~{3,})\s*([\w+-]*)", line)
        if fence is None and opening:
            fence, lang, body = opening.group(1), opening.group(2), []
            prose.append("")
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(
                fence[0]):
            blocks.append((lang, "\n".join(body)))
            fence = None
            prose.append("")
        elif fence is not None:
            body.append(line)
        else:
            prose.append(line)
    return "\n".join(prose), blocks


def inline_code(prose: str) -> list[str]:
    """Every inline code span, its line breaks made spaces."""
    return [" ".join(span.split()) for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", prose)]


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of `text` as rows of cells (the header first, the rule left out)."""
    found, rows = [], []
    for line in [*text.split("\n"), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
        elif rows:
            found.append(rows)
            rows = []
    return found


# ------------------------------------------------------------------ (a) commands exist
def build_parser() -> argparse.ArgumentParser:
    try:
        from clbench.cli.main import build_parser as build
    except ImportError:  # before the move of clbench.cli to clbench.cli.main
        from clbench.cli import build_parser as build
    return build()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return None


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for every clbench command the README and the pages show: lines of
    code blocks (and each `&&` / `;` / `|` part of them) that start with `clbench ` or
    `python -m clbench `, and inline code that does."""
    found = []
    for path in markdown_files():
        prose, blocks = split_markdown(path.read_text(encoding="utf-8"))
        where = path.relative_to(ROOT).as_posix()
        for _, body in blocks:
            for line in body.replace("\\\n", " ").split("\n"):
                line = re.sub(r"\s#.*$", "", line.strip())  # a trailing shell comment
                for part in re.split(r"&&|;|\s\|\s", line):
                    part = re.sub(r"^\$\s+", "", part.strip())
                    if part.startswith(("clbench ", "python -m clbench ")) or part == "clbench":
                        found.append((where, part))
        for span in inline_code(prose):
            if span.startswith(("clbench ", "python -m clbench ")):
                found.append((where, span))
    return found


PLACEHOLDER = re.compile(r"(\.\.\.|…|<.*>|[A-Z][A-Z0-9_]*(\.\.\.)?)")


def command_problems(parser: argparse.ArgumentParser, command: str) -> list[str]:
    """What in `command` the parser does not have: a sub-command, or a flag of it."""
    try:
        words = shlex.split(command)
    except ValueError:  # an unbalanced quote in a shortened example
        words = command.split()
    words = words[3:] if words[:3] == ["python", "-m", "clbench"] else words[1:]
    parsers, path, problems, i = [parser], ["clbench"], [], 0
    while i < len(words):
        word = words[i].strip("[](),")
        i += 1
        if not word or word in ("-", "--"):
            continue
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            for p in parsers:
                if flag not in p._option_string_actions:
                    problems.append(f"`{' '.join(path)}` has no option {flag}")
            action = parsers[0]._option_string_actions.get(flag)
            if (subcommands(parsers[0]) is not None and action is not None and action.nargs != 0
                    and "=" not in word):
                i += 1  # the option's value, before the sub-command
            continue
        choices = subcommands(parsers[0])
        if choices is None:
            continue  # a positional argument or an option's value
        if PLACEHOLDER.fullmatch(word):
            return problems  # `clbench COMMAND --help`: no sub-command to check the rest against
        names = word.split("|")
        unknown = [n for n in names if n not in choices]
        if unknown:
            problems.append(f"`{' '.join(path)}` has no sub-command {', '.join(unknown)} "
                            f"(it has {', '.join(sorted(choices))})")
            return problems
        parsers = [choices[n] for n in names]
        path.append(word)
    return problems


def test_the_command_tree_is_read_from_the_parser():
    parser = build_parser()
    assert {"run", "tune", "list", "sweep", "db"} <= set(subcommands(parser))
    assert command_problems(parser, "clbench run --strategy lorsu --seed 0") == []
    assert command_problems(parser, "clbench db current|upgrade [--db URL]") == []
    assert command_problems(parser, "clbench COMMAND --help") == []
    assert command_problems(parser, "clbench rnu --strategy x")  # a misspelt sub-command
    assert command_problems(parser, "clbench run --stratgy x")  # a misspelt flag
    assert command_problems(parser, "clbench proxy pretrain --sead 1")  # a nested one
    assert command_problems(parser, "clbench data prepare|check|shwo NAME")


def test_every_documented_command_exists_with_its_flags():
    parser = build_parser()
    commands = documented_commands()
    assert len(commands) > 100, "the command extraction found almost nothing"
    pages = {where for where, _ in commands}
    assert {"README.md", "docs/commands.md", "docs/writing-a-strategy.md"} <= pages
    problems = [f"{where}: {command}\n    {problem}" for where, command in commands
                for problem in command_problems(parser, command)]
    assert not problems, "commands the docs show that clbench does not have:\n" + "\n".join(
        problems)


# ------------------------------------------------------------------ (b) the README
def test_the_readme_links_only_to_files_of_the_repository():
    text = README.read_text(encoding="utf-8")
    prose, _ = split_markdown(text)
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", prose, re.M)
    assert targets, "the README has no links"
    assert not re.search(r"https?://|www\.", prose), "the README links outside the repository"
    headings = {github_slug(h) for h in re.findall(r"^#+\s+(.*)$", prose, re.M)}
    for target in targets:
        assert not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I), f"not relative: {target}"
        assert not target.startswith("/"), f"not relative: {target}"
        path, _, anchor = target.partition("#")
        if not path:
            assert anchor in headings, f"the README has no heading #{anchor}"
            continue
        file = (README.parent / path).resolve()
        assert file.is_relative_to(ROOT), f"outside the repository: {target}"
        assert file.exists(), f"the README links to a missing file: {target}"
        if anchor and file.suffix == ".md":
            page = split_markdown(file.read_text(encoding="utf-8"))[0]
            slugs = {github_slug(h) for h in re.findall(r"^#+\s+(.*)$", page, re.M)}
            assert anchor in slugs, f"{path} has no heading #{anchor}"


def github_slug(heading: str) -> str:
    heading = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return heading.replace(" ", "-")


def test_the_readme_keeps_the_quick_start_commands():
    _, blocks = split_markdown(README.read_text(encoding="utf-8"))
    lines = [line for _, body in blocks for line in body.split("\n")]
    for command in QUICK_START:
        assert command in lines, f"the README's quick start lost: {command}"


# ------------------------------------------------------------------ (c) the navigation
def nav_files(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in nav_files(value)]
    return []


def test_the_navigation_lists_every_page_once():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs" and config["site_dir"] == "site"
    assert config["theme"]["name"] == "material"
    listed = [f for f in nav_files(config["nav"]) if not re.match(r"https?://", f)]
    assert len(listed) == len(set(listed)), "a page is listed twice"
    missing = [f for f in listed if not (DOCS / f).is_file()]
    assert not missing, f"mkdocs.yml lists pages that do not exist: {missing}"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages == set(listed), f"pages missing from nav: {sorted(pages - set(listed))}"


# ------------------------------------------------------------------ (d) the Kendall τ
METHODS = {"fft": "F-FT", "ln": "LN", "lora": "LoRA", "spu": "SPU", "lorsu": "LoRSU"}


def kendall_tau(x: dict[str, float], y: dict[str, float]) -> float:
    """Kendall's tau-b of two scorings of the same methods."""
    concordant = discordant = ties_x = ties_y = 0
    for a, b in combinations(sorted(x), 2):
        dx, dy = x[a] - x[b], y[a] - y[b]
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif (dx > 0) == (dy > 0):
            concordant += 1
        else:
            discordant += 1
    return (concordant - discordant) / ((concordant + discordant + ties_x)
                                        * (concordant + discordant + ties_y)) ** 0.5


def ranking(scores: dict[str, float]) -> str:
    return " > ".join(METHODS[m] for m in sorted(scores, key=scores.get, reverse=True))


def number(cell: str) -> float:
    """'−11.1 ± 1.1' -> -11.1."""
    return float(cell.replace("−", "-").replace("+", "").split("±")[0].strip())


def paper_table4() -> dict[tuple[str, str, str], dict[str, float]]:
    """The page's copy of Table 4: (sequence, model, column) -> {clbench name: accuracy}."""
    columns: dict[tuple[str, str, str], dict[str, float]] = {}
    for table in tables(PROXY_PAGE.read_text(encoding="utf-8")):
        first = re.fullmatch(r"Table 4, (TSI|GTS)", table[0][0])
        if not first:
            continue
        for index, header in enumerate(table[0][2:], start=2):
            column, model = re.fullmatch(r"(\S+) \((.+)\)", header).groups()
            columns[(first.group(1), model, column)] = {
                row[1].strip("`"): float(row[index]) for row in table[1:]}
    assert len(columns) == 12, "the page's copy of Table 4 is not two tables of six columns"
    return columns


def stored_comparison() -> dict[str, dict[str, dict[str, str]]]:
    """docs/strategies-on-proxy.md's 3-seed tables: scenario -> strategy -> column -> cell."""
    text = COMPARISON_PAGE.read_text(encoding="utf-8")
    section = text.split("## The comparison: 3 seeds at the chosen settings", 1)[1]
    section = section.split("\n## ", 1)[0]
    found = {}
    for scenario in ("proxy-20shot", "proxy-hand-20shot"):
        part = section.split(f"`{scenario}` (target", 1)[1]
        header, *rows = tables(part)[0]
        found[scenario] = {row[0]: dict(zip(header, row)) for row in rows}
    return found


def expected_tau_rows() -> list[str]:
    """The page's τ table, computed here from the page's Table 4 and the stored comparison."""
    table4, stored = paper_table4(), stored_comparison()
    openai = "OpenAI-CLIP-L-14"
    zero = {c: table4[("TSI", openai, c)]["zeroshot"] for c in ("ImgNet", "DA·E", "TSI")}
    change = {c: {m: table4[("TSI", openai, c)][m] - zero[c] for m in METHODS}
              for c in zero}
    gain = change["TSI"]
    balanced = {m: gain[m] + (change["ImgNet"][m] + change["DA·E"][m]) / 2 for m in METHODS}
    comparisons = [("target gain", "TSI, OpenAI-CLIP-L-14", gain, "target Δ"),
                   ("balanced score", "TSI, OpenAI-CLIP-L-14", balanced, "balanced")]
    for sequence, model in (("TSI", "EVA-CLIP-G-14"), ("GTS", "EVA-CLIP-G-14"),
                            ("GTS", openai)):
        accuracy = table4[(sequence, model, sequence)]
        comparisons.append(("target gain", f"{sequence}, {model}",
                            {m: accuracy[m] for m in METHODS}, "target Δ"))
    rows = ["| ranked by | Table 4 | paper's ranking | proxy scenario | proxy's ranking | "
            "Kendall τ |", "| --- | --- | --- | --- | --- | --- |"]
    for metric, label, paper, column in comparisons:
        for scenario, strategies in stored.items():
            proxy = {m: number(strategies[m][column]) for m in METHODS}
            rows.append(f"| {metric} | {label} | {ranking(paper)} | `{scenario}` | "
                        f"{ranking(proxy)} | {kendall_tau(paper, proxy):+.1f} |")
    return rows


def page_tau_rows() -> list[str]:
    text = PROXY_PAGE.read_text(encoding="utf-8")
    block = re.search(r"<!-- tau-table[^>]*-->\n(.*?)\n<!-- /tau-table -->", text, re.S)
    assert block, "the page has no τ table between its markers"
    return block.group(1).split("\n")


def page_script() -> str:
    _, blocks = split_markdown(PROXY_PAGE.read_text(encoding="utf-8"))
    (script,) = [re.search(r"<<'EOF'\n(.*)\nEOF$", body, re.S).group(1) for _, body in blocks
                 if "<<'EOF'" in body]
    return script


def test_the_page_states_the_tau_its_tables_give():
    expected = expected_tau_rows()
    assert page_tau_rows() == expected
    main = expected[2].split(" | ")  # the target gain on proxy-20shot against TSI, OpenAI
    tau = main[-1].rstrip(" |").replace("-", "−")
    assert main[2:5] == ["LoRSU > SPU > LN > LoRA > F-FT", "`proxy-20shot`",
                         "F-FT > LoRA > SPU > LoRSU > LN"]
    page = " ".join(PROXY_PAGE.read_text(encoding="utf-8").split())
    assert f"**The main comparison: τ = {tau}.**" in page
    assert f"orders the methods {main[2]}; `proxy-20shot` orders them {main[4]}." in page
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert f"Kendall τ = {tau}: the paper orders them {main[2]}, the proxy {main[4]}." in readme


def test_the_page_script_holds_the_tables_and_prints_the_page_table():
    script = page_script()
    namespace: dict = {"__name__": "tau_script"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(script, str(PROXY_PAGE), "exec"), namespace)
    assert out.getvalue().rstrip("\n").split("\n") == page_tau_rows()
    table4, stored = paper_table4(), stored_comparison()
    openai = "OpenAI-CLIP-L-14"
    columns = ("ImgNet", "DA·E", "TSI")
    assert namespace["ZERO_SHOT"] == tuple(table4[("TSI", openai, c)]["zeroshot"]
                                           for c in columns)
    assert namespace["TABLE4"] == {m: tuple(table4[("TSI", openai, c)][m] for c in columns)
                                   for m in METHODS}
    for label, scores in namespace["OTHER_TARGETS"].items():
        sequence, model = label.split(", ")
        assert scores == {m: table4[(sequence, model, sequence)][m] for m in METHODS}
    assert set(namespace["PROXY"]) == set(stored)
    for scenario, scores in namespace["PROXY"].items():
        assert scores == {m: (number(stored[scenario][m]["target Δ"]),
                              number(stored[scenario][m]["balanced"])) for m in METHODS}


def test_the_page_copies_the_stored_comparison():
    stored = stored_comparison()
    (copy,) = [t for t in tables(PROXY_PAGE.read_text(encoding="utf-8"))
               if t[0][0] == "strategy"]
    header, *rows = copy
    assert [row[0] for row in rows] == list(METHODS)
    for row in rows:
        for name, cell in zip(header[1:], row[1:]):
            scenario, column = re.fullmatch(r"`(\S+)` (.+)", name).groups()
            assert cell == stored[scenario][row[0]][column].replace("−", "-")


def test_kendall_tau_is_kendalls():
    a = {"fft": 1, "ln": 2, "lora": 3, "spu": 4, "lorsu": 5}
    assert kendall_tau(a, a) == 1.0
    assert kendall_tau(a, {m: -v for m, v in a.items()}) == -1.0
    assert kendall_tau(a, {**a, "fft": 2.5}) == pytest.approx(0.8)  # one pair swapped
    scipy_stats = pytest.importorskip("scipy.stats")
    b = {"fft": 3, "ln": 1, "lora": 5, "spu": 2, "lorsu": 2}  # a tie: tau-b
    keys = sorted(a)
    assert kendall_tau(a, b) == pytest.approx(
        scipy_stats.kendalltau([a[k] for k in keys], [b[k] for k in keys])[0])


# ------------------------------------------------------------------ (e) the site builds
def test_the_site_builds_strictly(tmp_path):
    if not (importlib.util.find_spec("mkdocs") and importlib.util.find_spec("material")):
        reason = ("mkdocs-material is not installed (pip install mkdocs-material), so "
                  "`mkdocs build --strict` cannot run")
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must build the docs")
        pytest.skip(reason)
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    for page in ("index.html", "proxy-vs-paper/index.html", "writing-a-strategy/index.html"):
        assert (site / page).is_file(), page
