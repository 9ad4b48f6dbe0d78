"""sda-local: training-free alignment (SDA) for local GGUF models through llama.cpp.

Layers, each knowing only the ones below: ``core`` (numpy math) → ``runtime`` (llama.cpp, twin streams) →
``judges`` (evaluators, the λ decision) and ``turn`` (base → score → λ → aligned, as events) → interfaces
(``cli``, ``server``, ``evaluation``, ``bench``, and the chat in the top-level ``ui``).
"""
__version__ = "0.1.0"
