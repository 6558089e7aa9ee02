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
