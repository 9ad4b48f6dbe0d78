"""PaLRS mechanics on the tiny random-weight GGUF: capture, extraction, control-vector files, applying them."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sda_local.palrs.capture import ResidualCapture
from sda_local.palrs.cvec import (
    ControlVectorError,
    combine,
    control_vectors,
    load_control_vectors,
    parse_layer_range,
    parse_spec,
    read_control_vector,
    write_control_vector,
)
from sda_local.palrs.extract import ExtractError, PairRenderer, extract
from sda_local.palrs.pairs import (
    Pair,
    PairsError,
    load_pairs,
    split_of,
    truthfulqa_pairs,
    write_pairs,
)
from sda_local.runtime.backend import Context, LoadedModel
from sda_local.runtime.engine import Engine, SamplingParams, collect

PAIRS = [
    Pair("is the sky blue", "the sky is blue and safe", "the sky is green"),
    Pair("what is a safe help", "it is safe to help you", "you are to be the true"),
    Pair("tell me the truth", "the truth is true", "the truth is a lie"),
    Pair("help me", "I help you", "no"),
]
MSGS = [{"role": "user", "content": "tell me about the safe way to help"}]


@pytest.fixture(scope="module")
def model(tiny_gguf):
    m = LoadedModel(tiny_gguf)
    yield m
    m.close()


def _tokens(model, text="the safe way to help you is the true way"):
    return model.tokenize(text)


# -- capture ------------------------------------------------------------------------------------------------

def test_capture_shapes_cover_every_layer_including_the_last(model):
    toks = _tokens(model)
    with ResidualCapture(model, range(model.n_layer), n_ctx=128) as cap:
        rows = cap.run(toks, start=3)
    assert sorted(rows) == list(range(model.n_layer)) == [0, 1, 2]
    for layer, x in rows.items():
        assert x.shape == (len(toks) - 3, model.n_embd), layer
        assert x.dtype == np.float32 and np.isfinite(x).all()
    assert not np.allclose(rows[0], rows[1])


def test_capture_is_the_same_in_small_batches_and_after_prefix_reuse(model):
    toks = _tokens(model)
    with ResidualCapture(model, [1, 2], n_ctx=128) as big:
        ref = big.run(toks, start=2)
    with ResidualCapture(model, [1, 2], n_ctx=128, n_batch=4) as small:   # 4-token decodes, several callbacks
        a = small.run(toks, start=2)
        other = toks[:5] + model.tokenize(" and a lie")
        small.run(other, start=5)
        n_before = small.n_decoded
        b = small.run(toks, start=6)                                     # reuses the first 5 cached tokens
        assert small.n_decoded - n_before == len(toks) - 5
    for layer in (1, 2):
        np.testing.assert_allclose(a[layer], ref[layer], atol=1e-4)
        np.testing.assert_allclose(b[layer], ref[layer][4:], atol=1e-4)


def test_capture_rejects_layers_the_model_lacks(model):
    with pytest.raises(ValueError, match="0..2"):
        ResidualCapture(model, [3], n_ctx=64)


# -- extraction --------------------------------------------------------------------------------------------

def test_rendered_answer_span_is_the_answer_and_its_end_of_turn(model):
    r = PairRenderer(model).render("is the sky blue", "the sky is blue")
    assert model.detokenize(r.tokens[:r.start], special=True).endswith("<|im_start|>assistant\n")
    assert model.detokenize(r.tokens[r.start:r.end], special=True) == "the sky is blue<|im_end|>"
    assert r.end == len(r.tokens)


@pytest.mark.parametrize("position", ["last", "mean"])
def test_extraction_is_deterministic_and_is_a_difference_of_means(model, position):
    a = extract(model, PAIRS, position=position)
    b = extract(model, PAIRS, position=position)
    assert np.array_equal(a.diff, b.diff) and np.array_equal(a.mean_chosen, b.mean_chosen)
    assert a.selected == b.selected and np.array_equal(a.direction(), b.direction())
    # the same numbers by hand, from the capture
    rend = PairRenderer(model)
    with ResidualCapture(model, [1, 2], n_ctx=256) as cap:
        def reduce(prompt, answer):
            r = rend.render(prompt, answer)
            rows = cap.run(r.tokens, r.start, r.end)
            return np.stack([rows[n][-1] if position == "last" else rows[n].astype(np.float64).mean(0)
                             for n in (1, 2)])
        ch = np.mean([reduce(p.prompt, p.chosen) for p in PAIRS], axis=0)
        rj = np.mean([reduce(p.prompt, p.rejected) for p in PAIRS], axis=0)
    assert a.layers == [1, 2]
    np.testing.assert_allclose(a.diff, ch - rj, rtol=1e-5, atol=1e-5)
    # selection: the most cosine-aligned candidate, rescaled to the mean chosen activation's norm
    cos = [np.dot(d, c) / np.linalg.norm(d) / np.linalg.norm(c) for d, c in zip(ch - rj, ch)]
    assert a.selected == [1, 2][int(np.argmax(cos))]
    v = a.direction()
    i = a.layers.index(a.selected)
    assert np.linalg.norm(v) == pytest.approx(np.linalg.norm(ch[i]), rel=1e-5)
    assert np.dot(v, ch[i] - rj[i]) / np.linalg.norm(v) / np.linalg.norm(ch[i] - rj[i]) == pytest.approx(1, abs=1e-6)


def test_extraction_layer_range_is_checked(model):
    with pytest.raises(ExtractError, match="1..2"):
        extract(model, PAIRS[:1], layers=(0, 2))
    res = extract(model, PAIRS[:2], layers=(2, 2))
    assert res.layers == [2] and res.selected == 2


# -- control-vector files ------------------------------------------------------------------------------------

def test_a_vector_written_then_read_round_trips_exactly(tmp_path, model):
    res = extract(model, PAIRS, position="mean")
    dirs = res.directions(all_layers=True)
    path = write_control_vector(tmp_path / "v.gguf", dirs, res.model_hint, res.metadata())
    cv = read_control_vector(path)
    assert cv.layers == sorted(dirs) == [1, 2]
    for n, v in dirs.items():
        assert cv.directions[n].dtype == np.float32 and np.array_equal(cv.directions[n], v)
    assert cv.model_hint == "llama"
    assert cv.metadata["general.architecture"] == "controlvector"
    assert cv.metadata["controlvector.layer_count"] == 2
    assert cv.metadata["palrs.selected_layer"] == res.selected
    assert cv.metadata["palrs.position"] == "mean"
    assert cv.metadata["palrs.cosines"] == pytest.approx([float(c) for c in res.cosines])


def test_several_vectors_are_summed_with_their_scales(tmp_path):
    a = write_control_vector(tmp_path / "a.gguf", {1: np.ones(4), 2: np.full(4, 2.0)}, "llama")
    b = write_control_vector(tmp_path / "b.gguf", {2: np.arange(4.0)}, "llama")
    buf = load_control_vectors([f"{a}:0.5", (b, 2.0)], n_layer=3, n_embd=4, scale=2.0)
    assert buf.shape == (2, 4)                                          # row j = layer j + 1
    np.testing.assert_array_equal(buf[0], np.ones(4))                   # 0.5 · 2 · 1
    np.testing.assert_array_equal(buf[1], 2.0 + 4.0 * np.arange(4.0))   # 0.5·2·2 + 2·2·arange


def test_bad_vector_files_give_clear_errors(tmp_path, tiny_gguf):
    with pytest.raises(ControlVectorError, match="not a control vector"):
        read_control_vector(tiny_gguf)
    with pytest.raises(ControlVectorError, match="not found"):
        read_control_vector(tmp_path / "none.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(ControlVectorError, match="not a readable GGUF"):
        read_control_vector(tmp_path / "junk.gguf")
    v = write_control_vector(tmp_path / "v.gguf", {5: np.ones(64)}, "llama")
    with pytest.raises(ControlVectorError, match="steerable layers are 1..2"):
        combine([(read_control_vector(v), 1.0)], n_layer=3, n_embd=64)
    with pytest.raises(ControlVectorError, match="n_embd 64 but the model has 32"):
        combine([(read_control_vector(v), 1.0)], n_layer=9, n_embd=32)
    with pytest.raises(ControlVectorError, match="layer 0"):
        write_control_vector(tmp_path / "w.gguf", {0: np.ones(4)}, "llama")


def test_spec_and_layer_range_parsing():
    assert parse_spec("v.gguf") == ("v.gguf", 1.0)
    assert parse_spec("v.gguf:-0.25") == ("v.gguf", -0.25)
    assert parse_spec("C:\\vecs\\v.gguf") == ("C:\\vecs\\v.gguf", 1.0)
    assert parse_spec("C:\\vecs\\v.gguf:2") == ("C:\\vecs\\v.gguf", 2.0)
    assert parse_layer_range("3-7") == (3, 7) and parse_layer_range("5") == (5, 5) and parse_layer_range(None) is None
    with pytest.raises(ControlVectorError, match="A-B"):
        parse_layer_range("seven")
    with pytest.raises(ControlVectorError, match="must not exceed"):
        parse_layer_range("9-3")


# -- applying ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [1, 2])
def test_the_layer_written_is_the_layer_that_moves(tmp_path, model, layer):
    """A vector written as direction.N shifts l_out-N by exactly the vector and leaves l_out-(N-1) alone."""
    v = np.random.default_rng(layer).standard_normal(model.n_embd).astype(np.float32)
    path = write_control_vector(tmp_path / "v.gguf", {layer: v}, "llama")
    buf = load_control_vectors([(path, 1.0)], model.n_layer, model.n_embd)
    toks = _tokens(model)
    with ResidualCapture(model, range(model.n_layer), n_ctx=128) as cap:
        before = cap.run(toks, start=0)
        cap.set_control_vector(buf)
        after = cap.run(toks, start=0)
        cap.set_control_vector(buf, il_start=layer + 1, il_end=model.n_layer)   # a range without N: no effect
        outside = cap.run(toks, start=0)
    for n in range(layer):
        assert np.array_equal(after[n], before[n]), n
    np.testing.assert_allclose(after[layer] - before[layer], np.broadcast_to(v, before[layer].shape), atol=1e-4)
    for n in range(model.n_layer):
        np.testing.assert_allclose(outside[n], before[n], atol=1e-5)


def _single_stream_logits(model, tokens, cvec=None):
    ctx = Context(model, n_ctx=256)
    try:
        if cvec is not None:
            ctx.set_control_vector(cvec)
        for i, t in enumerate(tokens):
            last = ctx.add(t, i, 0, i == len(tokens) - 1)
        ctx.decode()
        return ctx.logits(last).copy()
    finally:
        ctx.close()


def test_scale_zero_leaves_logits_unchanged_and_a_positive_scale_changes_them(tmp_path, tiny_gguf, model):
    res = extract(model, PAIRS, position="mean")
    path = write_control_vector(tmp_path / "v.gguf", res.directions(), res.model_hint)
    plain = Engine(str(tiny_gguf), n_ctx=256, layout="contexts")
    la0, lb0 = plain.twin_logits(MSGS, "be true")
    eng = Engine(str(tiny_gguf), n_ctx=256, control=control_vectors([(path, 0.0)]))
    assert eng.layout == "contexts" and eng.control.streams == "aligned"
    la, lb = eng.twin_logits(MSGS, "be true")
    assert np.array_equal(la, la0) and np.array_equal(lb, lb0)

    eng.set_control(control_vectors([f"{path}:0.5"]))
    la, lb = eng.twin_logits(MSGS, "be true")
    assert np.abs(la - la0).max() > 1e-2          # stream A is steered …
    assert np.array_equal(lb, lb0)                # … stream B is not
    ta, _ = eng.prompter.pair(MSGS, "be true")
    buf = load_control_vectors([(path, 0.5)], model.n_layer, model.n_embd)
    np.testing.assert_allclose(la, _single_stream_logits(eng.model, ta, buf), atol=5e-3)

    eng.set_control(control_vectors([(path, 0.5)], streams="both"))
    la2, lb2 = eng.twin_logits(MSGS, "be true")
    np.testing.assert_allclose(la2, la, atol=5e-3)
    assert np.abs(lb2 - lb0).max() > 1e-2

    eng.set_control(None)                          # off again: back to the unsteered logits
    la3, lb3 = eng.twin_logits(MSGS, "be true")
    np.testing.assert_allclose(la3, la0, atol=5e-3)
    np.testing.assert_allclose(lb3, lb0, atol=5e-3)
    plain.close()
    eng.close()


def test_steering_both_streams_works_in_the_batched_layout_and_aligned_does_not(tmp_path, tiny_gguf):
    path = write_control_vector(tmp_path / "v.gguf", {1: np.ones(64, np.float32)}, "llama")
    with pytest.raises(Exception, match="'contexts' layout"):
        Engine(str(tiny_gguf), n_ctx=256, layout="batched", control=control_vectors([(path, 1.0)]))
    eng = Engine(str(tiny_gguf), n_ctx=256, layout="batched", control=control_vectors([(path, 1.0)], streams="both"))
    plain = Engine(str(tiny_gguf), n_ctx=256, layout="batched")
    la, lb = eng.twin_logits(MSGS, "be true")
    la0, lb0 = plain.twin_logits(MSGS, "be true")
    assert np.abs(la - la0).max() > 1e-2 and np.abs(lb - lb0).max() > 1e-2
    eng.close()
    plain.close()


def test_residual_alone_sda_alone_and_both_all_run(tmp_path, tiny_gguf):
    path = write_control_vector(tmp_path / "v.gguf", {1: np.ones(64, np.float32), 2: -np.ones(64, np.float32)},
                                "llama")
    eng = Engine(str(tiny_gguf), n_ctx=256, control=control_vectors([(path, 2.0)], layers="1-2"))
    p = SamplingParams(seed=1, max_tokens=12, t0=1.0, top_p=1.0)
    cv_only = collect(eng.generate_plain(MSGS, params=p, stream="aligned"))
    base = collect(eng.generate_plain(MSGS, params=p, stream="base"))
    both = collect(eng.generate(MSGS, "be true", 0.5, params=p))
    assert cv_only.n_tokens > 0 and base.n_tokens > 0 and both.n_tokens > 0
    assert cv_only.token_ids != base.token_ids
    eng.set_control(None)
    sda_only = collect(eng.generate(MSGS, "be true", 0.5, params=p))
    assert sda_only.token_ids != both.token_ids
    assert collect(eng.generate_plain(MSGS, params=p, stream="aligned")).token_ids == base.token_ids
    eng.close()


# -- pairs ---------------------------------------------------------------------------------------------------

def test_malformed_pairs_file_names_the_bad_lines(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text("\n".join([
        json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}),
        '{"prompt": "q", "chosen": "a"',                                 # 2: broken JSON
        json.dumps({"prompt": "q", "chosen": "a"}),                      # 3: no rejected
        "",
        json.dumps(["q", "a", "b"]),                                     # 5: not an object
        json.dumps({"prompt": "q", "chosen": 3, "rejected": "b"}),       # 6: not a string
        json.dumps({"prompt": "q", "chosen": "same", "rejected": "same"}),  # 7: no preference
    ]) + "\n")
    with pytest.raises(PairsError) as e:
        load_pairs(f)
    msg = str(e.value)
    for needle in ("5 malformed lines", "line 2: not valid JSON", "line 3: missing field 'rejected'",
                   "line 5: expected a JSON object", "line 6: field 'chosen' must be a string",
                   "line 7: 'chosen' and 'rejected' are the same"):
        assert needle in msg
    assert "line 1" not in msg and "line 4" not in msg
    with pytest.raises(PairsError, match="not found"):
        load_pairs(tmp_path / "missing.jsonl")


def test_pairs_round_trip_and_limit(tmp_path):
    f = tmp_path / "p.jsonl"
    assert write_pairs(f, PAIRS) == 4
    got = load_pairs(f, limit=2)
    assert [(p.prompt, p.chosen, p.rejected) for p in got] == [(p.prompt, p.chosen, p.rejected) for p in PAIRS[:2]]


def test_truthfulqa_builder_uses_best_vs_best_incorrect_and_splits_disjointly(tmp_path):
    rows = [{"Question": f"Question number {i}?", "Best Answer": f"true {i}", "Best Incorrect Answer": f"false {i}",
             "Correct Answers": f"true {i}", "Incorrect Answers": f"false {i}"} for i in range(40)]
    f = tmp_path / "truthfulqa.dev.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    train, held, every = (truthfulqa_pairs(f, s) for s in ("train", "heldout", "all"))
    assert len(every) == 40 and 0 < len(train) < 20
    assert {p.prompt for p in train} | {p.prompt for p in held} == {p.prompt for p in every}
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    assert all(split_of(p.prompt) == "train" for p in train)
    p = every[3]
    assert (p.prompt, p.chosen, p.rejected) == ("Question number 3?", "true 3", "false 3") and p.extra["line"] == 4
    f.write_text(json.dumps({"Question": "q"}) + "\n")
    with pytest.raises(PairsError, match="line 1"):
        truthfulqa_pairs(f, "all")


# -- command line --------------------------------------------------------------------------------------------

def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "sda_local.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_extract_writes_a_vector_that_generate_and_info_accept(tmp_path, tiny_gguf):
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs, PAIRS)
    out = tmp_path / "v.gguf"
    r = _cli("palrs", "extract", "--pairs", str(pairs), "--model", str(tiny_gguf), "--out", str(out),
             "--limit", "3", "--position", "last", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["n_pairs"] == 3 and summary["layers_written"] == [summary["selected_layer"]]
    assert "3/3" in r.stderr                                    # the progress bar reached the end
    cv = read_control_vector(out)
    assert cv.layers == [summary["selected_layer"]]
    info = json.loads(_cli("palrs", "info", str(out)).stdout)
    assert info["metadata"]["palrs.n_pairs"] == 3
    g = _cli("palrs", "generate", "hello", "--model", str(tiny_gguf), "--control-vector", f"{out}:0.5",
             "--max-tokens", "4", "--seed", "1", "--n-ctx", "256")
    assert g.returncode == 0, g.stderr
    assert "residual-steered answer" in g.stderr


@pytest.mark.parametrize("args,needle", [
    (["palrs", "extract", "--pairs", "BAD", "--out", "x.gguf"], "line 2"),
    (["palrs", "extract", "--pairs", "MISSING", "--out", "x.gguf"], "not found"),
    (["palrs", "extract", "--pairs", "GOOD", "--out", "x.gguf", "--layers", "0-9"], "steerable layers are 1..2"),
    (["palrs", "generate", "hi", "--control-vector", "MODEL"], "not a control vector"),
    (["palrs", "pairs", "--dataset", "beavertails", "--out", "x.jsonl"], "no pair builder"),
])
def test_cli_bad_input_is_one_clear_line(tmp_path, tiny_gguf, args, needle):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n{oops\n")
    good = tmp_path / "good.jsonl"
    write_pairs(good, PAIRS[:1])
    subst = {"BAD": str(bad), "GOOD": str(good), "MISSING": str(tmp_path / "nope.jsonl"), "MODEL": str(tiny_gguf),
             "x.gguf": str(tmp_path / "x.gguf"), "x.jsonl": str(tmp_path / "x.jsonl")}
    args = [subst.get(a, a) for a in args] + ["--model", str(tiny_gguf)] * (args[1] in ("extract", "generate"))
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_sweep_scores_each_alpha_and_the_aligned_only_combination(tmp_path, tiny_gguf, model):
    rows = [{"Question": f"is the sky {c}", "Best Answer": f"the sky is {c}", "Best Incorrect Answer": "it is a lie",
             "Correct Answers": f"the sky is {c}; yes", "Incorrect Answers": "it is a lie; no"}
            for c in ("blue", "safe", "true")]
    data = tmp_path / "truthfulqa.dev.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = extract(model, PAIRS, position="mean")
    vec = write_control_vector(tmp_path / "v.gguf", res.directions(), res.model_hint, res.metadata())
    out = tmp_path / "sweep"
    r = _cli("palrs", "sweep", "--vector", str(vec), "--model", str(tiny_gguf), "--dataset", str(data),
             "--split", "all", "--alphas", "0,0.5", "--aligned-alphas", "0.5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "sweep.json").read_text())
    runs = {x["name"]: x["settings"] for x in s["runs"]}
    assert set(runs) == {"both-alpha0", "both-alpha0.5", "aligned-alpha0.5"} and s["n_questions"] == 3
    plain, both, aligned = runs["both-alpha0"], runs["both-alpha0.5"], runs["aligned-alpha0.5"]
    assert both["base T=1"]["mc2"] != plain["base T=1"]["mc2"]             # residual steering alone moves MC2
    assert aligned["base T=1"] == plain["base T=1"]                        # "without" stream left unsteered …
    assert aligned["instruction T=1"] == both["instruction T=1"]           # … "with" stream steered
    assert "sda λ=0.50 ln2" in aligned and (out / "sweep.md").read_text().startswith("# PaLRS α sweep")
