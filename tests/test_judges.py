"""The probability-reading judges (geval, reason, yesno) and the self-score: hand-computed math, the tokens they
read in real vocabularies, and end-to-end scores on the tiny random GGUF (mechanics) and SmolLM2."""
import math
import threading

import numpy as np
import pytest
from scipy.special import log_softmax

from sda_local import core
from sda_local.judges import (
    EVALUATOR_KINDS,
    EvaluatorError,
    GEvalEvaluator,
    ReasonedEvaluator,
    SelfScoreEvaluator,
    YesNoEvaluator,
    make_evaluator,
)
from sda_local.judges.choice_tokens import DigitScale, find_choices
from sda_local.judges.decision import decide_lambda
from sda_local.runtime.prompts import ChatPrompter
from sda_local.judges.reasoned import MAX_CRITIQUE_TOKENS, reason_messages
from sda_local.judges.scales import (
    SELF_SCORE_TAU,
    expected_rating,
    mean_logprob_gap,
    rating_distribution,
    rating_to_score,
    self_score,
    yes_no_score,
)
from sda_local.presets import get_preset
from sda_local.runtime.backend import LoadedModel
from sda_local.runtime.models import (
    is_assembled,
    is_available,
    load_registry,
    resolve_model,
)
from sda_local.runtime.teacher_forcing import TeacherForcer

Q, A = "What is the capital of France?", "Paris is the capital of France."


# -- pure math, by hand -----------------------------------------------------------------------------------------
def test_rating_distribution_splits_one_into_one_and_ten():
    p = [0.1, 0.2, 0, 0, 0, 0, 0, 0, 0.3]  # "1", "2", …, "9"
    d = rating_distribution(p, 0.25)
    assert d.tolist() == pytest.approx([0.075, 0.2, 0, 0, 0, 0, 0, 0, 0.3, 0.025])
    d = rating_distribution(p, 0.0, p_ten=0.4)  # a vocabulary with one "10" token
    assert d[0] == pytest.approx(0.1) and d[9] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="9 values"):
        rating_distribution([0.5] * 10, 0.0)
    with pytest.raises(ValueError, match="probability"):
        rating_distribution(p, 1.5)


def test_expected_rating_and_linear_map():
    assert expected_rating([0.5, 0.5]) == 1.5
    assert expected_rating([1, 0, 0, 3]) == pytest.approx((1 * 1 + 4 * 3) / 4)  # 3.25, unnormalised weights
    assert expected_rating([2, 2], values=[10, 20]) == 15
    with pytest.raises(ValueError, match="no probability"):
        expected_rating([0, 0, 0])
    assert rating_to_score(1) == 1 and rating_to_score(10) == 100 and rating_to_score(5.5) == 50.5
    assert rating_to_score(4) == pytest.approx(1 + 99 * 3 / 9)  # 34
    with pytest.raises(ValueError, match="rating"):
        rating_to_score(0.5)
    # the whole G-Eval read: P(6) = .6, P(7) = .3, P("1") = .1 of which "0" follows half → 1: .05, 10: .05
    d = rating_distribution([0.1, 0, 0, 0, 0, 0.6, 0.3, 0, 0], 0.5)
    e = 0.05 * 1 + 0.6 * 6 + 0.3 * 7 + 0.05 * 10
    assert expected_rating(d) == pytest.approx(e) and rating_to_score(expected_rating(d)) == pytest.approx(1 + 11 * (e - 1))


def test_yes_no_score_by_hand():
    assert yes_no_score(0.3, 0.1) == pytest.approx(1 + 99 * 0.75)
    assert yes_no_score(1, 0) == 100 and yes_no_score(0, 0.2) == 1 and yes_no_score(0.2, 0.2) == 50.5
    with pytest.raises(ValueError, match="no probability"):
        yes_no_score(0, 0)


def test_self_score_map_by_hand():
    sig1 = 1 / (1 + math.exp(-1))  # 0.7310585786
    assert self_score(0.0) == 50.5
    assert self_score(SELF_SCORE_TAU) == pytest.approx(1 + 99 * sig1)      # 73.37
    assert self_score(-SELF_SCORE_TAU) == pytest.approx(1 + 99 * (1 - sig1))  # 27.63
    assert self_score(0.2, tau=0.2) == pytest.approx(1 + 99 * sig1)
    assert self_score(1e4) == 100 and self_score(-1e4) == 1  # no overflow
    assert self_score(-0.01) < self_score(0.0) < self_score(0.01)
    with pytest.raises(ValueError):
        self_score(float("nan"))


def test_mean_logprob_gap_by_hand():
    # position 0: with [0, 0] → log p(y=1) = −ln 2; without [ln 3, 0] → −ln 4; gap ln 2
    # position 1: with [0, ln 3] → log p(y=0) = −ln 4; without [0, 0] → −ln 2; gap −ln 2 … mean 0
    w = np.array([[0.0, 0.0], [0.0, math.log(3)]])
    wo = np.array([[math.log(3), 0.0], [0.0, 0.0]])
    assert mean_logprob_gap(w[:1], wo[:1], [1]) == pytest.approx(math.log(2))
    assert mean_logprob_gap(w, wo, [1, 0]) == pytest.approx(0.0, abs=1e-12)
    # targets [1, 1]: position 1 gives (ln 3 − ln 4) − (−ln 2) = ln 1.5, so the mean is (ln 2 + ln 1.5) / 2 = ln 3 / 2
    assert mean_logprob_gap(w, wo, [1, 1]) == pytest.approx(math.log(3) / 2)
    with pytest.raises(ValueError, match="targets"):
        mean_logprob_gap(w, wo, [1])


# -- the tokens the judges read ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tiny_gguf):
    m = LoadedModel(tiny_gguf)
    yield m
    m.close()


def _tok(model):
    return lambda text: model.tokenize(text, add_bos=False, special=False)


def test_digit_scale_on_the_tiny_vocabulary(tiny_model):
    tok = _tok(tiny_model)
    scale = DigitScale.build(tok, "Rating: ")
    assert list(scale.prefix) == tok("Rating: 7")[:-1]
    assert [scale.choices.first[d - 1] for d in range(1, 10)] == [tok(str(d))[0] for d in range(1, 10)]
    assert scale.zero == tok("0")[0] and scale.ten is None and scale.one == tok("1")[0]
    # distribution read from a hand-made log-prob row: P("7") = .5, P("1") = .2, P("0" | "1") = .25
    lp = np.full(tiny_model.n_vocab, -np.inf, dtype=np.float32)
    lp[tok("7")[0]], lp[tok("1")[0]] = math.log(0.5), math.log(0.2)
    after_one = np.full(tiny_model.n_vocab, -np.inf, dtype=np.float32)
    after_one[scale.zero] = math.log(0.25)
    d = scale.distribution(lp, after_one)
    assert d.tolist() == pytest.approx([0.15, 0, 0, 0, 0, 0, 0.5, 0, 0, 0.05], abs=1e-7)


def test_yes_no_choices_fall_back_to_the_first_letter_in_the_tiny_vocabulary(tiny_model):
    tok = _tok(tiny_model)
    ch = find_choices(tok, "Answer: ", ["Yes", "No"])
    assert ch.first == (tok("Y")[0], tok("N")[0]) and ch.whole == (False, False)
    assert list(ch.prefix) == tok("Answer: ")
    with pytest.raises(EvaluatorError, match="same token"):
        find_choices(tok, "Answer: ", ["Yes", "Yep"])


def _shipped_vocabularies():
    out = []
    for e in load_registry().values():
        ok = is_available(e) and (e.source != "parts" or is_assembled(e.split_file()))
        out.append(pytest.param(e.id, marks=[pytest.mark.slow] + ([] if ok else [pytest.mark.skip("not installed")])))
    return out


@pytest.mark.parametrize("model_id", _shipped_vocabularies())
def test_digits_and_yes_no_are_single_tokens_in_every_shipped_vocabulary(model_id):
    from llama_cpp import Llama

    vocab = Llama(str(resolve_model(model_id).path), vocab_only=True, verbose=False)

    def tok(text):
        return vocab.tokenize(text.encode(), add_bos=False, special=False)

    scale = DigitScale.build(tok, "Rating: ")  # raises unless 1 … 9 are single tokens
    assert all(scale.choices.whole) and (scale.zero is not None or scale.ten is not None)
    for d in range(10):
        assert len(tok(str(d))) == 1, f"digit {d} is not one token in {model_id}"
    yn = find_choices(tok, "Answer: ", ["Yes", "No"])
    assert yn.whole == (True, True)


# -- end to end on the tiny GGUF --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_judges(tiny_model):
    judges = {"geval": GEvalEvaluator(tiny_model, n_ctx=2048, label="tiny"),
              "reason": ReasonedEvaluator(tiny_model, n_ctx=2048, label="tiny"),
              "yesno": YesNoEvaluator(tiny_model, n_ctx=2048, label="tiny"),
              "self": SelfScoreEvaluator(tiny_model, n_ctx=512, label="tiny")}
    yield judges
    for j in judges.values():
        j.close()


@pytest.mark.parametrize("kind", ["geval", "reason", "yesno", "self"])
def test_each_judge_scores_in_range_with_its_raw_reply_and_repeats_itself(tiny_judges, kind):
    ev = tiny_judges[kind]
    s = ev.score(Q, A, "honesty")
    assert isinstance(s.value, float) and 1 <= s.value <= 100 and s.value == round(s.value, 2)
    assert s.evaluator == f"{kind}:tiny" and s.criterion == "honesty" and s.latency_s > 0
    starts = {"geval": "Rating: ", "reason": "Rating: ", "yesno": "Answer: ", "self": "r = "}[kind]
    assert s.raw.startswith(starts)
    ev.score(Q, "Berlin is the capital of France.", "honesty")  # the cache now holds another prompt
    again = ev.score(Q, A, "honesty")
    assert (again.value, again.raw) == (s.value, s.raw)


def test_geval_raw_reports_the_expectation_it_scored(tiny_judges):
    s = tiny_judges["geval"].score(Q, A, "honesty")
    expected = float(s.raw.split("expected ")[1].split(";")[0])
    assert s.value == pytest.approx(rating_to_score(expected), abs=0.06)  # the raw text rounds E to 0.01


def test_reason_judge_writes_a_bounded_critique_then_reads_the_rating(tiny_judges):
    ev = tiny_judges["reason"]
    s = ev.score(Q, A, "honesty")
    assert s.raw.startswith("Rating: ") and "expected" in s.raw and s.raw.count("\nCritique:") == 1
    toks, _ = ev.prompt(reason_messages(Q, A, get_preset("honesty").rubric, "honesty"), 100)
    with ev.judge.lock:
        critique = ev.judge.greedy(toks + ev.judge.tokenize("Critique:"), MAX_CRITIQUE_TOKENS)
        short = ev.judge.greedy(toks, 3)
    pieces = [ev.judge.model.token_bytes(t) for t in critique]
    assert 0 < len(critique) <= MAX_CRITIQUE_TOKENS and not any(b"\n" in p for p in pieces[:-1])
    assert len(short) <= 3


def test_judges_are_thread_safe(tiny_judges):
    ev = tiny_judges["geval"]
    answers = [A, "Berlin.", "I am not sure.", "Lyon, probably."]
    alone = [ev.score(Q, a, "honesty").value for a in answers]
    got: dict[int, float] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, ev.score(Q, answers[i], "honesty").value))
               for i in range(len(answers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(len(answers))] == alone


def test_over_long_answers_are_cut_with_a_warning(tiny_judges):
    long = "the safe help is true " * 400
    for kind in ("geval", "yesno", "self"):
        s = tiny_judges[kind].score(Q, long, "honesty")
        assert 1 <= s.value <= 100 and any("cut" in w for w in s.warnings), kind


def test_probability_judges_refuse_free_form_prompts_and_self_needs_a_preset(tiny_judges):
    with pytest.raises(EvaluatorError, match="free-form"):
        tiny_judges["yesno"].ask([{"role": "user", "content": "hi"}], {"score": (1, 100)})
    with pytest.raises(EvaluatorError, match="not a preset"):
        tiny_judges["self"].score(Q, A, "Rate how funny it is.")
    with pytest.raises(EvaluatorError, match="non-empty"):
        tiny_judges["self"].score(Q, "   ", "honesty")


def hand_gap(fa) -> float:
    """The mean log p_with − log p_without of a forced answer's tokens, by scipy, from the raw logits."""
    rows = np.arange(len(fa.targets))
    lw = log_softmax(fa.logits_with.astype(np.float64), axis=1)[rows, fa.targets]
    ln = log_softmax(fa.logits_without.astype(np.float64), axis=1)[rows, fa.targets]
    return float(np.mean(lw - ln))


def test_self_score_is_the_mean_log_prob_gap_from_teacher_forced_logits(tiny_model):
    ev = SelfScoreEvaluator(tiny_model, n_ctx=512)
    tf = TeacherForcer(tiny_model, ChatPrompter.for_model(tiny_model), n_ctx=1024, n_seq_max=4)  # the same layout
    try:
        s = ev.score(Q, A, "honesty")
        fa = tf.force([{"role": "user", "content": Q}], get_preset("honesty").instruction, [A], placement="user")[0]
    finally:
        tf.close()
        ev.close()
    r = hand_gap(fa)
    assert s.raw.startswith(f"r = {r:+.4f} nats/token over {len(fa.targets)} tokens")
    assert s.value == pytest.approx(round(1 + 99 / (1 + math.exp(-r / SELF_SCORE_TAU)), 2), abs=1e-9)


@pytest.mark.parametrize("contrast", ["ignore", "opposite"])
def test_self_score_with_a_contrast_forces_the_contrast_line_into_the_stream_without(tiny_model, contrast):
    ev = SelfScoreEvaluator(tiny_model, n_ctx=512, label="tiny", contrast=contrast)
    tf = TeacherForcer(tiny_model, ChatPrompter.for_model(tiny_model), n_ctx=1024, n_seq_max=4)
    honesty = get_preset("honesty")
    msgs = [{"role": "user", "content": Q}]
    try:
        assert ev.name == f"self:tiny:{contrast}"
        s = ev.score(Q, A, "honesty")
        fa = tf.force(msgs, honesty.instruction, [A], placement="user", contrast=contrast,
                      opposite=honesty.opposite)[0]
        plain = tf.force(msgs, honesty.instruction, [A], placement="user")[0]
    finally:
        tf.close()
        ev.close()
    assert s.raw.startswith(f"r = {hand_gap(fa):+.4f} nats/token")
    # the contrast line really is in the stream without: its logits differ from the empty stream's
    assert not np.array_equal(fa.logits_without, plain.logits_without)
    np.testing.assert_array_equal(fa.logits_with, plain.logits_with)


def test_self_score_refuses_an_unknown_contrast(tiny_model):
    with pytest.raises(EvaluatorError, match="contrast must be one of"):
        SelfScoreEvaluator(tiny_model, n_ctx=512, contrast="reverse")


def test_judges_borrow_the_engines_model_and_leave_its_cache_alone(tiny_engine):
    msgs = [{"role": "user", "content": Q}]
    tiny_engine.twin_logits(msgs, "Be brief.")  # from now on the engine re-decodes only the last prompt token
    before = tiny_engine.twin_logits(msgs, "Be brief.")
    for kind in ("geval", "reason", "yesno", "self"):
        assert kind in EVALUATOR_KINDS
        ev = make_evaluator(kind, engine=tiny_engine, n_ctx=2048)
        try:
            inner = ev.model if kind == "self" else ev.judge.model
            assert inner is tiny_engine.model and ev.name == f"{kind}:{tiny_engine.name}"
            if kind == "self":
                assert ev.prompter is tiny_engine.prompter
            ev.score(Q, A, "honesty")
        finally:
            ev.close()
    after = tiny_engine.twin_logits(msgs, "Be brief.")
    assert (before[0] == after[0]).all() and (before[1] == after[1]).all()
    assert tiny_engine.model.n_vocab > 0  # the borrowed model is still open


def test_a_float_score_sets_lambda_through_the_mapping(tiny_judges):
    d = decide_lambda(tiny_judges["geval"], Q, A, get_preset("honesty"), "sigmoid")
    assert d.source == "score" and isinstance(d.score_value, float)
    assert d.lam == pytest.approx(core.lambda_from_score(d.score_value, "sigmoid"))


# -- SmolLM2: mechanics only ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_geval_on_smollm2_reads_single_digit_tokens_and_scores_in_range():
    ev = GEvalEvaluator("smollm2-135m", n_ctx=1024)
    try:
        tok = ev.judge.tokenize
        assert all(len(tok(str(d))) == 1 for d in range(10)) and ev.scale.zero == tok("0")[0]
        for answer in ("The capital of France is Berlin.", "Paris."):
            s = ev.score(Q, answer, "honesty")
            assert 1 <= s.value <= 100 and s.raw.startswith("Rating: ") and "expected" in s.raw
    finally:
        ev.close()
