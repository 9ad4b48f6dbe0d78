"""``self``: a score from SDA's own two streams, with no judge prompt (the paper's open question 1).

The answer is teacher-forced through the "with instruction" and "without instruction" streams of the chat model
(``TeacherForcer``: both streams in one batch, the prompt's shared prefix evaluated once), the instruction being
the criterion's preset instruction in the user turn, as SDA places it; the "without" stream gets the
``contrast``'s line in its place (none by default: the paper's empty stream).  With y_1 … y_n the answer's tokens,

    r = (1/n) Σ_t [log p(y_t | instruction, x, y<t) − log p(y_t | x, y<t)]      (nats per token)

and the score is 1 + 99·sigmoid(r / τ) (``scales.self_score``, τ = ``SELF_SCORE_TAU``).  r > 0 means the instruction
makes the answer likelier: the answer already is what the instruction asks for, so it scores high and SDA steers
little; r < 0 scores low.  Context Steering (arXiv 2405.01768) infers its λ from the same quantity.  The raw text
records r.  The model is the chat engine's own (borrowed, never loaded twice) unless a file is given.

When the turn hands over how it generated the base answer (``base``, a ``BaseAnswer``: the conversation, the
engine and the answer's record), the score takes a shortcut: the "without" half of r is the log-probs recorded
while that answer was sampled (``Finished.record``), and only the "with" stream is teacher-forced, in the
engine's own instructed stream (``Engine.aligned_logprobs``: the prompt prefix the uninstructed stream holds is
copied, and the instructed stream keeps the instructed prompt for the aligned answer).  It applies when the recorded prompt and tokens are exactly the ones
this score would force (the answer's text tokenizes back to the same tokens); otherwise the score is computed
as above, on the same conversation.  The two agree up to llama.cpp's
batch-shape rounding (a single-token decode vs a batch: logits differ in about the 3rd decimal).
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np

from ..core import CONTRASTS
from ..errors import SdaError
from ..presets import Preset, all_presets
from ..runtime.backend import LoadedModel
from ..runtime.prompts import ChatPrompter, Placement
from ..runtime.teacher_forcing import TeacherForcer
from .base import (
    SCORE_DECIMALS,
    BaseAnswer,
    Evaluator,
    EvaluatorError,
    Score,
    clip_response,
    resolve_criterion,
)
from .judge_context import MIN_KEPT_TOKENS, open_model
from .scales import SELF_SCORE_TAU, mean_logprob_gap, self_score


def criterion_preset(criterion: str | Preset) -> Preset:
    """The preset of a criterion (given as a ``Preset`` or by name); a rubric text has none."""
    if isinstance(criterion, Preset):
        return criterion
    presets = all_presets()
    if criterion in presets:
        return presets[criterion]
    raise EvaluatorError(f"the self-score compares the answer with and without a preset's instruction; "
                         f"{criterion[:40]!r} is not a preset (choose one of: {', '.join(presets)})")


class SelfScoreEvaluator(Evaluator):
    """Mean log p_with − log p_without of the answer's tokens, mapped to 1–100 (see the module docstring)."""

    kind = "self"

    def __init__(self, model: LoadedModel | str | os.PathLike | None = None, *, prompter: ChatPrompter | None = None,
                 n_ctx: int = 2048, n_threads: int | None = None, label: str | None = None,
                 tau: float = SELF_SCORE_TAU, placement: Placement = "user", contrast: str = "auto"):
        """``n_ctx``: room for one stream's prompt plus the answer (the forcer's cache holds both streams).
        ``contrast``: what the "without" stream gets in the instruction's place (``SamplingParams.contrast``;
        "auto", the default, is the placement's own: the paper's empty stream in the user turn; "opposite" reads the
        criterion preset's opposite)."""
        if not tau > 0:
            raise EvaluatorError(f"tau must be > 0, got {tau!r}")
        if contrast not in CONTRASTS:
            raise EvaluatorError(f"the self-score's contrast must be one of {', '.join(CONTRASTS)}, got {contrast!r}")
        self.model, self._owns, label = open_model(model, label)
        self.name = f"{self.kind}:{label}" + ("" if contrast == "auto" else f":{contrast}")
        self.tau, self.placement, self.contrast = float(tau), placement, contrast
        self.prompter = prompter or ChatPrompter.for_model(self.model)
        try:
            self.forcer = TeacherForcer(self.model, self.prompter, n_ctx=2 * int(n_ctx), n_seq_max=4,
                                        n_threads=n_threads)
        except SdaError:
            self._close_model()
            raise
        self.shortcuts = 0  # scores that took the engine shortcut
        self._lock = threading.Lock()

    def ask(self, messages, fields):
        raise EvaluatorError("the self-score reads the two streams; it does not answer free-form prompts")

    def _pair(self, messages: list[dict], preset: Preset) -> tuple[list[int], list[int]]:
        return self.prompter.pair(messages, preset.instruction, self.placement, self.contrast, preset.opposite)

    def _fit(self, messages: list[dict], preset: Preset, answer: str) -> tuple[str, list[str]]:
        """The answer, cut (with a warning) so that each stream's prompt plus the answer fits the forcer."""
        ta, tb = self._pair(messages, preset)
        toks = self.model.tokenize(answer.strip(), add_bos=False, special=False)
        room = self.forcer.n_cells // 2 - max(len(ta), len(tb))
        if len(toks) <= room:
            return answer, []
        keep = room - 8
        if keep < MIN_KEPT_TOKENS:
            raise EvaluatorError(f"the request alone is too long for the self-score's context "
                                 f"({self.forcer.n_cells // 2} tokens per stream)")
        return (self.model.detokenize(toks[:keep]),
                [f"the response was cut from {len(toks)} to {keep} tokens to fit the self-score's context"])

    def gap(self, query: str, answer: str, preset: Preset, base: BaseAnswer | None = None
            ) -> tuple[float, int, list[str]]:
        """(r, number of answer tokens, warnings) for ``answer`` to ``query`` (see the module docstring); the
        conversation is ``base.messages`` when the turn gave them, else the query alone."""
        if not answer.strip():
            raise EvaluatorError("the self-score needs a non-empty answer")
        messages = list(base.messages) if base is not None else [{"role": "user", "content": query}]
        with self._lock:
            try:
                answer, warnings = self._fit(messages, preset, answer)
                fast = self._from_record(base, preset, answer)
                if fast is not None:
                    return fast[0], fast[1], warnings
                fa = self.forcer.force(messages, preset.instruction, [answer], placement=self.placement,
                                       contrast=self.contrast, opposite=preset.opposite)[0]
            except SdaError as exc:
                raise EvaluatorError(f"the self-score failed: {exc}") from None
            except ValueError as exc:  # an answer without tokens
                raise EvaluatorError(f"the self-score failed: {exc}") from None
        return mean_logprob_gap(fa.logits_with, fa.logits_without, fa.targets), len(fa.targets), warnings

    def _from_record(self, base: BaseAnswer | None, preset: Preset, answer: str) -> tuple[float, int] | None:
        """(r, n) from the base answer's record and the engine's instructed stream, when they cover exactly this score
        (the recorded prompt is the plain one, so a contrast line never matches it)."""
        rec = None if base is None else base.record
        if rec is None or base.engine.model is not self.model:
            return None
        _, tb = self._pair(base.messages, preset)
        toks = self.model.tokenize(answer.strip(), add_bos=False, special=False)
        if not toks or list(rec.prompt) != tb or list(rec.tokens) != toks:
            return None
        lw = base.engine.aligned_logprobs(base.messages, preset.instruction, toks, placement=self.placement)
        self.shortcuts += 1
        return float(np.mean(lw - rec.logprobs)), len(toks)

    def score(self, query: str, response: str, criterion, base: BaseAnswer | None = None) -> Score:
        crit, _ = resolve_criterion(criterion)
        preset = criterion_preset(criterion)
        response, warnings = clip_response(response)
        t0 = time.perf_counter()
        r, n, more = self.gap(query, response, preset, base)
        value = round(self_score(r, self.tau), SCORE_DECIMALS)
        raw = f"r = {r:+.4f} nats/token over {n} tokens (tau {self.tau:g})"
        return Score(value, raw, self.name, time.perf_counter() - t0, crit, warnings + more)

    def close(self) -> None:
        self.forcer.close()
        self._close_model()

    def _close_model(self) -> None:
        if self._owns:
            self.model.close()
