"""Every benchmark (interfaces layer; each prints or returns JSON, never asserts a time).

- ``run``              ``sda-local bench``: plain vs SDA, core cost, prompt time, memory, peers, tiers
- ``decode``           bare one- vs several-sequence ``llama_decode`` steps (the bound on SDA/plain)
- ``turn``             time to the first aligned token of a whole turn, per evaluator
- ``peer``, ``cfg_peer``   the transformers baselines (the authors' way, and generate with guidance_scale)
- ``serve``            ``sda-local bench-serve``: tok/s over HTTP vs in-process, time to first token
- ``judge_latency``    ``sda-local score --bench``: seconds per score
- ``eval_throughput``  ``sda-local bench-eval``: seconds per TruthfulQA question
"""
