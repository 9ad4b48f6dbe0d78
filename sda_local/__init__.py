"""sda-local: training-free alignment (SDA) for local GGUF models through llama.cpp.

Layers, each knowing only the one below: ``core`` (numpy math) → ``engine`` (llama.cpp twin streams) →
pipeline and evaluators → interfaces (CLI, chat UI).
"""
__version__ = "0.1.0"
