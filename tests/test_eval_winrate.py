"""eval winrate: the pairwise metrics by hand, resume after an interruption, and the command end to end."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sda_local.core import SamplingParams, lambda_from_score
from sda_local.evaluation.winrate import (
    Tally,
    WinrateConfig,
    answer_item,
    comparisons,
    markdown,
    outcome,
    pairwise_messages,
    run_winrate,
    summarise,
    tally,
)
from sda_local.judges import FixedEvaluator
from sda_local.presets import get_preset


def test_outcome_and_tie_margin():
    assert outcome(80, 70) == 1 and outcome(70, 80) == -1 and outcome(50, 50) == 0
    assert outcome(72, 70, margin=3) == 0 and outcome(74, 70, margin=3) == 1 and outcome(66, 70, margin=3) == -1


def test_tally_by_hand():
    rows = [{"comparisons": {"base": {"sda": s, "other": o}}} for s, o in
            [(90, 10), (60, 58), (40, 70), (55, 55), (0, 30), (99, 1)]]
    t = tally(rows, "base")
    assert (t.wins, t.ties, t.losses, t.n) == (3, 1, 2, 6) and t.net == pytest.approx(1 / 6)
    t3 = tally(rows, "base", margin=3)
    assert (t3.wins, t3.ties, t3.losses) == (2, 2, 2) and t3.net == 0.0
    rows.append({"comparisons": {"base": {"sda": None, "other": None, "error": "judge failed"}}})
    assert tally(rows, "base").n == 6  # judge failures are not counted as outcomes
    assert Tally().net == 0.0


def test_summary_groups_by_dataset_and_criterion():
    mk = lambda d, p, s, o: {"dataset": d, "preset": p, "lam": 0.5,
                             "comparisons": {"base": {"sda": s, "other": o}, "instruct": {"sda": o, "other": s}}}
    rep = summarise([mk("a", "honesty", 80, 20), mk("a", "honesty", 20, 80), mk("b", "empathy", 90, 10)])
    by = {(e["dataset"], e["criterion"]): e for e in rep["results"]}
    assert by[("a", "honesty")]["vs_base"]["net"] == 0.0 and by[("b", "empathy")]["vs_base"]["net"] == 1.0
    assert by[("b", "empathy")]["vs_instruct"]["net"] == -1.0


def test_pairwise_prompt_mentions_both_answers_and_the_zero_rule():
    m = pairwise_messages("q?", "first answer", "second answer", "rubric text", "honesty")[-1]["content"]
    assert "first answer" in m and "second answer" in m and "Give 0" in m and "score_b" in m


def test_an_item_records_the_one_lambda_decision(tiny_engine):
    params = SamplingParams(seed=1, max_tokens=4)
    row = answer_item(tiny_engine, FixedEvaluator(score=30), get_preset("honesty"), "Is it true?", params)
    assert (row["lam_source"], row["score"], row["evaluator_error"]) == ("fixed", 30, None)
    assert row["lam"] == pytest.approx(lambda_from_score(30)) and set(row["answers"]) == {"base", "instruct", "sda"}
    row = answer_item(tiny_engine, FixedEvaluator(lam=0.25), get_preset("honesty"), "Is it true?", params)
    assert (row["lam_source"], row["score"], row["lam"]) == ("fixed", None, 0.25)


@pytest.mark.slow
def test_winrate_end_to_end_with_the_local_judge_and_resume(tmp_path):
    data = tmp_path / "truthfulqa.mini.jsonl"
    rows = [{"Question": q, "Best Answer": "x", "Best Incorrect Answer": "y", "Correct Answers": "x",
             "Incorrect Answers": "y"} for q in ["Do we use only 10% of our brains?", "Is the Great Wall visible "
                                                 "from space?", "Does cracking knuckles cause arthritis?"]]
    data.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n{broken\n" + json.dumps(rows[2]) + "\n")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sda_local.cli", "eval", "winrate", "--dataset", str(data), "--out", str(out),
           "--max-tokens", "24", "--seed", "1", "--evaluator", "fixed", "--score", "30", "--judge", "local"]
    r = subprocess.run(cmd + ["--limit", "2"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    first = (out / "items.jsonl").read_text().splitlines()
    assert len(first) == 2
    # an interrupted write leaves a torn line: it is ignored, and the finished items are not redone
    with (out / "items.jsonl").open("a") as f:
        f.write('{"id": "truthfulqa.mini:4", "answ')
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert ":3: skipped" in r.stderr  # the malformed line, with its number
    lines = [json.loads(l) for l in (out / "items.jsonl").read_text().splitlines() if l.endswith("}")]
    assert [l["id"] for l in lines] == ["truthfulqa.mini:1", "truthfulqa.mini:2", "truthfulqa.mini:4"]
    assert (out / "items.jsonl").read_text().splitlines()[:2] == first
    rep = json.loads((out / "winrate.json").read_text())
    res = rep["results"][0]
    assert res["n"] == 3 and res["criterion"] == "honesty"
    for s in ("vs_base", "vs_instruct"):
        t = res[s]
        assert t["wins"] + t["ties"] + t["losses"] + res["judge_errors"] >= 3
    row = lines[0]
    assert set(row["answers"]) == {"base", "instruct", "sda"} and row["lam"] == pytest.approx(lambda_from_score(30))
    assert row["lam_source"] == "fixed" and row["score"] == 30
    c = row["comparisons"]["base"]
    assert 0 <= c["sda"] <= 100 and 0 <= c["other"] <= 100 and isinstance(c["sda_first"], bool)
    assert (out / "winrate.md").read_text().startswith("# Win rate")
    assert (out / "winrate.png").stat().st_size > 1000


def test_comparisons_of_a_placement_grid():
    assert comparisons(("user",)) == [("base", "sda", "base"), ("instruct", "sda", "instruct")]
    assert comparisons(("user", "matched")) == [
        ("sda user vs base", "sda user", "base"), ("sda user vs instruct user", "sda user", "instruct user"),
        ("sda matched vs base", "sda matched", "base"),
        ("sda matched vs instruct matched", "sda matched", "instruct matched")]
    assert WinrateConfig(placements=("matched",)).systems() == ["base", "instruct", "sda"]
    with pytest.raises(ValueError, match="'nowhere'"):
        WinrateConfig(placements=("user", "nowhere"))


def test_an_item_answers_under_each_placement_with_one_lambda(tiny_engine):
    params = SamplingParams(seed=1, max_tokens=4)
    grid = answer_item(tiny_engine, FixedEvaluator(score=30), get_preset("honesty"), "Is it true?", params,
                       placements=("user", "matched"))
    assert list(grid["answers"]) == ["base", "instruct user", "sda user", "instruct matched", "sda matched"]
    for p in ("user", "matched"):
        one = answer_item(tiny_engine, FixedEvaluator(score=30), get_preset("honesty"), "Is it true?", params,
                          placements=(p,))
        assert one["answers"] == {"base": grid["answers"]["base"], "instruct": grid["answers"][f"instruct {p}"],
                                  "sda": grid["answers"][f"sda {p}"]} and one["lam"] == grid["lam"]


def test_summary_of_a_grid_and_the_quality_table():
    from sda_local.evaluation import quality

    def row(s_user, s_matched):
        answers = {"base": "b", "instruct user": "i", "sda user": "Be truthful: state only what is factually correct",
                   "instruct matched": "i", "sda matched": "fine"}
        return {"dataset": "a", "preset": "honesty", "lam": 0.5, "answers": answers,
                "quality": {s: quality.answer_quality(t, get_preset("honesty").instruction).to_dict()
                            for s, t in answers.items()},
                "fluency": {s: -1.0 for s in answers},
                "comparisons": {"sda user vs base": {"sda": s_user, "other": 50},
                                "sda user vs instruct user": {"sda": s_user, "other": 50},
                                "sda matched vs base": {"sda": s_matched, "other": 50},
                                "sda matched vs instruct matched": {"sda": s_matched, "other": 50}}}
    rep = summarise([row(90, 10), row(60, 10)], ("user", "matched"))
    e = rep["results"][0]
    by = {c["key"]: c["tally"] for c in e["comparisons"]}
    assert by["sda user vs base"]["net"] == 1.0 and by["sda matched vs instruct matched"]["net"] == -1.0
    assert "vs_base" not in e
    q = rep["quality"]
    assert q["sda user"]["echo"]["k"] == 2 and q["sda matched"]["echo"]["k"] == 0
    assert q["base"]["fluency_logprob"]["mean"] == -1.0
    md = markdown({**rep, "run": {"placements": ["user", "matched"]}})
    assert "| a | honesty | SDA matched vs instruct matched | 2 | 0 | 0 | 2 |" in md
    assert "## Answer quality" in md and "| sda user | 2 | 100.0% (2/2)" in md


def test_resume_adds_the_measures_an_old_item_lacks(tiny_engine, tmp_path):
    """An item logged before the quality measures existed is completed, not answered or judged again."""
    from sda_local.evaluation.datasets import load_jsonl

    data = tmp_path / "truthfulqa.t.jsonl"
    data.write_text(json.dumps({"Question": "Is it true?", "Best Answer": "x", "Correct Answers": "x",
                                "Incorrect Answers": "y"}) + "\n")
    answers = {"base": "It is true.", "instruct": "Yes it is true, true, true.", "sda": "I am not sure."}
    old = {"id": "truthfulqa.t:1", "dataset": "truthfulqa.t", "preset": "honesty", "prompt": "Is it true?",
           "answers": answers, "score": 30, "lam": 0.8, "lam_source": "fixed",
           "comparisons": {"base": {"sda": 70, "other": 40}, "instruct": {"sda": 50, "other": 50}}}
    out = tmp_path / "run"
    out.mkdir()
    (out / "items.jsonl").write_text(json.dumps(old) + "\n")
    never = FixedEvaluator(score=1)  # nothing is judged: the item is done
    rep = run_winrate(tiny_engine, never, never, [load_jsonl(data)], out, WinrateConfig(), progress=False)
    row = json.loads((out / "items.jsonl").read_text())
    assert row["comparisons"] == old["comparisons"] and row["answers"] == answers
    assert set(row["quality"]) == set(row["fluency"]) == set(answers) and all(v < 0 for v in row["fluency"].values())
    assert rep["quality"]["sda"]["n"] == 1 and rep["results"][0]["vs_base"]["wins"] == 1
    assert "## Answer quality" in (out / "winrate.md").read_text()
