"""``POST /v1/completions`` (issue 18): the legacy text completion, plain and SDA, through the official client."""
from __future__ import annotations

import openai
import pytest
from server_fixtures import client, openai_client, server  # noqa: F401  (fixtures)
from test_server import KEY, MODEL, files, serve  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

PROMPT = "Once upon a time the basil"
CHAT_PROMPT = "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"




@pytest.fixture(scope="module")
def n_prompt(files) -> int:  # noqa: F811
    from sda_local.runtime.backend import LoadedModel
    from sda_local.runtime.text_prompts import text_tokens

    model = LoadedModel(files["gguf"])
    try:
        return len(text_tokens(model, PROMPT))
    finally:
        model.close()


def test_plain_completion_is_seeded_and_counts_its_tokens(client, n_prompt):
    kw = dict(model=MODEL, prompt=PROMPT, max_tokens=12, seed=5, temperature=0.8)
    a, b = client.completions.create(**kw), client.completions.create(**{**kw, "prompt": [PROMPT]})
    assert a.object == "text_completion" and a.id.startswith("cmpl-")
    assert a.choices[0].text == b.choices[0].text != ""
    assert (a.choices[0].finish_reason, a.usage.completion_tokens) == ("length", 12)
    assert a.usage.prompt_tokens == n_prompt and a.usage.total_tokens == n_prompt + 12
    assert "sda" not in (a.model_extra or {})
    assert client.completions.create(**{**kw, "seed": 6}).choices[0].text != a.choices[0].text


def test_the_prompt_is_raw_text_with_special_tokens(client):
    """No chat template: a prompt that spells the template out is the chat request, token for token."""
    kw = dict(model=MODEL, max_tokens=10, seed=2, temperature=0.7, top_p=0.9)
    chat = client.chat.completions.create(messages=[{"role": "user", "content": "Name a colour."}], **kw)
    text = client.completions.create(prompt=CHAT_PROMPT, **kw)
    assert text.choices[0].text == chat.choices[0].message.content
    assert text.usage.prompt_tokens == chat.usage.prompt_tokens


def test_sda_completion_streamed_and_not(client, n_prompt):
    kw = dict(model=MODEL, prompt=PROMPT, max_tokens=16, seed=3, extra_body={"sda": {"preset": "harmlessness",
                                                                                    "lam": 0.6}})
    whole = client.completions.create(**kw)
    sda = whole.model_extra["sda"]
    assert (sda["preset"], sda["lam"], sda["lam_source"]) == ("harmlessness", 0.6, "fixed") and sda["mean_js"] > 0
    a, b = sda["prompt_tokens_per_stream"]  # the instruction before the prompt; the preset's contrast line in B
    assert a == whole.usage.prompt_tokens > n_prompt and b > n_prompt and sda["contrast"] == "ignore"
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert final.choices[0].finish_reason == "length" and final.model_extra["sda"]["lam"] == 0.6
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16
    plain = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=16, seed=3)
    assert plain.choices[0].text != whole.choices[0].text
    named = client.completions.create(model=f"{MODEL}+harmlessness", prompt=PROMPT, max_tokens=4, seed=3)
    assert named.model_extra["sda"]["preset"] == "harmlessness"


def test_stop_cuts_the_completion(client, n_prompt):
    kw = dict(model=MODEL, prompt=PROMPT, max_tokens=40, seed=9)
    full = client.completions.create(**kw).choices[0].text
    stop = full[10:12]
    r = client.completions.create(stop=[stop], **kw)
    assert (r.choices[0].text, r.choices[0].finish_reason) == (full[:full.index(stop)], "stop")
    assert r.usage.prompt_tokens == n_prompt


@pytest.mark.parametrize("kw, status, param", [
    ({"prompt": ["one", "two"]}, 400, "prompt"),
    ({"prompt": PROMPT, "n": 2}, 400, "n"),
    ({"prompt": PROMPT, "echo": True}, 400, "echo"),
    ({"prompt": PROMPT, "logprobs": 2}, 400, "logprobs"),
    ({"prompt": PROMPT, "extra_body": {"sda": {"evaluator": "local"}}}, 400, "sda.evaluator"),
    ({"prompt": PROMPT, "temperature": 9}, 400, "temperature"),
    ({"prompt": "a b " * 5000}, 400, "prompt"),
    ({"prompt": 3}, 422, "prompt"),
])
def test_bad_completion_requests_name_the_field(client, kw, status, param):
    with pytest.raises(openai.APIStatusError) as exc:
        client.completions.create(model=MODEL, max_tokens=2, **kw)
    assert exc.value.status_code == status and exc.value.body["param"] == param, exc.value.body
