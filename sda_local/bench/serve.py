"""``sda-local bench-serve``: what the HTTP server costs.

- tokens per second of one SDA answer through the server (streamed over HTTP on 127.0.0.1) vs the same answer
  generated in-process on the same engine (goal: ratio ≥ 0.95);
- time to first token, p50 / p95, with several clients streaming at once (one generation runs at a time, so
  this includes the wait in the queue).

The server runs in this process (uvicorn in a thread) on the engine the in-process runs use, so both sides load
the same weights once and generate the same tokens (same seed and settings).
"""
from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import numpy as np

from ..core import SamplingParams
from ..judges import FixedEvaluator
from ..presets import DEFAULT_PRESET, get_preset
from ..runtime.engine import Engine
from ..server.app import create_app
from ..server.config import ServerConfig
from ..turn import TurnSettings, TurnTrace, answer

QUESTION = "Give three tips for keeping a basil plant healthy."


@dataclass
class ServeBenchConfig:
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_tokens=64, seed=0))
    lam: float = 0.5
    repeats: int = 3
    clients: int = 4
    requests_per_client: int = 3


@contextmanager
def running_server(engine: Engine, config: ServerConfig | None = None):
    """The app on a free 127.0.0.1 port, served by uvicorn in a thread; yields its base URL."""
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(engine, config or ServerConfig(max_queue=64))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started:
            if time.time() > deadline or not thread.is_alive():
                raise RuntimeError("the benchmark server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.judges.close()


def _body(engine: Engine, cfg: ServeBenchConfig, seed: int | None) -> dict:
    p = cfg.sampling
    return {"model": engine.name, "messages": [{"role": "user", "content": QUESTION}], "stream": True,
            "max_tokens": p.max_tokens, "seed": seed, "temperature": p.t0, "top_p": p.top_p,
            "stream_options": {"include_usage": True},
            "sda": {"preset": DEFAULT_PRESET, "lam": cfg.lam, "k": p.k, "temperature_mode": p.temperature_mode,
                    "plausibility": p.plausibility}}


def stream_once(http: httpx.Client, url: str, body: dict) -> dict:
    """One streamed request: seconds to the first text, in all, and the completion tokens."""
    t0 = time.perf_counter()
    first, tokens, text = None, 0, []
    with http.stream("POST", url + "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            piece = chunk["choices"][0]["delta"].get("content") if chunk.get("choices") else None
            if piece:
                text.append(piece)
                if first is None:
                    first = time.perf_counter() - t0
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return {"ttft_s": first, "total_s": time.perf_counter() - t0, "tokens": tokens, "text": "".join(text)}


def _in_process(engine: Engine, cfg: ServeBenchConfig) -> dict:
    """The same answer through the same seam the server calls (``turn.answer``: the preset's placement and
    contrast), without HTTP."""
    msgs = [{"role": "user", "content": QUESTION}]
    settings = TurnSettings(preset=get_preset(DEFAULT_PRESET), sampling=cfg.sampling)
    t0 = time.perf_counter()
    done = TurnTrace.run(answer(engine, FixedEvaluator(lam=cfg.lam), msgs, settings)).aligned
    return {"total_s": time.perf_counter() - t0, "tokens": done.n_tokens, "text": done.text}


def _median_rate(runs: list[dict]) -> float:
    return statistics.median(r["tokens"] / r["total_s"] for r in runs)


def _ttft(engine: Engine, url: str, cfg: ServeBenchConfig) -> dict:
    def client(i: int) -> list[float]:
        with httpx.Client(timeout=600) as http:
            return [stream_once(http, url, _body(engine, cfg, 1000 * i + j))["ttft_s"]
                    for j in range(cfg.requests_per_client)]

    with ThreadPoolExecutor(cfg.clients) as pool:
        ttfts = [t for ts in pool.map(client, range(cfg.clients)) for t in ts if t is not None]
    return {"clients": cfg.clients, "requests": len(ttfts),
            "ttft_p50_s": round(float(np.percentile(ttfts, 50)), 4),
            "ttft_p95_s": round(float(np.percentile(ttfts, 95)), 4)}


def run_serve_bench(engine: Engine, cfg: ServeBenchConfig) -> dict:
    body = _body(engine, cfg, cfg.sampling.seed)
    with running_server(engine) as url, httpx.Client(timeout=600) as http:
        stream_once(http, url, body)  # warm-up: caches, first-request costs
        _in_process(engine, cfg)
        served, local = [], []
        for _ in range(cfg.repeats):  # interleaved, so both sides see the same machine load
            served.append(stream_once(http, url, body))
            local.append(_in_process(engine, cfg))
        rate_server, rate_local = _median_rate(served), _median_rate(local)
        ttft = _ttft(engine, url, cfg)
    return {"model": engine.name, "n_threads": engine.n_threads, "max_tokens": cfg.sampling.max_tokens,
            "lam": cfg.lam, "repeats": cfg.repeats,
            "tokens": {"server": served[-1]["tokens"], "in_process": local[-1]["tokens"]},
            "same_answer": served[-1]["text"] == local[-1]["text"],  # same seed, same seam: the same text
            "tokens_per_s": {"server": round(rate_server, 2), "in_process": round(rate_local, 2),
                             "ratio": round(rate_server / rate_local, 4)},
            "concurrent_streams": ttft}
