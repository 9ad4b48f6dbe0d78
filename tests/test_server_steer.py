"""The server: steering toward the request's own system message (``MODEL+system``, ``sda.steer_toward``), and the
same seed giving the same steered answer whatever was asked before (the embedded SmolLM2, as a user sees it)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import openai
import pytest
from server_fixtures import client, openai_client, server  # noqa: F401  (fixtures)
from servers import free_port
from test_server import KEY, MODEL, files, post  # noqa: F401

SYSTEM = "Answer like a pirate."
CONVO = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is the harbour?"}]


def test_the_model_list_offers_model_plus_system(client):  # noqa: F811
    ids = [m.id for m in client.models.list().data]
    assert f"{MODEL}+system" in ids


def test_model_plus_system_steers_toward_the_system_message(server):  # noqa: F811
    body = {"model": f"{MODEL}+system", "messages": CONVO, "max_tokens": 6, "seed": 3}
    r = post(server, body)
    assert r.status_code == 200, r.text
    sda = r.json()["sda"]
    assert sda["steer_toward"] == "system" and sda["placement"] == "system" and sda["preset"] == "system prompt"
    same = post(server, {"model": MODEL, "messages": CONVO, "max_tokens": 6, "seed": 3,
                         "sda": {"steer_toward": "system"}})
    assert same.json()["choices"][0]["message"]["content"] == r.json()["choices"][0]["message"]["content"]
    preset = post(server, {**body, "model": f"{MODEL}+helpfulness"})
    assert preset.json()["sda"]["steer_toward"] == "preset"


def test_steering_toward_a_missing_system_message_is_a_clear_400(server):  # noqa: F811
    r = post(server, {"model": f"{MODEL}+system", "messages": CONVO[1:], "max_tokens": 4})
    assert r.status_code == 400 and "system message" in r.json()["error"]["message"]
    r = post(server, {"model": MODEL, "messages": CONVO, "max_tokens": 4, "sda": {"steer_toward": "loudly"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "sda.steer_toward"
    r = httpx.post(server["url"] + "/v1/completions", json={"model": f"{MODEL}+system", "prompt": "Hi",
                                                            "max_tokens": 4},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "sda.steer_toward"


@pytest.mark.slow
def test_a_seeded_steered_answer_is_the_same_after_other_requests(tmp_path):
    """The issue's report, as a user ran it: SmolLM2, ``+harmlessness``, seed 1, with other requests between."""
    port = free_port()
    env = {**os.environ, "SDA_LOCAL_CONFIG": str(tmp_path)}
    env.pop("SDA_LOCAL_API_KEY", None)
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sda_local.cli", "serve", "--model", "smollm2-135m",
                                 "--port", str(port), "--threads", "1"], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
    try:
        c = openai_client({"url": f"http://127.0.0.1:{port}"}, timeout=120)
        for _ in range(240):
            try:
                c.models.list()
                break
            except openai.APIConnectionError:
                time.sleep(0.5)

        def ask(model, text, **kw):
            return c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                             seed=1, max_tokens=32, **kw).choices[0].message.content

        count = "Count from 1 to 20, separated by commas."
        texts = []
        for other in ("smollm2-135m+harmlessness", "smollm2-135m", "smollm2-135m+empathy"):
            texts.append(ask("smollm2-135m+harmlessness", count, temperature=1.0))
            ask(other, "Name a colour and say why you like it.", temperature=1.0)
        texts.append(ask("smollm2-135m+harmlessness", count, temperature=1.0))
        assert len(set(texts)) == 1, texts
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_adaptive_guidance_is_a_request_option(server):  # noqa: F811
    ok = post(server, {"model": f"{MODEL}+helpfulness", "messages": CONVO[1:], "max_tokens": 4, "seed": 2,
                       "sda": {"adaptive_guidance": "jsd"}})
    assert ok.status_code == 200, ok.text
    bad = post(server, {"model": MODEL, "messages": CONVO[1:], "max_tokens": 4, "sda": {"adaptive_guidance": "x"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "sda.adaptive_guidance"
