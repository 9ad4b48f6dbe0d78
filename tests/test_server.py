"""``sda-local serve`` against real clients: the official ``openai`` client, the ``llm`` command-line tool, raw HTTP.

The server is the real command in a subprocess on 127.0.0.1, serving a tiny random-weight GGUF whose end-of-turn
token is pushed down (``eog_bias`` < 0), so an SDA answer runs until ``max_tokens`` or the context: long enough
to hold the slot while a test fills the queue or walks away mid-stream.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from servers import free_port, stop_process
from tiny_gguf import write_tiny_llama

from sda_local.core import SamplingParams
from sda_local.palrs.cvec import write_control_vector
from sda_local.presets import get_preset

pytestmark = pytest.mark.slow  # runs servers

KEY = "test-key-7f3a9c"
MODEL = "tiny-long.gguf"
LONG = dict(max_tokens=4000, seed=0, sda={"lam": 0.5})  # this seed's answer fills the context: seconds of work


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("serve")
    gguf = write_tiny_llama(d / MODEL, seed=0, eog_bias=-30.0)
    cv_dir = d / "vectors"
    rng = np.random.default_rng(0)
    write_control_vector(cv_dir / "calm.gguf", {1: rng.normal(size=64), 2: rng.normal(size=64)}, "llama")
    write_control_vector(cv_dir / "other-model.gguf", {1: rng.normal(size=32)}, "llama")  # n_embd 32, not 64
    (d / "outside.gguf").write_bytes((cv_dir / "calm.gguf").read_bytes())
    return {"dir": d, "gguf": gguf, "cv_dir": cv_dir}


@contextmanager
def serve(files: dict, *extra: str, key: str | None = KEY):
    port = free_port()
    log = files["dir"] / f"server-{port}.log"
    env = {**os.environ, "SDA_LOCAL_CONFIG": str(files["dir"] / "config")}
    env.pop("SDA_LOCAL_API_KEY", None)
    if key:
        env["SDA_LOCAL_API_KEY"] = key
    cmd = [sys.executable, "-m", "sda_local.cli", "serve", "--model", str(files["gguf"]), "--port", str(port),
           "--threads", "1", "--n-ctx", "4096", "--cv-dir", str(files["cv_dir"]), "--max-body", "60000",
           "--openai-base-url", f"http://127.0.0.1:{free_port()}/v1", "--openai-api-key", "unused",
           "--timeout", "2", "--retries", "0", *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sda-local serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError("sda-local serve did not answer /health in time")
            time.sleep(0.2)
        yield {"url": url, "log": log, "proc": proc}
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def server(files):
    with serve(files, "--max-queue", "16") as s:
        yield s


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60)


def post(server, body, key: str | None = KEY, timeout: float = 60) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server["url"] + "/v1/chat/completions", json=body, headers=headers, timeout=timeout)


def chat(content: str = "How do I keep basil alive?", **kw) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **kw}


def streamed(client, **kw) -> tuple[str, list]:
    chunks = list(client.chat.completions.create(stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


# -- auth, health, models --------------------------------------------------------------------------------------
def test_health_is_open_and_v1_needs_the_key(server):
    assert httpx.get(server["url"] + "/health").json()["status"] == "ok"
    for key in (None, "wrong-key"):
        r = httpx.get(server["url"] + "/v1/models", headers={"Authorization": f"Bearer {key}"} if key else {})
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
        assert KEY not in r.text
    assert post(server, chat(max_tokens=2), key="wrong-key").status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server["url"] + "/v1", api_key="nope", max_retries=0).models.list()


def test_models_list_the_model_and_its_preset_combinations(client):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == MODEL
    assert {f"{MODEL}+harmlessness", f"{MODEL}+helpfulness", f"{MODEL}+honesty"} <= set(ids)


def test_stop_matcher_holds_back_only_what_may_start_a_stop_sequence():
    from sda_local.server.stops import StopMatcher

    m = StopMatcher(["abc", "zz"])
    assert [m.feed(p) for p in ("xa", "b", "d", "z", "y")] == ["x", "", "abd", "", "zy"]
    assert (m.flush(), m.stopped) == ("", False)
    m = StopMatcher(["abc"])
    assert [m.feed(p) for p in ("xab", "cdef", "more")] == ["x", "", ""] and m.stopped and m.flush() == ""
    m = StopMatcher(["\n\n"])
    assert m.feed("one\n") == "one" and m.flush() == "\n"  # held back, released at the end


# -- the openai client -----------------------------------------------------------------------------------------
def test_plain_request_is_plain_decoding_and_seeded(client):
    kw = dict(model=MODEL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=12, seed=5)
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    assert a.object == "chat.completion" and a.choices[0].message.role == "assistant"
    assert a.choices[0].message.content == b.choices[0].message.content != ""
    assert a.choices[0].finish_reason in ("stop", "length")
    assert a.usage.completion_tokens <= 12 and a.usage.prompt_tokens > 0
    assert a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens
    assert "sda" not in (a.model_extra or {})  # no sda, no +preset: no steering, no diagnostics
    c = client.chat.completions.create(**{**kw, "seed": 6})
    assert c.choices[0].message.content != a.choices[0].message.content


def test_stream_with_sda_extra_body_matches_the_non_streamed_answer(client):
    kw = dict(model=MODEL, messages=[{"role": "user", "content": "Is it safe?"}], max_tokens=16, seed=3,
              temperature=0.8, top_p=0.9,
              extra_body={"sda": {"preset": "harmlessness", "lam": 0.4, "k": 1.5, "plausibility": 0.05}})
    whole = client.chat.completions.create(**kw)
    text, chunks = streamed(client, stream_options={"include_usage": True}, **kw)
    assert text == whole.choices[0].message.content and len(text) > 0
    assert chunks[0].choices[0].delta.role == "assistant"
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert final.choices[0].finish_reason == "length"
    sda = final.model_extra["sda"]
    assert sda == {**whole.model_extra["sda"], "timings": sda["timings"]}
    assert (sda["preset"], sda["lam"], sda["lam_source"], sda["k"], sda["t0"]) == ("harmlessness", 0.4, "fixed",
                                                                                   1.5, 0.8)
    assert sda["mean_js"] > 0
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16
    plain = client.chat.completions.create(**{k: v for k, v in kw.items() if k != "extra_body"})
    assert plain.choices[0].message.content != text


def test_plus_preset_model_name_steers_with_the_default_lambda_source(client):
    r = client.chat.completions.create(model=f"{MODEL}+honesty", max_tokens=6, seed=1,
                                       messages=[{"role": "user", "content": "Is the moon made of cheese?"}])
    sda = r.model_extra["sda"]
    assert r.model == f"{MODEL}+honesty"
    # the server's default λ source: the preset's own λ (DEFAULT_EVALUATOR = "preset"), no judge, no base answer
    assert sda["preset"] == "honesty" and sda["evaluator"] == "preset"
    assert sda["lam_source"] == "fixed" and sda["lam"] == get_preset("honesty").lam


def test_a_given_score_sets_lambda_through_the_mapping_without_a_judge(client):
    kw = dict(model=MODEL, max_tokens=4, seed=1, messages=[{"role": "user", "content": "Hi"}])
    low = client.chat.completions.create(**kw, extra_body={"sda": {"score": 90, "mapping": "linear"}})
    high = client.chat.completions.create(**kw, extra_body={"sda": {"score": 10, "mapping": "linear"}})
    a, b = low.model_extra["sda"], high.model_extra["sda"]
    assert (a["lam_source"], a["score"], a["mapping"]) == ("fixed", 90, "linear") and "base_tokens" not in a
    assert a["lam"] < b["lam"]  # a well-rated base answer needs less steering


def test_evaluator_failure_is_the_fallback_lambda_with_a_warning(client):
    r = client.chat.completions.create(model=MODEL, max_tokens=4, seed=1, messages=[{"role": "user", "content": "Hi"}],
                                       extra_body={"sda": {"evaluator": "openai", "return_base": True}})
    sda = r.model_extra["sda"]
    assert (sda["lam_source"], sda["lam"]) == ("fallback", 0.5)
    assert sda["warnings"] and "openai" in sda["warnings"][0]
    assert isinstance(sda["base"], str) and r.choices[0].message.content


def test_stop_sequences_cut_the_answer_before_them(client):
    kw = dict(model=MODEL, messages=[{"role": "user", "content": "Count."}], max_tokens=40, seed=9,
              extra_body={"sda": {"lam": 0.3}})
    full = client.chat.completions.create(**kw).choices[0].message.content
    stop = full[10:12]
    cut = full[:full.index(stop)]
    r = client.chat.completions.create(stop=[stop, "never-appears"], **kw)
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == (cut, "stop")
    text, chunks = streamed(client, stop=stop, **kw)
    assert text == cut and chunks[-1].choices[0].finish_reason == "stop"


def test_control_vectors_come_only_from_the_cv_dir(server, client, files):
    kw = dict(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=12, seed=2)
    steered = client.chat.completions.create(**kw, extra_body={"sda": {"lam": 0.5, "control_vectors": [
        {"file": "calm.gguf", "scale": 4.0}]}})
    plain_sda = client.chat.completions.create(**kw, extra_body={"sda": {"lam": 0.5}})
    assert "calm.gguf" in steered.model_extra["sda"]["control_vectors"]
    assert plain_sda.model_extra["sda"]["control_vectors"] is None
    assert steered.choices[0].message.content != plain_sda.choices[0].message.content
    again = client.chat.completions.create(**kw, extra_body={"sda": {"lam": 0.5}})  # vectors off again
    assert again.choices[0].message.content == plain_sda.choices[0].message.content
    for name in ("../outside.gguf", str(files["dir"] / "outside.gguf"), "missing.gguf"):
        r = post(server, chat(max_tokens=2, sda={"control_vectors": [name]}))
        assert r.status_code == 400 and r.json()["error"]["param"] == "sda.control_vectors[0]", r.text
    for stream in (False, True):  # a vector for another model is refused before anything streams
        r = post(server, chat(max_tokens=2, stream=stream, sda={"control_vectors": ["other-model.gguf"]}))
        assert r.status_code == 400 and "different model" in r.json()["error"]["message"], r.text


# -- no cross-talk -------------------------------------------------------------------------------------------------
def test_ten_concurrent_clients_get_their_own_answers(client):
    presets = ["harmlessness", "helpfulness", "honesty", "harmlessness", "helpfulness"]
    reqs = [dict(model=MODEL, max_tokens=10, seed=100 + i,
                 messages=[{"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"}],
                 extra_body={"sda": {"preset": presets[i % 5], "lam": 0.1 * (i % 5)}} if i % 3 else
                 {"sda": {"instruction": f"Answer as pirate {i}.", "lam": 0.6}})
            for i in range(10)]
    alone = [client.chat.completions.create(**r).choices[0].message.content for r in reqs]
    with ThreadPoolExecutor(10) as pool:
        together = list(pool.map(lambda r: streamed(client, **r)[0] if r["seed"] % 2 else
                                 client.chat.completions.create(**r).choices[0].message.content, reqs))
    assert together == alone
    assert len(set(alone)) == 10


# -- the llm command-line tool -------------------------------------------------------------------------------------
def test_llm_cli_talks_to_the_server(server, client, tmp_path):
    llm = Path(sys.executable).with_name("llm")
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: sda-tiny\n  model_name: {MODEL}+harmlessness\n  api_base: {server['url']}/v1\n"
        f"  api_key_name: sda-local\n")
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path)}
    subprocess.run([str(llm), "keys", "set", "sda-local", "--value", KEY], env=env, check=True)
    out = subprocess.run([str(llm), "-m", "sda-tiny", "-o", "max_tokens", "8", "-o", "seed", "4", "--no-log",
                          "Say hello."], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    expected, _ = streamed(client, model=f"{MODEL}+harmlessness", max_tokens=8, seed=4,
                           messages=[{"role": "user", "content": "Say hello."}])
    assert out.stdout.strip() == expected.strip() and expected.strip()


# -- bad input -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, status, param", [
    ({"model": MODEL}, 422, "messages"),
    (chat(max_tokens="many"), 422, "max_tokens"),
    (chat(sda={"lamda": 0.5}), 422, "sda.lamda"),
    (chat(sda={"k": "strong"}), 422, "sda.k"),
    (chat(n=2), 400, "n"),
    (chat(tools=[{"type": "function", "function": {"name": "f"}}]), 400, "tools"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}, 400, "messages[0].content[0]"),
    (chat(temperature=5), 400, "temperature"),
    (chat(max_tokens=0), 400, "max_tokens"),
    (chat(sda={"k": -1}), 400, "sda.k"),
    (chat(sda={"lam": 2}), 400, "sda.lam"),
    (chat(sda={"preset": "nonsense"}), 400, "sda.preset"),
    (chat(sda={"evaluator": "oracle"}), 400, "sda.evaluator"),
    (chat(sda={"placement": "footer"}), 400, "sda.placement"),
    (chat(sda={"contrast": "reverse"}), 400, "sda.contrast"),
    (chat(sda={"guidance_clip": -1}), 400, "sda.guidance_clip"),
    (chat(sda={"guidance_clip": "wide"}), 422, "sda.guidance_clip"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}, 404, "model"),
    ({"model": MODEL, "messages": [{"role": "assistant", "content": "Hi"}]}, 400, "messages[0].role"),
    (chat(frequency_penalty="AAA"), 400, "frequency_penalty"),
    (chat(presence_penalty=[1]), 400, "presence_penalty"),
    (chat(presence_penalty=3), 400, "presence_penalty"),
    (chat(top_logprobs=2), 400, "top_logprobs"),
    (chat(top_logprobs=2, logprobs=False), 400, "top_logprobs"),
    (chat(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="auto"), 400, "tool_choice"),
])
def test_bad_requests_name_the_field(server, body, status, param):
    r = post(server, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["message"]


def test_contrast_and_guidance_clip_reach_the_turn(server, client):
    """The sda sampling fields come from SamplingParams' options: the schema shows their ranges, and each
    contrast builds another uninstructed prompt (a different, reproducible steered answer)."""
    schema = httpx.get(server["url"] + "/openapi.json").json()["components"]["schemas"]["SdaOptions"]["properties"]
    assert schema["contrast"]["enum"] == ["auto", "none", "neutral", "ignore", "opposite"]
    assert schema["guidance_clip"]["exclusiveMinimum"] == 0.0

    def ask(**sda):
        r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Tell me a story."}],
                                           max_tokens=16, seed=5,
                                           extra_body={"sda": {"preset": "harmlessness", "lam": 0.9, **sda}})
        return r.choices[0].message.content

    texts = {c: ask(contrast=c) for c in ("neutral", "ignore", "opposite")}
    assert len(set(texts.values())) > 1
    assert ask(contrast="ignore") == texts["ignore"]
    assert ask(contrast="ignore", guidance_clip=1000.0) == texts["ignore"]  # wider than any gap: unbounded


def test_malformed_oversize_and_too_long_requests(server):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    r = httpx.post(server["url"] + "/v1/chat/completions", content=b'{"model": "x", "messages": [', headers=headers)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = post(server, chat("word " * 20000))
    assert r.status_code == 413, r.text
    r = post(server, chat("a b " * 5000))
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert "4096" in r.json()["error"]["message"] and "tokens" in r.json()["error"]["message"]
    assert httpx.get(server["url"] + "/health").json()["busy"] is False


# -- load: a full queue, a client that walks away ------------------------------------------------------------------
def wait_for(pred, timeout: float = 10.0) -> float:
    t0 = time.time()
    while not pred():
        if time.time() - t0 > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
    return time.time() - t0


def test_full_queue_is_503_and_a_disconnect_frees_the_slot(files):
    with serve(files, "--max-queue", "1") as s:
        health = lambda: httpx.get(s["url"] + "/health").json()  # noqa: E731
        long_req = chat(stream=True, **LONG)
        with httpx.Client(timeout=60) as http:
            with http.stream("POST", s["url"] + "/v1/chat/completions", json=long_req,
                             headers={"Authorization": f"Bearer {KEY}"}) as stream:
                lines = stream.iter_lines()
                assert next(lines).startswith("data:")  # the long answer is generating
                waiter: dict = {}
                t = threading.Thread(target=lambda: waiter.update(r=post(s, chat(max_tokens=3, seed=1))))
                t.start()
                wait_for(lambda: health()["waiting"] == 1)
                full = post(s, chat(max_tokens=3))
                assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1
                assert full.json()["error"]["code"] == "queue_full"
                assert health()["busy"] is True
            # the long stream is closed here, thousands of tokens early: the waiting request gets the model at once
            t.join(timeout=30)
            assert not t.is_alive() and waiter["r"].status_code == 200
            wait_for(lambda: not health()["busy"], timeout=3)
            # a long non-streaming request whose client gives up also frees the slot
            with pytest.raises(httpx.ReadTimeout):
                post(s, chat(**LONG), timeout=0.5)
            wait_for(lambda: not health()["busy"], timeout=3)
            assert post(s, chat(max_tokens=2)).status_code == 200
        assert KEY not in s["log"].read_text()  # the key is never logged


# -- the benchmark -------------------------------------------------------------------------------------------------
def test_bench_serve_measures_the_same_answer_both_ways(files):
    from sda_local.bench.serve import ServeBenchConfig, run_serve_bench
    from sda_local.runtime.engine import Engine

    with Engine(str(files["gguf"]), n_ctx=512, n_threads=1) as engine:
        cfg = ServeBenchConfig(sampling=SamplingParams(max_tokens=24, seed=0), repeats=1, clients=2,
                               requests_per_client=2)
        out = run_serve_bench(engine, cfg)
    assert out["tokens"]["server"] == out["tokens"]["in_process"] == 24 and out["same_answer"] is True
    assert out["tokens_per_s"]["server"] > 0 and out["tokens_per_s"]["ratio"] > 0
    streams = out["concurrent_streams"]
    assert streams["requests"] == 4 and 0 < streams["ttft_p50_s"] <= streams["ttft_p95_s"]


# -- what clients nobody here wrote expect (issue 18) -----------------------------------------------------------
COUNT = "Count from 1 to 10, separated by commas."


@pytest.mark.parametrize("sda", [None, {"lam": 0.4}], ids=["plain", "sda"])
def test_usage_counts_the_prompt_when_a_stop_sequence_ends_the_answer(client, sda):
    kw = dict(model=MODEL, messages=[{"role": "user", "content": COUNT}], max_tokens=32, seed=3,
              **({"extra_body": {"sda": sda}} if sda else {}))
    full = client.chat.completions.create(**kw)
    text = full.choices[0].message.content
    assert len(text) > 12 and full.usage.prompt_tokens > 0
    stop = text[8:10]  # occurs in this seed's answer: the answer ends there
    whole = client.chat.completions.create(stop=[stop], **kw)
    _, chunks = streamed(client, stop=[stop], stream_options={"include_usage": True}, **kw)
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert whole.choices[0].finish_reason == final.choices[0].finish_reason == "stop"
    for u in (whole.usage, chunks[-1].usage):
        assert u.prompt_tokens == full.usage.prompt_tokens
        assert u.total_tokens == u.prompt_tokens + u.completion_tokens and u.completion_tokens < 32
    if sda:
        per_stream = full.model_extra["sda"]["prompt_tokens_per_stream"]
        assert len(per_stream) == 2 and per_stream[0] == full.usage.prompt_tokens
        assert whole.model_extra["sda"]["prompt_tokens_per_stream"] == per_stream
        assert final.model_extra["sda"]["prompt_tokens_per_stream"] == per_stream


def is_openai_error(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, r.text
    assert body["error"]["message"]
    return body["error"]


def test_unknown_routes_and_wrong_methods_answer_in_the_openai_shape(server, client):
    auth = {"Authorization": f"Bearer {KEY}"}
    r = httpx.get(server["url"] + "/v1/nothing-here", headers=auth)
    assert r.status_code == 404 and "/v1/nothing-here" in is_openai_error(r)["message"]
    for method, path in (("GET", "/v1/chat/completions"), ("DELETE", "/v1/models"), ("POST", "/health")):
        r = httpx.request(method, server["url"] + path, headers=auth)
        assert r.status_code == 405, (method, path, r.text)
        assert is_openai_error(r)["code"] == "method_not_allowed" and r.headers["allow"]
    assert client.models.retrieve(MODEL).id == MODEL
    assert client.models.retrieve(f"{MODEL}+honesty").id == f"{MODEL}+honesty"
    for missing in ("gpt-4o", f"{MODEL}+no-such-preset"):
        with pytest.raises(openai.NotFoundError) as exc:
            client.models.retrieve(missing)
        assert exc.value.body["code"] == "model_not_found"
    r = httpx.get(f"{server['url']}/v1/models/{MODEL}")
    assert r.status_code == 401 and is_openai_error(r)["code"] == "invalid_api_key"


def test_a_client_that_gives_up_while_queued_leaves_the_queue_and_never_runs(files):
    with serve(files, "--max-queue", "2") as s:
        health = lambda: httpx.get(s["url"] + "/health").json()  # noqa: E731
        gave_up: list = []

        def queued(stream: bool) -> None:  # waits behind the long answer, and gives up after half a second
            try:
                post(s, chat(stream=stream, **LONG), timeout=0.5)
            except httpx.ReadTimeout:
                gave_up.append(stream)

        with httpx.Client(timeout=60) as http:
            with http.stream("POST", s["url"] + "/v1/chat/completions", json=chat(stream=True, **LONG),
                             headers={"Authorization": f"Bearer {KEY}"}) as stream:
                lines = stream.iter_lines()
                assert next(lines).startswith("data:")  # the long answer holds the slot (for seconds)
                waiters = [threading.Thread(target=queued, args=(stream_it,)) for stream_it in (True, False)]
                for t in waiters:
                    t.start()
                wait_for(lambda: health()["waiting"] == 2, timeout=3)
                for t in waiters:
                    t.join(timeout=10)
                assert sorted(gave_up) == [False, True]
                wait_for(lambda: health()["waiting"] == 0, timeout=2)  # both left the queue at once
                assert health()["busy"] is True
            # the long stream is closed: neither abandoned request may take the slot now
            wait_for(lambda: not health()["busy"], timeout=3)
            for _ in range(5):
                time.sleep(0.2)
                h = health()
                assert (h["busy"], h["waiting"]) == (False, 0)
            assert post(s, chat(max_tokens=2)).status_code == 200


@pytest.fixture(scope="module")
def limited(files):
    with serve(files, "--max-tokens-limit", "5", "--cors-origin", "http://app.example",
               "http://other.example:8080") as s:
        yield s


def test_max_tokens_limit_caps_what_a_request_asks_for(limited, server):
    c = openai.OpenAI(base_url=limited["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60)
    msgs = [{"role": "user", "content": "Write a long story."}]
    for kw in ({"max_tokens": 10**9}, {"max_completion_tokens": 1000},
               {"max_tokens": 1000, "extra_body": {"sda": {"lam": 0.5}}}):
        r = c.chat.completions.create(model=MODEL, messages=msgs, seed=1, **kw)
        assert (r.usage.completion_tokens, r.choices[0].finish_reason) == (5, "length"), kw
    _, chunks = streamed(c, model=MODEL, messages=msgs, seed=1, max_tokens=10**6,
                         stream_options={"include_usage": True})
    assert chunks[-1].usage.completion_tokens == 5
    assert c.chat.completions.create(model=MODEL, messages=msgs, seed=1, max_tokens=3).usage.completion_tokens == 3
    assert httpx.get(limited["url"] + "/health").json()["max_tokens_limit"] == 5
    assert httpx.get(server["url"] + "/health").json()["max_tokens_limit"] == 4096  # default: the context


def test_a_conversation_of_system_messages_only_is_answered(client, server):
    for extra in ({}, {"extra_body": {"sda": {"lam": 0.5}}}):
        r = client.chat.completions.create(model=MODEL, max_tokens=6, seed=2,
                                           messages=[{"role": "system", "content": "You list colours."}], **extra)
        assert r.choices[0].message.content and r.usage.prompt_tokens > 0


PREFILL = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, I"}]


def test_a_final_assistant_message_is_continued(client, server):
    """Prefill: the answer continues the assistant's message; its prompt is the conversation up to the template's
    generation prompt, then that message (so a text completion of the same text is the same answer)."""
    kw = dict(model=MODEL, max_tokens=8, seed=4)
    r = client.chat.completions.create(messages=PREFILL, **kw)
    same = client.completions.create(prompt="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello, I", **kw)
    assert r.choices[0].message.content == same.choices[0].text and r.usage.prompt_tokens == same.usage.prompt_tokens
    fresh = client.chat.completions.create(messages=PREFILL[:1], **kw)
    assert r.usage.prompt_tokens > fresh.usage.prompt_tokens
    steered = client.chat.completions.create(messages=PREFILL, extra_body={"sda": {"lam": 0.6}}, **kw)
    assert steered.choices[0].message.content != r.choices[0].message.content
    per_stream = steered.model_extra["sda"]["prompt_tokens_per_stream"]
    assert per_stream[0] == steered.usage.prompt_tokens > r.usage.prompt_tokens  # the instruction in stream A
    _, chunks = streamed(client, messages=PREFILL, extra_body={"sda": {"lam": 0.6}}, **kw)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == steered.choices[0].message.content
    r = post(server, {"model": MODEL, "messages": PREFILL, "sda": {"evaluator": "local"}})
    assert r.status_code == 400 and is_openai_error(r)["param"] == "sda.evaluator"


def test_cors_headers_and_preflight_only_for_the_given_origins(limited, server):
    url = limited["url"] + "/v1/chat/completions"
    ask = {"Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"}
    for origin in ("http://app.example", "http://other.example:8080"):
        r = httpx.options(url, headers={"Origin": origin, **ask})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin, r.text
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        r = httpx.post(url, json=chat(max_tokens=2), headers={"Origin": origin, "Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
        r = httpx.get(limited["url"] + "/v1/models", headers={"Origin": origin})  # the browser may read a 401
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == origin
    r = httpx.options(url, headers={"Origin": "http://evil.example", **ask})
    assert r.status_code >= 400 and "access-control-allow-origin" not in r.headers
    r = httpx.post(url, json=chat(max_tokens=2), headers={"Origin": "http://evil.example",
                                                         "Authorization": f"Bearer {KEY}"})
    assert "access-control-allow-origin" not in r.headers
    r = httpx.options(server["url"] + "/v1/chat/completions", headers={"Origin": "http://app.example", **ask})
    assert r.status_code == 405 and "access-control-allow-origin" not in r.headers  # off by default
    is_openai_error(r)


def test_fields_openai_takes_are_taken_and_a_number_is_asked_for_by_name(server):
    for body in (chat(max_tokens=2, tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="none"),
                 chat(max_tokens=2, frequency_penalty=0.5, presence_penalty=-1, top_logprobs=None)):
        r = post(server, body)
        assert r.status_code == 200, r.text
    r = post(server, chat(sda={"lam": "high"}))
    err = is_openai_error(r)
    assert r.status_code == 422 and err["param"] == "sda.lam"
    assert "number" in err["message"] and "integer" not in err["message"]


def test_the_judge_endpoint_url_never_reaches_the_client(server):
    body = chat(max_tokens=4, seed=1, sda={"evaluator": "openai", "return_base": True})
    for stream in (False, True):
        r = post(server, {**body, "stream": stream})
        assert r.status_code == 200, r.text
        assert "://" not in r.text and "127.0.0.1" not in r.text
        data = r.json() if not stream else [json.loads(line[6:]) for line in r.text.splitlines()
                                            if line.startswith("data: {")][-1]
        sda = data["sda"]
        assert sda["evaluator"] == "openai:gpt-4.1" and sda["lam_source"] == "fallback"
        assert sda["warnings"] and "openai:gpt-4.1: cannot connect" in sda["warnings"][0]
    assert "@http://127.0.0.1:" in server["log"].read_text()  # the operator's log keeps where the judge is
