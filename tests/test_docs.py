"""Documentation stays true: every scenario field is documented, README commands exist."""

from pathlib import Path

from pydantic import BaseModel

from simulator.config.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    import typing

    out = []
    for name, f in model.model_fields.items():
        out.append(prefix + name)
        subs = [a for a in (f.annotation, *typing.get_args(f.annotation))
                if isinstance(a, type) and issubclass(a, BaseModel)]
        if subs:
            out += field_paths(subs[0], prefix + name + ".")
    return out


def test_every_scenario_field_is_in_docs():
    doc = (ROOT / "docs" / "scenarios.md").read_text()
    missing = [p for p in field_paths(Scenario) if f"`{p}`" not in doc]
    assert not missing, f"document these fields in docs/scenarios.md: {missing}"


def test_readme_two_commands_and_ci():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    for doc in ("architecture", "economics", "scenarios", "personas", "inference", "api", "benchmarks"):
        assert (ROOT / "docs" / f"{doc}.md").exists(), doc


def test_readme_tour_fork_source_is_a_run_the_tour_made(tmp_path, monkeypatch):
    """The tour forks a run of the comparison it made: that path must be a run directory
    of the experiment layout (runs/<variant>/seed-<s>)."""
    import re

    from simulator.cli.main import main

    readme = (ROOT / "README.md").read_text()
    made = re.search(r"econsim run rational_baselines --out (\S+)", readme).group(1)
    source = re.search(r"econsim fork (\S+)", readme).group(1)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "rational_baselines", "--set", "population.size=40", "--set", "run.tax_years=2",
                 "--set", "planner.optimum_max_agents=40", "--out", made, "--no-progress", "--jobs", "1"]) == 0
    assert (tmp_path / source / "manifest.json").exists(), f"README forks {source}, which the tour did not make"


# --------------------------------------------------------------------------- figures
# Every table of figures in the docs is pasted from a benchmark script's output, with the
# line ``benchmarks/_provenance.py`` prints first (script, date, machine, load), so a
# table typed in by hand, or one whose script was deleted or renamed, fails here.
import re  # noqa: E402

DOCS = sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"])
_FIGURE_CELL = re.compile(r"\d\.\d|\d %|\d%|\d{1,3}(?:,\d{3})+|^\s*[-+~≈<>]?\s*\$?\d+\s*(?:s|x|h|MB|GiB|/s)?\s*$")
_FIGURE_NUMBER = re.compile(r"\d\.\d|\d{1,3}(?:,\d{3})+")
_SCRIPT = re.compile(r"\b((?:benchmarks|notebooks)/[\w./-]+?\.(?:py|ipynb))\b")
_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
_CORES = re.compile(r"\b\d+\s+(?:CPU\s+)?(?:cores?|CPUs?)\b|\b(?:cores?|CPUs?):?\s+\d+", re.I)
_LOAD = re.compile(r"\bload(?:\s+average)?[\s:(=]+(?:of\s+)?\d", re.I)
_REFERENCE_HEADER = re.compile(r"\|\s*(default|type|meaning|formula|returns|range)\s*\|", re.I)


def figure_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line, kind, region) of every figure block of a markdown text.

    A figure block is a pipe table at least a third of whose cells (after the first
    column) hold measured-looking numbers (decimals, percentages, thousands, timings),
    or a fenced block without a code language holding at least four such numbers.
    Tables of defaults and bounds (a ``default``/``type``/``meaning``/``formula``/
    ``range``/``returns`` column) are not figures. The region is where its provenance
    line must be: a fenced block's own lines, or a table and the paragraph right above
    it (what a script that prints a markdown table prints first).
    """
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            lang = line[3:].strip().split()[0] if line[3:].strip() else ""
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body = lines[i + 1:j]
            if lang in ("", "text", "console", "output") and len(_FIGURE_NUMBER.findall("\n".join(body))) >= 4:
                out.append((i + 1, "fenced", "\n".join(body)))
            i = j + 1
            continue
        if line.lstrip().startswith("|"):
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            rows = [r.strip().strip("|").split("|") for r in lines[i + 2:j]]
            cells = [c for r in rows for c in r[1:]]
            figures = sum(bool(_FIGURE_CELL.search(c.strip("*` "))) for c in cells)
            if cells and figures >= 0.35 * len(cells) and not _REFERENCE_HEADER.search(lines[i]):
                k = i - 1 if i > 0 and not lines[i - 1].strip() else i  # one blank line allowed
                above = []
                while k > 0 and lines[k - 1].strip() and not lines[k - 1].startswith(("#", "```", "|")):
                    k -= 1
                    above.insert(0, lines[k])
                out.append((i + 1, "table", "\n".join(above + lines[i:j])))
            i = j
            continue
        i += 1
    return out


def provenance_problems(region: str) -> list[str]:
    """What a figure block lacks: one line naming an existing script, with a date, the
    machine's cores and the load average (the line ``benchmarks/_provenance.py`` prints)."""
    def missing(text: str) -> list[str]:
        problems = []
        scripts = _SCRIPT.findall(text)
        if not scripts:
            problems.append("names no benchmarks/ script or notebook")
        elif not any((ROOT / s).is_file() for s in scripts):
            problems.append(f"names {', '.join(sorted(set(scripts)))}, which does not exist")
        for what, rx in (("a date (YYYY-MM-DD)", _DATE), ("the machine's cores", _CORES),
                         ("the load average", _LOAD)):
            if not rx.search(text):
                problems.append(f"has no {what}")
        return problems

    if any(not missing(line) for line in region.splitlines()):
        return []
    problems = missing(region)
    return problems or ["has no single provenance line (script, date, cores and load on one line)"]


def test_every_docs_figure_block_was_printed_by_an_existing_script():
    bad = []
    for doc in DOCS:
        for line, kind, block in figure_blocks(doc.read_text()):
            problems = provenance_problems(block)
            if problems:
                bad.append(f"{doc.relative_to(ROOT)}:{line} ({kind}): " + "; ".join(problems))
    assert not bad, ("paste figures with the provenance line their benchmark prints "
                     "(benchmarks/_provenance.py):\n" + "\n".join(bad))


def test_the_figure_check_catches_typed_tables_and_accepts_printed_ones():
    typed = "## Speed\n\nMeasured last week.\n\n| n | seconds |\n|---:|---:|\n| 10,000 | 0.05 |\n| 100,000 | 0.67 |\n"
    [(_, kind, block)] = figure_blocks(typed)
    assert kind == "table" and len(provenance_problems(block)) == 4
    gone = typed.replace("Measured last week.", "printed by benchmarks/no_such_script.py | 2026-12-02 10:00 UTC"
                         " | AMD EPYC, 2 cores | load average 0.5 0.4 0.3")
    [(_, _, block)] = figure_blocks(gone)
    assert provenance_problems(block) == ["names benchmarks/no_such_script.py, which does not exist"]
    fenced = "```text\n" + gone.split("\n\n", 1)[1].replace("benchmarks/no_such_script.py", "benchmarks/core.py") + "```\n"
    [(_, kind, block)] = figure_blocks(fenced)
    assert kind == "fenced" and provenance_problems(block) == []
    # provenance scattered over prose is not a printed line
    prose = typed.replace("Measured last week.", "Measured with benchmarks/core.py on 2026-12-02.\n"
                          "The machine had 2 cores and a load average of 0.5.")
    [(_, _, block)] = figure_blocks(prose)
    assert provenance_problems(block) == ["has no single provenance line (script, date, cores and load on one line)"]
    # a provenance line further up the page does not vouch for this table
    far = gone.replace("benchmarks/no_such_script.py", "benchmarks/core.py").replace(
        "\n\n| n |", "\n\nSomething else.\n\n| n |")
    [(_, _, block)] = figure_blocks(far)
    assert len(provenance_problems(block)) == 4
    # reference tables (defaults, bounds) and code are not figures
    assert figure_blocks("| key | type | default |\n|---|---|---|\n| a | float | 0.25 |\n| b | int | 1,000 |\n") == []
    assert figure_blocks("```python\nx = 0.25 + 1.5 * 2.5 - 3.5\n```\n") == []


def test_benchmark_provenance_line_satisfies_the_figure_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_provenance", ROOT / "benchmarks" / "_provenance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    line = mod.header(str(ROOT / "benchmarks" / "core.py"), ["--n", "1000"])
    assert line.startswith("printed by benchmarks/core.py --n 1000 | ")
    assert provenance_problems(line) == [], line
    assert _LOAD.search(mod.footer(0.0))


def test_docs_name_no_path_of_the_machine_that_wrote_them():
    """Pasted benchmark output uses ./ and $TMPDIR, never this machine's directories."""
    import re

    bad = re.compile(r"(?<![\w$.])/(?:work|root|home|tmp)/")
    hits = [f"{p.name}:{n}" for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
            for n, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert not hits, hits
