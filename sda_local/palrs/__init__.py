"""PaLRS — preference alignment via residual steering (La Cava & Tagarelli, arXiv 2509.23982) on GGUF models.

- ``pairs``:   preference pairs (JSONL prompt/chosen/rejected) and a builder from TruthfulQA
- ``capture``: per-layer residual capture (llama.cpp ``l_out-N``) through ``cb_eval``
- ``extract``: difference of means, candidate selection and rescaling
- ``cvec``:    control-vector GGUF files (llama.cpp's ``--control-vector`` format): write, read, sum
- ``cli``:     ``sda-local palrs …`` and the control-vector options of ``sda-local generate``
- ``sweep``:   the α sweep on TruthfulQA MC1/MC2
"""
