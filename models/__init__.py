"""Model registry data (``registry.toml``); GGUF files dropped here are found by name.  Not code."""
