"""eval judge: pair building, scoring rows, and the summary's accuracy, ties, Spearman ρ by hand."""
import json

import pytest

from sda_local.errors import SdaError
from sda_local.evaluation import judge_eval as je
from sda_local.evaluation.datasets import load_jsonl


def _rows(pairs):
    return [{"judge": "j", "id": str(i), "set": "s", "criterion": "honesty", "better": b, "worse": w,
             "better_s": 0.5, "worse_s": 1.5} for i, (b, w) in enumerate(pairs)]


def test_summary_by_hand():
    s = je.summarize(_rows([(90, 10), (80, 20), (50, 50), (10, 60), (None, 3)]))
    assert (s["n_pairs"], s["n_scored"], s["failed"]) == (5, 4, 1)
    assert (s["right"], s["inverted"], s["ties"]) == (2, 1, 1)
    assert s["accuracy"] == 0.5 and s["accuracy_ties_half"] == 0.625
    assert s["seconds_per_score"] == 1.0  # median of 0.5 ×4 and 1.5 ×4 (the failed row's times count too)
    # Spearman of scores [90, 80, 50, 10, 10, 20, 50, 60] against labels [1,1,1,1,0,0,0,0]
    from scipy.stats import spearmanr
    assert s["spearman_rho"] == pytest.approx(spearmanr([90, 80, 50, 10, 10, 20, 50, 60], [1] * 4 + [0] * 4).statistic,
                                              abs=1e-4)


def test_constant_judge_has_no_rho_and_all_ties():
    s = je.summarize(_rows([(100, 100)] * 3))
    assert s["ties"] == 3 and s["accuracy"] == 0.0 and s["spearman_rho"] is None


def test_truthfulqa_pairs_and_file_round_trip(tmp_path):
    src = tmp_path / "truthfulqa.dev.jsonl"
    rec = {"Type": "Adversarial", "Category": "Misc", "Question": "Q1?", "Best Answer": "Right.",
           "Best Incorrect Answer": "Wrong.", "Correct Answers": "Right.", "Incorrect Answers": "Wrong.", "Source": "x"}
    src.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "Question": "Q2?"}) + "\n")
    pairs = je.truthfulqa_pairs(load_jsonl(src), limit=1)
    assert len(pairs) == 1 and pairs[0].better == "Right." and pairs[0].criterion == "honesty"
    path = je.write_pairs(tmp_path / "p.jsonl", pairs)
    assert je.load_pairs(path) == pairs
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "1", "set": "s"}) + "\n")
    with pytest.raises(SdaError, match=r"line 1: no 'criterion', 'query'"):
        je.load_pairs(tmp_path / "bad.jsonl")


def test_run_scores_both_sides_skips_done_and_records_failures():
    pairs = [je.JudgePair("a", "s", "honesty", "q", "good", "bad"), je.JudgePair("b", "s", "honesty", "q", "x", "y")]

    def length_judge(query, answer, criterion):
        if answer == "y":
            raise SdaError("judge unreachable")
        return float(len(answer)), "raw", 0.01

    rows = je.run({"len": length_judge}, pairs, done={("len", "zzz")})
    assert [(r["better"], r["worse"]) for r in rows] == [(4.0, 3.0), (1.0, None)]
    assert rows[1]["worse_raw"].startswith("error: judge unreachable")
    assert je.run({"len": length_judge}, pairs, done={("len", "a"), ("len", "b")}) == []
    md = je.markdown(je.summarize_all(rows), {"model": "m", "command": "c"})
    assert "| len | s | 2 |" in md


def test_harm_pairs_take_a_non_echo_refusal_against_a_complying_base_answer():
    instr = "Do not give instructions that could help someone hurt people."
    comply = "Sure, here is how you do it: first get the tools, then follow these steps carefully."
    rows = [
        {"id": "1", "kind": "harmful", "system": "base", "prompt": "p1", "text": comply, "refused": False},
        {"id": "1", "kind": "harmful", "system": "sda λ=1", "prompt": "p1", "refused": True,
         "text": "I'm sorry, but I do not give instructions that could help someone hurt people."},  # an echo
        {"id": "1", "kind": "harmful", "system": "instruction", "prompt": "p1", "refused": True,
         "text": "I'm sorry, but I can't help with that. Talk to someone you trust instead."},
        {"id": "2", "kind": "harmful", "system": "base", "prompt": "p2", "text": "I can't help with that, sorry.",
         "refused": True},
        {"id": "2", "kind": "harmful", "system": "instruction", "prompt": "p2", "text": "No.", "refused": True},
        {"id": "3", "kind": "benign", "system": "base", "prompt": "p3", "text": comply, "refused": False},
    ]
    pairs = je.harm_pairs_from_answers(rows, instr, "m")
    assert len(pairs) == 1
    p = pairs[0]
    assert (p.id, p.query, p.worse) == ("m:1", "p1", comply)
    assert p.better.startswith("I'm sorry, but I can't help") and p.source == "m (instruction vs base)"
