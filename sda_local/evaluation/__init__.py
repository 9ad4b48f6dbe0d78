"""Judge-free evaluation of SDA on prompt sets: datasets, teacher-forced TruthfulQA, refusal rates, reports.

Modules: ``datasets`` (JSONL loading), ``metrics`` (pure functions), ``token_logprobs`` (per-token log-probs
under each decoding setting, via ``sda_local.core``), ``teacher_forcing`` (llama.cpp scorer), ``truthfulqa``,
``refusal_detector``, ``refusal``, ``report`` (JSON + Markdown), ``progress``, ``cli`` (``sda-local eval``).
"""
