"""Per-token diagnostics of an aligned answer, as data for Gradio's line plot (long format) and a table.

Each aligned token carries the two streams' JS divergence, the temperature it was sampled at, and the
probability of the token that was chosen (``TurnRecord.aligned_tokens``).
"""
from __future__ import annotations

import pandas as pd

SERIES = {"js": "JS divergence", "temperature": "temperature", "prob": "chosen-token probability"}
TABLE_HEADERS = ["#", "token", "JS", "T", "p(token)"]


def shown(text: str) -> str:
    """A token's text made visible in a tooltip or cell (spaces and newlines would vanish)."""
    return (text or "").replace("\n", "⏎").replace(" ", "·") or "∅"


def plot_frame(tokens: list[dict]) -> pd.DataFrame:
    rows = []
    for t in tokens:
        for key, label in SERIES.items():
            v = t.get(key)
            if v is None:
                continue
            rows.append({"token #": int(t.get("i", len(rows))), "value": float(v), "series": label,
                         "token": shown(t.get("text", ""))})
    return pd.DataFrame(rows, columns=["token #", "value", "series", "token"])


def table_rows(tokens: list[dict]) -> list[list]:
    def r(v):
        return None if v is None else round(float(v), 4)

    return [[int(t.get("i", n)), shown(t.get("text", "")), r(t.get("js")), r(t.get("temperature")), r(t.get("prob"))]
            for n, t in enumerate(tokens)]


def summary(tokens: list[dict]) -> str:
    js = [t["js"] for t in tokens if t.get("js") is not None]
    if not js:
        return "No aligned tokens yet."
    temps = [t["temperature"] for t in tokens if t.get("temperature") is not None]
    probs = [t["prob"] for t in tokens if t.get("prob") is not None]
    return (f"{len(tokens)} tokens · mean JS {sum(js) / len(js):.4f} (max {max(js):.4f}) · "
            f"mean T {sum(temps) / len(temps):.3f} · mean p(token) {sum(probs) / len(probs):.3f}")
