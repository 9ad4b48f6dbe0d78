"""The fast scorer (``edge_logprobs``), the answer prefix tree and prefix-shared teacher forcing.

``edge_logprobs`` must give, value for value, what each setting's processor chain followed by
``core.target_logprobs`` gives (the per-position loop the scorer used before issue 14): compared bit for bit on
random logits, at SmolLM2's and Qwen's vocabulary sizes.  Prefix sharing is checked on the tiny GGUF against the
default layout (same computation; llama.cpp's rounding may differ with the batch layout).
"""
from __future__ import annotations

import numpy as np
import pytest

from scoring_support import answer_logprobs
from sda_local import core
from sda_local.core.distributions import check_pair, js_from_logprobs, log_softmax32
from sda_local.evaluation.token_logprobs import (
    default_settings,
    edge_logprobs,
)
from sda_local.evaluation.truthfulqa import TruthfulQAConfig, score_question
from sda_local.runtime.answer_tree import AnswerTree
from sda_local.runtime.teacher_forcing import ForcedTree, TeacherForcer


def chain_logprobs(zw, zn, rows, targets, settings, k=2.0, t0=0.6):
    """The reference: every (row, target) pair through every setting's processor chain, one at a time."""
    chains = [s.chain(k=k, t0=t0) for s in settings]
    out = np.empty((len(settings), len(targets)))
    for e, (r, y) in enumerate(zip(rows, targets)):
        lw, ln = (log_softmax32(x) for x in check_pair(zw[r], zn[r]))
        js = js_from_logprobs(lw, ln)
        for j, (s, chain) in enumerate(zip(settings, chains)):
            lp = lw if s.kind != "base" else ln
            state = core.StepState(lw, ln, lw, js=js) if s.kind == "sda" else core.StepState(lp, None, lp)
            out[j, e] = core.target_logprobs(chain.apply(state).scores[None], [int(y)])[0]
    return out


@pytest.mark.parametrize("n_vocab,n_rows", [(300, 9), (49152, 6), (151936, 3)])
def test_edge_logprobs_equal_the_processor_chains_bit_for_bit(n_vocab, n_rows):
    rng = np.random.default_rng(n_vocab)
    zw = (rng.standard_normal((n_rows, n_vocab)) * 4).astype(np.float32)
    zn = zw + rng.standard_normal((n_rows, n_vocab)).astype(np.float32)
    zw[0] *= 12  # a wide row: many scores whose exp is subnormal in float32 (the scorer skips those)
    rows = np.concatenate([np.arange(n_rows), rng.integers(0, n_rows, 5)])  # rows with several targets
    targets = rng.integers(0, n_vocab, rows.size)
    targets[:n_rows] = zw.argmax(axis=1)  # the likeliest "with" token: kept by its plausibility constraint
    settings = default_settings(plausibilities=(0.0, 0.05, 0.5))
    got, js = edge_logprobs(zw, zn, rows, targets, settings, block_elems=2 * n_vocab)  # blocks of 2 rows
    want = chain_logprobs(zw, zn, rows, targets, settings)
    assert np.array_equal(got, want)  # the same float32 steps; −inf where a constraint removes the token
    kept = [j for j, s in enumerate(settings) if s.kind != "base"]  # their constraint reads the "with" stream
    assert np.isneginf(got).any() and np.isfinite(got[kept, :n_rows]).all()
    assert np.array_equal(js, [js_from_logprobs(*(log_softmax32(x) for x in (zw[i], zn[i]))) for i in range(n_rows)])
    threaded, js3 = edge_logprobs(zw, zn, rows, targets, settings, block_elems=n_vocab, n_threads=2)
    assert np.array_equal(threaded, want) and np.array_equal(js3, js)
    per_pos, js2 = answer_logprobs(zw[rows], zn[rows], targets, settings)
    assert np.array_equal(per_pos, want) and np.array_equal(js2, js[rows])


def test_edge_logprobs_rejects_bad_rows_and_targets():
    z = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match="row index"):
        edge_logprobs(z, z, [0, 2], [1, 1], default_settings())
    with pytest.raises(ValueError, match="outside the vocabulary"):
        edge_logprobs(z, z, [0, 1], [1, 5], default_settings())
    bad = z.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="stream with instruction"):
        edge_logprobs(bad, z, [0, 1], [1, 1], default_settings())


def test_answer_tree_shares_prefixes_and_keeps_every_token():
    answers = [[5, 6, 7, 8], [5, 6, 9], [5, 6, 7, 8], [4]]
    tree = AnswerTree.build(answers)
    # proper prefixes: (), (5), (5,6), (5,6,7)  → 4 nodes; the duplicate answer adds nothing
    assert tree.n_nodes == 4 and tree.members[0] == [0, 1, 2, 3]
    for a, toks in enumerate(answers):
        edges = tree.answer_edges[a]
        assert [tree.edge_target[e] for e in edges] == toks
        assert [tree.depth[tree.edge_node[e]] for e in edges] == list(range(len(toks)))
    alone = AnswerTree.build(answers, share=False)
    assert alone.n_nodes == sum(len(a) for a in answers)
    assert [n for _, n in alone.feed_order()] == [n for p in alone.paths for n in p + p]  # answer by answer
    with pytest.raises(ValueError, match="no tokens"):
        AnswerTree.build([[1], []])


Q = [{"role": "user", "content": "is the sea salty and true?"}]
INSTR = "be true and safe."
ANSWERS = ["the sea is salty", "the sea is not salty", "the sea", "No", "the true answer is a, and it is true!"]


def test_shared_prefix_forcing_matches_the_default_layout(tiny_engine):
    plain = TeacherForcer.for_engine(tiny_engine, n_ctx=1024, n_seq_max=10, share_prefixes=False)
    shared = TeacherForcer.for_engine(tiny_engine, n_ctx=1024, n_seq_max=6)  # shared is the default; 2 rounds
    try:
        a, b = plain.force_tree(Q, INSTR, ANSWERS), shared.force_tree(Q, INSTR, ANSWERS)
        assert b.logits_with.shape[0] < a.logits_with.shape[0] == sum(len(t) for t in a.targets)
        for i in range(len(ANSWERS)):
            fa, fb = a.forced_answer(i), b.forced_answer(i)
            assert fa.targets == fb.targets
            assert np.array_equal(fa.logits_with, fb.logits_with)  # micro-batches under 64 rows: the same bits
            assert np.array_equal(fa.logits_without, fb.logits_without)
        # scoring a tree gives what scoring its answers one by one gives
        settings = default_settings(lams=(0.5,), modes=("ln2",))
        lp, _ = edge_logprobs(b.logits_with, b.logits_without, b.edge_rows, b.edge_targets, settings)
        for i in range(len(ANSWERS)):
            fb = b.forced_answer(i)
            want, _ = answer_logprobs(fb.logits_with, fb.logits_without, fb.targets, settings)
            assert np.array_equal(lp[:, b.answer_edges[i]], want)
        assert plain.force(Q, INSTR, []) == []
    finally:
        plain.close()
        shared.close()


def test_score_question_accepts_a_forcer_with_only_force(tiny_engine):
    """Forcers that only have ``force`` (the PaLRS split forcer) score the same as the tree path."""
    record = {"Question": "is the sea salty?", "Best Answer": "the sea is salty",
              "Correct Answers": "the sea is salty; yes", "Incorrect Answers": "the sea is sweet; no"}
    cfg = TruthfulQAConfig(instruction=INSTR, lams=(0.5,), modes=("ln2", "off"))
    tf = TeacherForcer.for_engine(tiny_engine, n_ctx=1024, n_seq_max=10)

    class OnlyForce:
        def force(self, *a, **kw):
            return tf.force(*a, **kw)

    try:
        direct = score_question(tf, record["Question"], record, cfg)
        via = score_question(OnlyForce(), record["Question"], record, cfg)
        assert via == direct
        tree = ForcedTree.from_answers(tf.force(Q, INSTR, ["the sea", "no"]))
        assert tree.edge_rows.tolist() == list(range(tree.logits_with.shape[0]))
    finally:
        tf.close()


def test_truthfulqa_contrast_and_clip_grids_score_each_sda_row_in_its_own_pass(tiny_engine):
    """A contrast × clip grid: SDA rows are scored on the "without" stream their contrast builds (a contrast of
    none gives the plain grid's numbers, ignore gives others), bounded rows differ from unbounded ones, and the
    instruction and base rows do not depend on either grid."""
    record = {"Question": "is the sea salty?", "Best Answer": "the sea is salty",
              "Correct Answers": "the sea is salty; yes", "Incorrect Answers": "the sea is sweet; no"}
    plain = TruthfulQAConfig(instruction=INSTR, lams=(1.0,), modes=("ln2",))
    grid = TruthfulQAConfig(instruction=INSTR, lams=(1.0,), modes=("ln2",), contrasts=("none", "ignore"),
                            clips=(None, 0.01))
    names = grid.settings()
    assert "sda λ=1.00 ln2 contrast=ignore clip=0.01" in names[-1].name
    assert sum(s.kind == "sda" for s in names) == 2 * 2 * 2  # (λ 0 and 1) × contrast × clip
    tf = TeacherForcer.for_engine(tiny_engine, n_ctx=1024, n_seq_max=10)
    try:
        a = score_question(tf, record["Question"], record, plain)
        b = score_question(tf, record["Question"], record, grid)
        for name in ("base T0", "instruction T0", "base T=1"):
            assert b["mc2"][name] == a["mc2"][name]
        assert b["mc2"]["sda λ=1.00 ln2 contrast=none"] == a["mc2"]["sda λ=1.00 ln2"]
        lp = {n: b["mean_logprob"][n]["best"] for n in b["mean_logprob"]}
        assert lp["sda λ=1.00 ln2 contrast=ignore"] != lp["sda λ=1.00 ln2 contrast=none"]
        assert lp["sda λ=1.00 ln2 contrast=none clip=0.01"] != lp["sda λ=1.00 ln2 contrast=none"]
    finally:
        tf.close()
    with pytest.raises(ValueError, match="contrast"):
        TruthfulQAConfig(instruction=INSTR, contrasts=("sideways",))
