"""A GBNF grammar as a mask over the next token: llama.cpp's grammar sampler applied to numpy-side sampling.

The engine draws tokens in numpy from the processor chain's distribution, so the grammar cannot be a llama.cpp
sampler in a chain.  ``GrammarConstraint`` is the chain's last processor instead: at each step it first feeds
the grammar the tokens drawn since the last step (the state's history), then asks llama.cpp's grammar sampler
which of the still-possible tokens the grammar allows and gives every other token score −inf.  The chain's
softmax then renormalises over the allowed tokens, which is the distribution the token is drawn from (and whose
log-probs a request may ask for).  Once the grammar is complete only end-of-generation tokens are allowed.

If the earlier constraints (plausibility, echo block) removed every token the grammar allows, the allowed
tokens are scored by the instructed stream at the step's temperature instead (the answer must go on somehow).
A token the grammar did not allow is never fed to it (llama.cpp would abort the process): that is an error.

llama.cpp's grammar decodes UTF-8 leniently (a lead byte followed by anything counts as a character), so the
mask also keeps the answer's bytes valid UTF-8 (``Utf8Guard``): a string's characters are then characters, and
its ``maxLength`` is what the client counts.
"""
from __future__ import annotations

import codecs
import ctypes
from functools import lru_cache

import llama_cpp
import numpy as np

from ..core.processors import Processor, StepState
from ..errors import DecodeError, SdaError
from .backend import LoadedModel

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
assert _TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)


class GrammarError(SdaError):
    """llama.cpp could not parse a grammar."""


def _sampler(model: LoadedModel, gbnf: str):
    smpl = llama_cpp.llama_sampler_init_grammar(model.vocab, gbnf.encode("utf-8"), b"root")
    if not smpl:
        raise GrammarError("llama.cpp could not parse the grammar (its log says where)")
    return smpl


def check_grammar(model: LoadedModel, gbnf: str) -> None:
    """``GrammarError`` unless llama.cpp accepts ``gbnf`` (root rule ``root``)."""
    llama_cpp.llama_sampler_free(_sampler(model, gbnf))


@lru_cache(maxsize=4)
def _utf8_classes(model: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """Per token: may it follow complete characters (its bytes are valid UTF-8, perhaps ending mid-character),
    and does it start with a continuation byte (the only tokens that may follow an incomplete character)."""
    alone = np.zeros(model.n_vocab, dtype=bool)
    cont = np.zeros(model.n_vocab, dtype=bool)
    for t in range(model.n_vocab):
        b = model.token_bytes(t)
        cont[t] = bool(b) and 0x80 <= b[0] < 0xC0
        try:
            codecs.getincrementaldecoder("utf-8")().decode(b, final=False)
            alone[t] = True
        except UnicodeDecodeError:
            pass
    return alone, cont


class Utf8Guard:
    """Which tokens keep the answer's bytes valid UTF-8 (see the module docstring)."""

    def __init__(self, model: LoadedModel):
        self.model = model
        self.alone, self.cont = _utf8_classes(model)
        self._dec = codecs.getincrementaldecoder("utf-8")()

    def accept(self, tok: int) -> None:
        self._dec.decode(self.model.token_bytes(tok), final=False)

    def filter(self, ids: np.ndarray) -> np.ndarray:
        pending = self._dec.getstate()[0]
        if not pending:
            return ids[self.alone[ids]]
        keep = []
        for t in ids[self.cont[ids]].tolist():
            try:
                codecs.getincrementaldecoder("utf-8")().decode(pending + self.model.token_bytes(t), final=False)
                keep.append(t)
            except UnicodeDecodeError:
                pass
        return np.asarray(keep, dtype=ids.dtype)


class GrammarConstraint(Processor):
    """Only tokens the grammar allows stay candidates (module docstring).  One instance per generation."""

    def __init__(self, model: LoadedModel, gbnf: str):
        self.model = model
        self._smpl = _sampler(model, gbnf)
        self._utf8 = Utf8Guard(model)
        self._fed = 0                              # tokens of the history the grammar has accepted
        self._allowed: np.ndarray | None = None    # the last step's allowed token ids

    def _feed(self, history) -> None:
        for tok in history[self._fed:]:
            tok = int(tok)
            if self._allowed is None or not np.isin(tok, self._allowed):
                raise DecodeError(f"token {tok} was drawn although the grammar does not allow it")
            llama_cpp.llama_sampler_accept(self._smpl, tok)
            self._utf8.accept(tok)
            self._fed += 1
            self._allowed = None

    def allowed(self, candidates: np.ndarray) -> np.ndarray:
        """The ids among ``candidates`` the grammar allows next (keeping the bytes valid UTF-8 where it can)."""
        ok = self._grammar_allows(candidates)
        valid = self._utf8.filter(ok)
        return valid if valid.size else ok

    def _grammar_allows(self, candidates: np.ndarray) -> np.ndarray:
        data = np.zeros(candidates.size, _TOKEN_DATA)
        data["id"] = candidates
        arr = llama_cpp.llama_token_data_array(data.ctypes.data_as(llama_cpp.llama_token_data_p), data.size, -1,
                                               False)
        llama_cpp.llama_sampler_apply(self._smpl, ctypes.byref(arr))
        out = np.ctypeslib.as_array(arr.data, shape=(arr.size,))  # (the sampler may move the array)
        return out["id"][np.isfinite(out["logit"])].astype(np.int64)

    def __call__(self, state: StepState) -> StepState:
        self._feed(state.history)
        scores = state.scores
        live = np.flatnonzero(np.isfinite(scores)).astype(np.int32)
        ok = self.allowed(live)
        if ok.size == 0:  # the earlier constraints left nothing the grammar allows: relax them
            ok = self.allowed(np.arange(scores.size, dtype=np.int32))
            if ok.size == 0:
                raise DecodeError("the grammar allows no token here")
            fallback = state.lp_with[ok] / np.float32(state.temperature)
            state.scores = np.full_like(scores, -np.inf)
            state.scores[ok] = fallback
        else:
            keep = state.writable_scores()[ok].copy()
            state.scores[:] = -np.inf
            state.scores[ok] = keep
        state.n_removed = state.n_removed + max(int(live.size - ok.size), 0)
        self._allowed = ok
        return state

    def close(self) -> None:
        if self._smpl is not None:
            llama_cpp.llama_sampler_free(self._smpl)
            self._smpl = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return "GrammarConstraint()"
