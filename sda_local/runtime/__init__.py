"""The llama.cpp runtime (layer 2): everything that loads a GGUF or runs it.

- ``models``, ``assemble``   which file: the registry, models/ folders, GGUF checks, joining split models
- ``backend``, ``_alloc``    the only llama_cpp user: model, context, batch, KV operations
- ``prompts``                the chat template → the prompts of the streams (placements)
- ``kvprefix``               KV prefix reuse: a sequence and the tokens it holds
- ``streams``                an engine's streams (instructed, uninstructed, base): loading, reuse, steps, in one place
- ``textstream``             UTF-8-safe streaming of token bytes
- ``answer_record``          an answer's per-token log-probs, recorded while it is sampled
- ``layouts``                the engine's layouts (one context with several sequences, or one context each)
- ``sampler``                one answer being sampled: its chain, its random stream, its events
- ``engine``                 the twin-stream engine: layout, control vectors, one decode loop, per-token events
- ``teacher_forcing``, ``answer_tree``   forced answers through both streams in one batch (TruthfulQA, judges)

It knows ``core`` (the math) and nothing above it.
"""
