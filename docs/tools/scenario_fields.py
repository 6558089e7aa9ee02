"""Generate the scenario field tables of docs/scenarios.md from the pydantic models.

Run ``.venv/bin/python docs/tools/scenario_fields.py --write`` to replace everything
after the "## Every field" introduction of docs/scenarios.md with fresh tables
(tests/test_docs.py checks every field is documented).
"""
import typing, json
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from simulator.config.schema import Scenario
from simulator.llm.config import LLMConfig

def tname(ann):
    s = repr(ann) if not isinstance(ann, type) else ann.__name__
    s = s.replace("typing.", "").replace("pathlib.", "").replace("NoneType", "None")
    s = s.replace("simulator.config.schema.", "").replace("simulator.llm.config.", "")
    return s

def is_model(ann):
    return isinstance(ann, type) and issubclass(ann, BaseModel)

def model_of(ann):
    if is_model(ann): return ann
    for a in typing.get_args(ann):
        if is_model(a): return a
    return None

def fmt_default(f):
    if f.default_factory is not None:
        v = f.default_factory()
        if isinstance(v, BaseModel): return "(section)"
        return json.dumps(v)
    if f.default is PydanticUndefined: return "(required)"
    v = f.default
    if isinstance(v, tuple): v = list(v)
    if v is None: return "null"
    if isinstance(v, bool): return "true" if v else "false"
    return json.dumps(v) if not isinstance(v, (int, float)) else repr(v)

# meanings for fields whose pydantic model has no description (from the code that reads them)
EXTRA = {
    "name": "scenario name; run directories are runs/<name>-<timestamp>",
    "description": "free text, shown by `econsim scenarios`",
    "run": "tax years, steps per year, seed",
    "output": "where results are written",
    "planner.kind": "fixed \\| us_federal \\| flat \\| saez \\| optimum \\| grid \\| llm \\| search",
    "planner.optimum_max_evaluations": "optimum: welfare evaluations allowed in the search",
    "planner.llm.temperature": "sampling temperature of the planner's LLM",
    "planner.llm.action": "absolute: reply with new rates; delta: reply with changes in percentage points",
    "planner.llm.rate_bounds": "[min, max] allowed marginal rate",
    "planner.llm.exploration_start": "exploration level in year 1 (>= 0.5 asks to explore, below to exploit)",
    "planner.llm.histogram_bins": "bins of the utility histogram shown to the planner",
    "planner.llm.max_tokens": "reply token limit",
    "workers.policy": "rational (exact best response) \\| fixed (constant hours) \\| llm",
    "workers.llm.temperature": "sampling temperature of the workers' LLM",
    "workers.llm.max_tokens": "reply token limit",
    "democracy.enabled": "hold elections of who sets taxes",
    "democracy.candidates": "candidates per election",
    "democracy.selection": "random draw of candidates, or workers who volunteer when asked",
    "democracy.rule": "voting rule",
    "run.tax_years": "number of tax years (planner decisions)",
    "run.steps_per_year": "worker decision steps per tax year",
    "run.seed": "seed of every random stream of the run",
    "llm.vllm.gpu_memory_utilization": "share of GPU memory vLLM may take",
}

def constraints(f):
    out = []
    for m in f.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                out.append(f"{sym} {v}")
    return ", ".join(out)

def walk(model, prefix, out):
    rows = []
    subs = []
    for name, f in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = model_of(f.annotation)
        d = fmt_default(f)
        if sub is not None and d in ("(section)", "null") and sub is not model:
            desc = (f.description or EXTRA.get(key) or ((sub.__doc__ or "").strip().splitlines() or [""])[0])
            rows.append((key, "section" + (" or null" if d == "null" else ""), d if d=="null" else "", "", desc))
            subs.append((sub, key + "."))
        else:
            rows.append((key, tname(f.annotation), d, constraints(f), f.description or EXTRA.get(key, "")))
    out.append((prefix.rstrip(".") or "(top level)", model.__name__, ((model.__doc__ or "").strip().splitlines() or [""])[0], rows))
    for sub, p in subs:
        walk(sub, p, out)

def render() -> str:
    out = []
    walk(Scenario, "", out)
    lines = []
    for section, cls, doc, rows in out:
        lines.append(f"### `{section}` ({cls})\n\n{doc}\n")
        lines.append("| key | type | default | bounds | meaning |\n|---|---|---|---|---|")
        for k, t, d, c, desc in rows:
            t = t.replace("|", "\\|")
            d = d.replace("|", "\\|")
            if "\\|" not in desc:
                desc = desc.replace("|", "\\|")
            dcell = f"`{d}`" if d else ""
            lines.append(f"| `{k}` | `{t}` | {dcell} | {c} | {desc} |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    text = render()
    if "--write" in sys.argv:
        doc = Path(__file__).resolve().parents[1] / "scenarios.md"
        s = doc.read_text()
        marker = "### `(top level)` (Scenario)"
        doc.write_text(s[: s.index(marker)] + text)
    else:
        sys.stdout.write(text)
