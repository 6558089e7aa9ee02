"""The LLM worker prompt layouts (``workers.llm.prompt_layout``): verbose rebuilds the
prompts of earlier releases byte for byte; compact keeps every piece of information a
worker decides on, shares its system message across workers, and is at most half the
tokens of verbose."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest_llm import needs_llama
from prompt_layout_cases import CASES, build_case, model_after

from simulator.config.loading import scenario_from_dict
from simulator.config.schema import LLMWorkerOptions
from simulator.economy.tax import TaxSchedule
from simulator.sim.model import EconomyModel
from simulator.sim.prompts import schedule_compact_text, take_home_grid
from simulator.sim.workers.llm import compact_rows

VERBOSE = json.loads((Path(__file__).parent / "data" / "prompts_verbose.json").read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_verbose_layout_rebuilds_the_earlier_prompts_byte_for_byte(case):
    """tests/data/prompts_verbose.json was written by the code before the compact layout
    (tests/prompt_layout_cases.py: after scripted years, both cues, an in-work benefit)."""
    got = build_case(case, "verbose")
    assert len(got) == len(VERBOSE[case])
    for g, want in zip(got, VERBOSE[case], strict=True):
        assert g["system"] == want["system"]
        assert g["user"] == want["user"]


def test_compact_is_the_default():
    assert LLMWorkerOptions().prompt_layout == "compact"
    with pytest.raises(ValueError):
        LLMWorkerOptions(prompt_layout="short")


# --------------------------------------------------------------------------- helpers
def _table(user: str) -> dict[int, tuple[float, float, float]]:
    """hours -> (tax, take-home, utility) of a compact prompt's table."""
    lines = user.splitlines()
    start = lines.index("hours | tax | take-home | utility") + 1
    rows = {}
    for line in lines[start:]:
        parts = line.split(" | ")
        if len(parts) != 4:
            break
        rows[int(parts[0])] = tuple(float(p.replace("$", "")) for p in parts[1:])
    return rows


def _census(n=40, years=0, steps=1, **llm):
    sc = scenario_from_dict({
        "population": {"size": n, "source": "census"},
        "workers": {"policy": "llm", "llm": {"history": 3, **llm}}, "planner": {"kind": "us_federal"},
        "run": {"seed": 11, "mesa_agents": False, "tax_years": max(years, 1), "steps_per_year": steps},
        "llm": {"backend": "scripted", "cache": "off"}})
    m = EconomyModel(sc, agent_objects=False)
    if years:
        m.run(years)
    return m


def _requests(m, explore=False, layout=None):
    pol = m.policy
    if layout is not None:
        pol = type(pol)(pol.options.model_copy(update={"prompt_layout": layout}))
        pol.adjusted_history = m.policy.adjusted_history
    return pol.requests(m, m.schedule, m.expected_rebate, explore, np.arange(1, m.n_workers + 1))


# --------------------------------------------------------------------------- (a) information
def test_compact_table_is_the_cores_take_home_at_its_hours():
    """Every row's tax, take-home and utility equal the core's numbers at those hours
    (the schedule's tax of wage x hours plus the rebate), rows: three levels spread over
    hour_levels and the worker's last hours."""
    m = _census(years=2)
    sched, rebate = m.schedule, m.expected_rebate
    last = m.agent_years[-1]["hours"]
    for i, r in enumerate(_requests(m)):
        user = r.messages[-1]["content"]
        rows = _table(user)
        assert round(last[i]) in rows and len(rows) == 3
        assert set(rows) - {round(last[i])} <= {20, 40, 60}
        for h, (tax, post, u) in rows.items():
            z = m.wages[i] * h
            want_tax = float(sched.tax(np.array([z]))[0])
            want_post = z - want_tax + rebate
            assert tax == pytest.approx(want_tax, abs=0.5)
            assert post == pytest.approx(want_post, abs=0.5)
            want_u = float(m.utility_subset(np.array([i]))(np.array([want_post]), np.array([float(h)]))[0])
            assert u == pytest.approx(want_u, abs=0.005 if abs(want_u) < 100 else 0.5)
        assert user.startswith(m.population["persona"].iat[i] + "\n")
        assert f"Your wage: ${m.wages[i]:.0f} a year per weekly hour." in user
        # the past years in one line, the best one marked (all three shown: history 3)
        past = re.search(r"Past years \(hours, take-home, utility\): (.*)\.$", user, re.M).group(1).split("; ")
        assert [p.split(":")[0] for p in past] == ["year 0", "year 1"]
        best = int(np.argmax([y["utility"][i] for y in m.agent_years]))
        assert past[best].endswith("(best)") and sum(p.endswith("(best)") for p in past) == 1
        for k, p in enumerate(past):
            y = m.agent_years[k]
            assert p.startswith(f"year {k}: {y['hours'][i]:.0f}, ${y['post_tax'][i]:.0f}, ")


def test_compact_best_year_outside_the_history_is_said_apart():
    m = _census(n=12, years=3, history=1)
    users = [r.messages[-1]["content"] for r in _requests(m)]
    for i, user in enumerate(users):
        best = int(np.argmax([y["utility"][i] for y in m.agent_years]))
        if best == 2:
            assert "year 2: " in user and "(best)" in user and "Best year so far" not in user
        else:
            assert f"Best year so far: year {best}: {m.agent_years[best]['hours'][i]:.0f}, " in user


def test_compact_participation_household_and_in_work_benefit_sentences():
    """quickstart (people may not work, the us_current_law world): the 0-hours row, the
    cost and support sentences, the household tax line and the in-work benefit; the
    table's numbers are the household budget's (take_home_grid at those hours)."""
    m = model_after("quickstart", None)
    assert m.policy.options.prompt_layout == "compact"
    benefit = np.full(m.n_workers, 1_234.0)
    plain = _requests(m)
    with_benefit = m.policy.requests(m, m.schedule, m.expected_rebate, False, np.arange(1, m.n_workers + 1),
                                     in_work_benefit=benefit)
    system = plain[0].messages[0]["content"]
    assert "0 hours: not working" in system and "yearly cost (commuting, childcare, time)" in system
    assert "household's" in system and "payroll tax" in system
    support = np.broadcast_to(np.asarray(m.utility.nonwork_income, dtype=float), (m.n_workers,))
    for i, (r, rb) in enumerate(zip(plain, with_benefit, strict=True)):
        user = r.messages[-1]["content"]
        rows = _table(user)
        assert 0 in rows
        assert re.search(r"Last year you (worked|did not work)\. Working would cost you (about \$\d+ a year|more than you could earn)", user)
        if support[i] > 0:
            assert f"not working, you get about ${support[i]:.0f} a year of other support" in user
        assert re.search(r"Last year's household taxes: income tax -?\$\d+.*, payroll tax \$\d+; marginal rate", user)
        hours = np.array(sorted(rows), dtype=float)
        grid = take_home_grid(m.budget(m.schedule, np.array([i])), m.wages[[i]], hours, m.expected_rebate,
                              m.utility_subset(np.array([i])))
        for j, h in enumerate(hours):
            assert rows[int(h)][0] == pytest.approx(grid["tax"][0, j], abs=0.5)
            assert rows[int(h)][1] == pytest.approx(grid["post_tax"][0, j], abs=0.5)
        ub = rb.messages[-1]["content"]
        assert "This year anyone who works also receives an in-work benefit of $1234 (in take-home)." in ub
        for h, (_, post, _) in _table(ub).items():
            assert post == pytest.approx(rows[h][1] + (1_234.0 if h > 0 else 0.0), abs=1.0)


def test_compact_rows_keep_the_order_of_hour_levels():
    """The validity report's reversed-rows check reverses hour_levels: the table follows."""
    levels, counts = compact_rows([0, 20, 30, 40, 50, 60], np.array([38.4, 95.0, 20.0, 0.0]), (0.0, 100.0), True)
    got = [levels[p, :counts[p]].tolist() for p in range(4)]
    assert got == [[0, 20, 38, 60], [0, 20, 40, 95], [0, 20, 40, 60], [0, 20, 40, 60]]
    levels, counts = compact_rows([60, 50, 40, 30, 20, 0], np.array([38.4]), (0.0, 100.0), True)
    assert levels[0, :counts[0]].tolist() == [60, 38, 20, 0]
    levels, counts = compact_rows([10, 45], np.array([17.0, 10.0]), (0.0, 100.0), False)
    assert [levels[p, :counts[p]].tolist() for p in range(2)] == [[10, 17, 45], [10, 45]]
    m = _census(n=6, years=1)
    fwd = _requests(m)
    rev = type(m.policy)(m.policy.options.model_copy(update={"hour_levels": [60, 50, 40, 30, 20, 0]}))
    for a, b in zip(fwd, rev.requests(m, m.schedule, m.expected_rebate, False, np.arange(1, 7)), strict=True):
        ta, tb = (r.messages[-1]["content"].split("utility\n")[1].split("\nPast")[0].splitlines() for r in (a, b))
        assert ta == tb[::-1] and len(ta) >= 2
    # table_hours: the rows each prompt shows, in its order (both layouts)
    for pol in (m.policy, rev):
        for r, hours in zip(pol.requests(m, m.schedule, m.expected_rebate, False, np.arange(1, 7)),
                            pol.table_hours(m), strict=True):
            assert list(_table(r.messages[-1]["content"])) == hours
    verbose = type(m.policy)(m.policy.options.model_copy(update={"prompt_layout": "verbose"}))
    assert verbose.table_hours(m, np.array([0, 1])) == [[0, 20, 30, 40, 50, 60]] * 2


def test_compact_schedule_line_says_every_bracket():
    s = TaxSchedule([0, 11_600, 47_150], [0.10, 0.125, 0.22], deduction=14_600)
    assert schedule_compact_text(s) == "Rates after a $14600 deduction: 10% to $11600, 12.5% to $47150, 22% above."
    assert schedule_compact_text(TaxSchedule([0], [0.25])) == "Rates: 25% on all of it."


# --------------------------------------------------------------------------- (b) shared part
def test_compact_system_is_shared_by_every_worker_and_steps_differ_only_at_its_end():
    m = _census(n=30, years=1)
    exploit = _requests(m)
    system = exploit[0].messages[0]["content"]
    assert len({r.messages[0]["content"] for r in exploit}) == 1
    # nothing of a worker's own is in the shared part
    assert m.population["persona"].iat[0] not in system and f"${m.wages[0]:.0f}" not in system
    # one step a year: no cue; two: the explore and exploit steps differ only after the year
    assert system.endswith(f"Tax year {m.year}.")
    m2 = _census(n=4, steps=2)
    a = m2.policy.shared_prefix(m2, m2.schedule, m2.expected_rebate, True)
    b = m2.policy.shared_prefix(m2, m2.schedule, m2.expected_rebate, False)
    common = a.index("Tax year 0.") + len("Tax year 0.")
    assert a[:common] == b[:common] and a.endswith("to learn.") and b.endswith("best for you.")
    # across years only the schedule, the rebate and the year change: the instructions and
    # the reply format stay in front
    s0 = m2.policy.shared_prefix(m2, m2.schedule, 1_000.0, False)
    s1 = m2.policy.shared_prefix(m2, m2.schedule.with_rates([0.3] * len(m2.schedule.rates)), 2_000.0, False)
    head = s0.split("\nRates")[0]
    assert s1.startswith(head) and head.rstrip().endswith("N from 0 to 100.") and s0 != s1


# --------------------------------------------------------------------------- (c) length
@pytest.mark.parametrize("years", [0, 2])
def test_compact_is_at_most_half_of_verbose_on_a_census_population(years):
    """Characters as the proxy for tokens (the embedded tokenizer's test is below)."""
    m = _census(n=150, years=years)

    def chars(reqs):
        return np.mean([sum(len(x["content"]) for x in r.messages) for r in reqs])

    assert chars(_requests(m, layout="compact")) <= 0.5 * chars(_requests(m, layout="verbose"))


@needs_llama
def test_compact_is_at_most_half_of_verbose_in_the_embedded_models_tokens():
    """Tokens of the chat-templated prompt with SmolLM2's own tokenizer (vocabulary only)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from simulator.llm.embedded import _import_llama_cpp, bundled_gguf

    llm = _import_llama_cpp().Llama(model_path=str(bundled_gguf()), vocab_only=True, verbose=False)
    fmt = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>",
                              bos_token="")

    def tokens(reqs):
        return [llm.tokenize(fmt(messages=r.messages).prompt.encode(), add_bos=False, special=True) for r in reqs]

    m = _census(n=100)
    v, c = tokens(_requests(m, layout="verbose")), tokens(_requests(m, layout="compact"))
    assert np.mean([len(t) for t in c]) <= 0.5 * np.mean([len(t) for t in v])
    # the system turn and the user turn's opening are one common token prefix of every prompt
    common = min(next((k for k, (x, y) in enumerate(zip(c[0], t, strict=False)) if x != y),
                      min(len(c[0]), len(t))) for t in c[1:])
    system = _requests(m)[0].messages[0]["content"]
    turn = llm.tokenize(f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n".encode(),
                        add_bos=False, special=True)
    assert c[0][:len(turn)] == turn and common >= len(turn)
