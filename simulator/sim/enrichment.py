"""Optional LLM enrichment of persona texts (``population.enrich: true``).

The template text from :mod:`personas` is deterministic; enrichment asks the language
model to rewrite it as a richer second-person description that keeps every fact.  The
request is seeded from the persona's own text, so the same persona always gets the same
request (and, through the response cache, the same enriched text).  A reply that is not
2-4 sentences in the second person, or that drops the persona's state, is rejected and the template text is kept (counted in the manifest notes).
"""

from __future__ import annotations

import hashlib
import re

import pandas as pd

from simulator.llm import Request, json_object_constraint, string_field

SYSTEM = (
    "You rewrite short descriptions of people for a simulation. Keep every fact (age, "
    "state, occupation, education, hours, earnings); add one plausible detail about daily "
    "life. Write 2 to 4 sentences in the second person ('You ...')."
)


def _state_names() -> dict[str, str]:
    """Two-letter code -> state name, from the persona data (ACS state table)."""
    from personas._tables import load_table

    t = load_table("state_population_acs2024")
    return dict(zip(t["state"].astype(str), t["name"].astype(str), strict=True))


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


def acceptable(original: str, candidate: str, must_keep: list[str]) -> bool:
    """2-4 sentences, second person, and every ``must_keep`` word still present."""
    text = candidate.strip()
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
    if not 2 <= len(sentences) <= 4 or not text.lower().startswith("you"):
        return False
    return all(w.lower() in text.lower() for w in must_keep if w)


def enrich_personas(population: pd.DataFrame, llm, max_tokens: int = 160) -> tuple[pd.Series, int]:
    """Enriched persona texts and how many fell back to the template."""
    texts = population["persona"].astype(str).tolist()
    constraint = json_object_constraint(persona=string_field(600))
    reqs = [
        Request.chat(f"Rewrite this description:\n{t}", system=SYSTEM, constraint=constraint,
                     seed=_seed(t), temperature=0.7, max_tokens=max_tokens, tag="persona")
        for t in texts
    ]
    names = _state_names()
    states = (
        population["state"].astype(str).map(lambda s: names.get(s, s)).tolist()
        if "state" in population.columns else [""] * len(texts)
    )
    out, fallbacks = [], 0
    for i, r in enumerate(llm.generate(reqs)):
        # keep the state only when the template itself names it
        must = [states[i]] if states[i] and states[i] in texts[i] else []
        cand = r.value.get("persona", "") if r.ok and isinstance(r.value, dict) else ""
        if cand and acceptable(texts[i], cand, must):
            out.append(cand.strip())
        else:
            out.append(texts[i])
            fallbacks += 1
    return pd.Series(out, index=population.index, name="persona"), fallbacks
