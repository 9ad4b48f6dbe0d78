"""PaLRS extraction: a steering vector from preference pairs by difference of means (La Cava & Tagarelli,
arXiv 2509.23982).

For every pair, the prompt is rendered with the model's chat template as a user turn, followed once by the chosen
and once by the rejected answer as the assistant turn.  The residual stream after each candidate layer N
(``l_out-N``) is read at the response positions — the answer's tokens and the end-of-turn token the template
puts after it — and reduced per answer to one vector:

- ``position="last"``: the last response position (the end-of-turn token where the template has one: the
  point where the model has read the whole answer);
- ``position="mean"``: the mean over all response positions.

Per layer N, over the pairs (running sums, so memory does not grow with the number of pairs):

    d_N = mean(chosen_N) − mean(rejected_N)            the candidate direction
    c_N = cos(d_N, mean(chosen_N))                     its alignment with the mean chosen activation

The candidate with the largest c_N is selected and rescaled to the norm of that layer's mean chosen activation,
v = d_N / |d_N| · |mean(chosen_N)|, so that α = 1 adds a vector as large as a typical activation there.  It is
written as ``direction.N``: llama.cpp adds α·v to the output of layer N at every position while generating.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from ..errors import SdaError
from ..runtime.backend import LoadedModel
from ..runtime.prompts import FALLBACK_TEMPLATE, ChatPrompter
from .capture import ResidualCapture
from .pairs import Pair

POSITIONS = ("last", "mean")


class ExtractError(SdaError):
    """Extraction could not run (bad layer range, nothing usable in the pairs, …)."""


@dataclass
class Rendered:
    """One prompt+answer as tokens; the answer (and its end-of-turn token) is ``tokens[start:end]``."""

    tokens: list[int]
    start: int
    end: int


class PairRenderer:
    """Renders (prompt, answer) with the model's chat template, exactly as the engine renders a user turn."""

    def __init__(self, model: LoadedModel, system: str | None = None):
        self.model = model
        m = model
        bos_text = m.token_text(m.bos_token) if m.bos_token >= 0 else ""
        eos_text = m.token_text(m.eos_token) if m.eos_token >= 0 else ""
        self.prompter = ChatPrompter.for_model(m)
        self._full = Jinja2ChatFormatter(template=m.chat_template or FALLBACK_TEMPLATE, eos_token=eos_text,
                                         bos_token=bos_text, add_generation_prompt=False)
        self.system = system

    def _messages(self, prompt: str) -> list[dict]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + \
               [{"role": "user", "content": prompt}]

    def render(self, prompt: str, answer: str) -> Rendered:
        msgs = self._messages(prompt)
        head_text = self.prompter.render(msgs)
        head = self.prompter.tokens(msgs)
        tail: list[int] | None = None
        try:
            full_text = self._full(messages=msgs + [{"role": "assistant", "content": answer}]).prompt
        except Exception:
            full_text = ""
        if full_text.startswith(head_text) and len(full_text) > len(head_text):
            tail = self.model.tokenize(full_text[len(head_text):], add_bos=False, special=True)
            eog = next((i for i, t in enumerate(tail) if self.model.is_eog(t)), None)
            if eog is None:  # pragma: no cover - a template without an end-of-turn token
                tail = None
            else:
                tail = tail[:eog + 1]  # the answer and its end-of-turn token; not what follows it
        if tail is None:  # the template does not render assistant turns as a continuation: answer + EOS
            tail = self.model.tokenize(answer, add_bos=False, special=False)
            if self.model.eos_token >= 0:
                tail.append(self.model.eos_token)
        return Rendered(head + tail, len(head), len(head) + len(tail))


@dataclass
class ExtractResult:
    layers: list[int]                 # candidate layers N (the vector for N is applied at l_out-N)
    diff: np.ndarray                  # (len(layers), n_embd) mean(chosen) − mean(rejected), float64
    mean_chosen: np.ndarray           # (len(layers), n_embd)
    mean_rejected: np.ndarray
    position: str
    n_pairs: int
    n_truncated: int = 0
    seconds: float = 0.0
    n_tokens: int = 0                 # tokens evaluated (after prompt reuse)
    model_hint: str = ""
    model_name: str = ""
    cosines: np.ndarray = field(init=False)
    selected: int = field(init=False)

    def __post_init__(self) -> None:
        dn = np.linalg.norm(self.diff, axis=1)
        cn = np.linalg.norm(self.mean_chosen, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.einsum("ij,ij->i", self.diff, self.mean_chosen) / (dn * cn)
        self.cosines = np.nan_to_num(cos, nan=-np.inf)
        self.selected = int(self.layers[int(np.argmax(self.cosines))])

    def direction(self, layer: int | None = None) -> np.ndarray:
        """The rescaled steering vector of ``layer`` (default: the selected one), float32."""
        i = self.layers.index(self.selected if layer is None else int(layer))
        d = self.diff[i]
        dn = np.linalg.norm(d)
        if dn == 0:
            raise ExtractError(f"layer {self.layers[i]}: chosen and rejected activations are identical")
        return (d / dn * np.linalg.norm(self.mean_chosen[i])).astype(np.float32)

    def directions(self, all_layers: bool = False) -> dict[int, np.ndarray]:
        if not all_layers:
            return {self.selected: self.direction()}
        return {n: self.direction(n) for n in self.layers if np.linalg.norm(self.diff[self.layers.index(n)]) > 0}

    def metadata(self) -> dict[str, object]:
        i = self.layers.index(self.selected)
        return {
            "general.name": f"palrs {self.model_name}".strip(),
            "palrs.method": "difference of means (chosen - rejected), cosine-selected, rescaled",
            "palrs.source_model": self.model_name,
            "palrs.position": self.position,
            "palrs.n_pairs": self.n_pairs,
            "palrs.selected_layer": self.selected,
            "palrs.selected_cosine": float(self.cosines[i]),
            "palrs.rescaled_norm": float(np.linalg.norm(self.mean_chosen[i])),
            "palrs.candidate_layers": [float(x) for x in self.layers],
            "palrs.cosines": [float(x) for x in self.cosines],
            "palrs.diff_norms": [float(x) for x in np.linalg.norm(self.diff, axis=1)],
            "palrs.chosen_norms": [float(x) for x in np.linalg.norm(self.mean_chosen, axis=1)],
        }

    def summary(self) -> dict:
        i = self.layers.index(self.selected)
        return {"selected_layer": self.selected, "cosine": round(float(self.cosines[i]), 4),
                "norm": round(float(np.linalg.norm(self.mean_chosen[i])), 4),
                "diff_norm": round(float(np.linalg.norm(self.diff[i])), 4), "position": self.position,
                "n_pairs": self.n_pairs, "n_truncated": self.n_truncated, "n_tokens": self.n_tokens,
                "seconds": round(self.seconds, 2),
                "cosines": {int(n): round(float(c), 4) for n, c in zip(self.layers, self.cosines)}}


def candidate_layers(n_layer: int, layers: tuple[int, int] | None) -> list[int]:
    """Layers a vector can be applied to: 1..n_layer-1 (llama.cpp never steers layer 0), within ``layers``."""
    if n_layer < 2:
        raise ExtractError(f"the model has {n_layer} layer(s): there is no steerable layer (1..n_layer-1)")
    lo, hi = layers if layers is not None else (1, n_layer - 1)
    if lo < 1 or hi > n_layer - 1:
        raise ExtractError(f"layer range {lo}-{hi}: this model's steerable layers are 1..{n_layer - 1} "
                           f"(a vector for layer N is added to the output of layer N; layer 0 is never steered)")
    return list(range(lo, hi + 1))


def extract(model: LoadedModel, pairs: Sequence[Pair], *, layers: tuple[int, int] | None = None,
            position: str = "last", system: str | None = None, max_tokens: int = 1024,
            n_threads: int | None = None, n_batch: int = 512,
            progress: Callable[[int, int], None] | None = None) -> ExtractResult:
    """Difference-of-means extraction over ``pairs`` on ``model``; see the module docstring."""
    if position not in POSITIONS:
        raise ExtractError(f"position must be one of {POSITIONS}, got {position!r}")
    if not pairs:
        raise ExtractError("no pairs to extract from")
    cands = candidate_layers(model.n_layer, layers)
    renderer = PairRenderer(model, system)
    cap_len = max(8, min(int(max_tokens), model.n_ctx_train or int(max_tokens)))
    jobs: list[tuple[Rendered, Rendered]] = []
    n_trunc = 0
    for k, p in enumerate(pairs):
        both = []
        for ans in (p.chosen, p.rejected):
            r = renderer.render(p.prompt, ans)
            if r.start >= cap_len:
                raise ExtractError(f"pair {k + 1}: the prompt alone is {r.start} tokens, more than the "
                                   f"{cap_len}-token limit (raise max_tokens or shorten the prompt)")
            if r.end > cap_len:
                r = Rendered(r.tokens[:cap_len], r.start, cap_len)
                n_trunc += 1
            both.append(r)
        jobs.append((both[0], both[1]))
    n_ctx = max(r.end for j in jobs for r in j)
    sums = {"chosen": np.zeros((len(cands), model.n_embd)), "rejected": np.zeros((len(cands), model.n_embd))}
    t0 = time.perf_counter()
    with ResidualCapture(model, cands, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads) as cap:
        for k, job in enumerate(jobs):
            for which, r in zip(("chosen", "rejected"), job):
                rows = cap.run(r.tokens, r.start, r.end)
                acc = sums[which]
                for i, n in enumerate(cands):
                    x = rows[n]
                    acc[i] += x[-1] if position == "last" else x.astype(np.float64).mean(axis=0)
            if progress is not None:
                progress(k + 1, len(jobs))
        n_tokens = cap.n_decoded
    n = len(jobs)
    mc, mr = sums["chosen"] / n, sums["rejected"] / n
    res = ExtractResult(cands, mc - mr, mc, mr, position, n, n_trunc, time.perf_counter() - t0, n_tokens,
                        model.metadata.get("general.architecture", ""),
                        model.metadata.get("general.name", model.path.name))
    if not np.isfinite(res.cosines).any():
        raise ExtractError("every candidate direction is zero: the chosen and rejected answers gave identical "
                           "activations")
    return res
