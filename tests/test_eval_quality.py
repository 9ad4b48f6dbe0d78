"""Judge-free quality measures: hand-computed cases for echo, distinct-n, longest repeat and the summaries."""
import json
import math
from pathlib import Path

import pytest

from sda_local.evaluation import quality as q

INSTR = ("Answer safely: do not give instructions, encouragement or details that could help someone hurt people, "
         "break the law or cause damage.")


def test_words_fold_case_and_quotes():
    assert q.words("Don\u2019t STOP, it's fine!") == ["don't", "stop", "it's", "fine"]


def test_longest_shared_run_by_hand():
    assert q.longest_shared_run("I will not break the law today", INSTR) == 3       # "break the law"
    assert q.longest_shared_run("nothing in common here", INSTR) == 0
    recital = "Sure. Do not give instructions, encouragement or details that could help."
    assert q.longest_shared_run(recital, INSTR) == 10  # do not give instructions encouragement or details that could help


def test_echo_threshold():
    # "break the law or cause damage" is a 6-word run of the instruction: at the threshold exactly
    text = "That would break the law or cause damage."
    assert q.echoes_instruction(text, INSTR, n=7) is False
    assert q.echoes_instruction(text, INSTR, n=6) is True
    with pytest.raises(ValueError, match="≥ 1"):
        q.echoes_instruction(text, INSTR, n=0)


def test_distinct_2_by_hand():
    # bigrams: (a b) (b a) (a b) (b a) → 2 unique of 4
    assert q.distinct_n("a b a b a", 2) == 0.5
    assert q.distinct_n("one two three four", 2) == 1.0
    assert q.distinct_n("short", 2) == 1.0


def test_longest_repeat_by_hand():
    assert q.longest_repeat("the cat sat on the mat") == 1            # "the"
    assert q.longest_repeat("I am here. I am here. I am here.") == 6  # overlapping occurrences count
    assert q.longest_repeat("all different words") == 0


def test_answer_quality_flags_loops():
    loop = " ".join(["please be safe and kind"] * 4)
    aq = q.answer_quality(loop, INSTR)
    assert aq.degenerate and aq.longest_repeat == 15 and not aq.echo
    fine = q.answer_quality("Bleach and vinegar release chlorine gas, which harms the lungs; never mix them.", INSTR)
    assert not fine.degenerate and not fine.echo and fine.distinct_2 == 1.0


def test_summarize_rates_and_intervals():
    rows = [{"quality": q.answer_quality(t, INSTR).to_dict(), "fluency": f}
            for t, f in [("do not give instructions, encouragement or details that could help", -1.0),
                         ("Mixing them is dangerous.", -2.0), ("It is fine to ask.", None)]]
    s = q.summarize(rows)
    assert s["n"] == 3
    assert s["echo"]["k"] == 1 and s["echo"]["n"] == 3
    assert s["fluency_logprob"]["n"] == 2 and s["fluency_logprob"]["mean"] == -1.5
    lo, hi = s["echo"]["ci95"]
    assert 0 < lo < 1 / 3 < hi < 1


def echo_run_table(answers_by_system: dict, instruction: str, runs=(3, 4, 5, 6, 8, 10)) -> dict:
    """For each system, the share of answers sharing a run of ≥ n words with the instruction, per n: the
    calibration behind ``ECHO_RUN`` (a good n is 0 % on answers that never saw the instruction)."""
    iw = q.words(instruction)
    out = {}
    for name, texts in answers_by_system.items():
        lengths = [q.longest_shared_run(q.words(t), iw) for t in texts]
        out[name] = {n: (sum(x >= n for x in lengths) / len(lengths) if lengths else 0.0) for n in runs}
    return out


def test_echo_run_table_on_committed_run():
    """The calibration behind ECHO_RUN: base answers never share a 6-word run with the instruction."""
    root = Path(__file__).resolve().parents[1] / "results" / "refusal"
    cfg = json.loads((root / "config.json").read_text())
    rows = [json.loads(line) for line in (root / "items.jsonl").read_text().splitlines() if line.strip()]
    by = {}
    for r in rows:
        by.setdefault(r["system"], []).append(r["text"])
    table = echo_run_table(by, cfg["instruction"], runs=(3, q.ECHO_RUN))
    assert table["base"][3] == 0.0 and table["base"][q.ECHO_RUN] == 0.0
    assert table["sda λ=1"][q.ECHO_RUN] > 0.5


def test_markdown_table_shows_rates_means_and_a_dash_for_unmeasured_fluency():
    rows = [{"quality": q.answer_quality(t, INSTR).to_dict()}
            for t in ["do not give instructions, encouragement or details that could help", "Mixing is dangerous."]]
    table = q.markdown_table({"sda": q.summarize(rows)})
    cells = table.splitlines()[2].split(" | ")
    assert cells[0] == "| sda" and cells[1] == "2" and cells[2].startswith("50.0% (1/2) [")
    assert cells[3].startswith("0.0% (0/2)") and cells[-1] == "— |"
    rows[0]["fluency"], rows[1]["fluency"] = -1.0, -3.0
    assert q.markdown_table({"sda": q.summarize(rows)}).splitlines()[2].endswith(
        "| -2.000 ± 1.000 [-3.960, -0.040] (n=2) |")


def test_mean_token_logprob_by_hand():
    from sda_local.evaluation.fluency import mean_token_logprob

    logits = [[0.0, math.log(3.0)], [5.0, 5.0]]  # p(1) = 3/4 at the first position, p(0) = 1/2 at the second
    assert mean_token_logprob(logits, [1, 0]) == pytest.approx((math.log(0.75) + math.log(0.5)) / 2)
    with pytest.raises(ValueError):
        mean_token_logprob(logits, [1])


def test_fluency_is_the_base_streams_mean_logprob(tiny_engine):
    """Checked against the engine's own twin-stream logits, token by token, on the plain prompt."""
    from sda_local.evaluation.fluency import FluencyScorer, mean_token_logprob

    scorer = FluencyScorer.for_engine(tiny_engine)
    try:
        got = scorer.score("Is the sea safe?", ["the sea is safe", "", "   "])
        toks = scorer.forcer.answer_tokens("the sea is safe")
    finally:
        scorer.close()
    assert got[1:] == [None, None] and got[0] < 0
    msgs = [{"role": "user", "content": "Is the sea safe?"}]
    rows = [tiny_engine.twin_logits(msgs, "Be brief.", toks[:i])[1] for i in range(len(toks))]  # stream B: base
    assert got[0] == pytest.approx(mean_token_logprob(rows, toks), abs=2e-3)


# -- narration: the answer talks about following the instruction instead of doing it ----------------------------
def _narration_examples():
    import json
    from pathlib import Path
    return json.loads((Path(__file__).parent / "data" / "narration_examples.json").read_text("utf-8"))["examples"]


def test_narration_labels_of_the_committed_examples():
    from sda_local.evaluation.quality import narrates_instruction
    from sda_local.presets import get_preset
    examples = _narration_examples()
    assert sum(e["narrates"] for e in examples) >= 5 and sum(not e["narrates"] for e in examples) >= 5
    for e in examples:
        assert narrates_instruction(e["text"], get_preset(e["preset"]).instruction) is e["narrates"], e["text"]


def test_narration_names_the_sentences_and_is_in_the_quality_record():
    from sda_local.evaluation.quality import (
        answer_quality,
        narrating_sentences,
        summarize,
    )
    from sda_local.presets import get_preset
    instr = get_preset("empathy").instruction
    text = "That sounds hard. First, I want to acknowledge how you feel. Next, I want to show that I listened."
    assert narrating_sentences(text, instr) == ["First, I want to acknowledge how you feel.",
                                                "Next, I want to show that I listened."]
    q = answer_quality(text, instr)
    assert q.narration is True and q.to_dict()["narration"] is True and q.echo is False
    assert answer_quality("That sounds hard; you did your best.", instr).narration is False
    s = summarize([{"quality": q.to_dict()}, {"quality": answer_quality("Fine.", instr).to_dict()}])
    assert (s["narration"]["k"], s["narration"]["n"]) == (1, 2)


def test_no_committed_base_answer_narrates():
    """Base answers never saw the instruction: any flag among them would be a false alarm of the measure."""
    import glob
    import json
    from pathlib import Path

    from sda_local.evaluation.quality import narrates_instruction
    from sda_local.presets import builtin_presets
    presets = builtin_presets()
    root = Path(__file__).resolve().parent.parent / "results"
    n = 0
    for f in glob.glob(str(root / "**" / "*.jsonl"), recursive=True):
        for line in Path(f).read_text("utf-8").splitlines():
            row = json.loads(line) if line.strip().startswith("{") else {}
            answers, name = row.get("answers"), row.get("preset") or ("harmlessness" if "refusal" in f else None)
            if isinstance(answers, dict) and isinstance(answers.get("base"), str) and name in presets:
                n += 1
                assert not narrates_instruction(answers["base"], presets[name].instruction), (f, answers["base"])
    assert n >= 100
