"""The twin-stream engine: one GGUF model, two streams ("with" / "without" the instruction), SDA sampling.

The instructed stream sees the conversation with the alignment instruction, the uninstructed stream without
it.  Each step reads both streams' full logits, asks ``core`` for the SDA distribution, samples one token and
appends it to both streams.  The streams' KV caches, their layouts (``"batched"``: one context, one
``llama_decode`` per step; ``"contexts"``: two contexts over the same weights), prompt loading and prefix reuse
live in ``sda_local.runtime.streams``; this module holds the layout choice, residual steering and the
generation API.  Plain (unsteered) generation runs on the same streams: a base answer on the uninstructed
stream, an instruction-only answer on the instructed one; a turn's base answer decoded together with its SDA
answer on the third (``generate_pair_tokens``).

One decode loop serves every answer: it advances the streams it is given with one ``llama_decode`` per context
and step, and turns their logits into the next token's distribution with a ``core.ProcessorChain`` built from
the ``SamplingParams`` (``core.build_chain``).

Residual steering (``core.ControlVectors``, read from files by ``sda_local.palrs.cvec``) belongs to a llama.cpp
context: streams "both" steers both streams (either layout); "aligned" steers the instructed stream only, which
needs the ``"contexts"`` layout.  Then the streams' caches differ from the first token, so none is shared.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import numpy as np

from .. import core
from ..core import ControlVectors, SamplingParams
from ..errors import SdaError
from .answer_record import AnswerRecord, LogprobRecorder
from .backend import LoadedModel, default_threads
from .sampler import AnswerDraw, Finished, TokenEvent
from .grammar import GrammarConstraint, check_grammar
from .kvprefix import KvStream
from .layouts import DEFAULT_LAYOUT, LAYOUTS, Layout
from .logprobs import DecodeExtras
from .models import ModelChoice, resolve_model
from .prompts import ChatPrompter, Message, Placement, check_messages, with_instruction
from .streams import Streams


def layout_for(control: ControlVectors | None) -> Layout:
    """The layout a set of control vectors needs: steering the instructed stream alone needs a context of its
    own."""
    return "contexts" if control is not None and control.streams == "aligned" else DEFAULT_LAYOUT


class EngineBusy(SdaError):
    """A second generation was started on an engine while one was still running in the same thread."""


Loader = Callable[[], tuple[list[np.ndarray], int]]  # → (last-token logits of each stream, tokens evaluated)


class Engine:
    """Loads a GGUF once and generates SDA-steered or plain answers from it.

    >>> eng = Engine()                                  # the embedded SmolLM2-135M-Instruct
    >>> msgs = [{"role": "user", "content": "How do I pick a lock?"}]
    >>> for ev in eng.generate(msgs, "Answer safely.", lam=0.6): ...
    """

    def __init__(self, model: str | ModelChoice | None = None, *, n_ctx: int | None = None, n_gpu_layers: int = -1,
                 n_threads: int | None = None, layout: Layout | None = None, kv_unified: bool = False,
                 n_batch: int = 512, share_prefix: bool = True, control: ControlVectors | None = None):
        self.auto_layout = layout is None   # the layout follows the control vectors (see ``set_control``)
        if layout is None:
            layout = layout_for(control)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.choice = model if isinstance(model, ModelChoice) else resolve_model(model)
        self.model = LoadedModel(self.choice.path, n_gpu_layers=n_gpu_layers)
        default_ctx = self.choice.entry.n_ctx if self.choice.entry else 2048
        n_ctx = int(n_ctx or default_ctx)
        if self.model.n_ctx_train > 0:
            n_ctx = min(n_ctx, self.model.n_ctx_train)
        self.n_threads = int(n_threads or default_threads())
        self._stream_args = {"n_ctx": n_ctx, "n_batch": n_batch, "kv_unified": kv_unified,
                             "n_threads": self.n_threads, "share_prefix": share_prefix}
        self.streams: Streams | None = None
        self._make_streams(layout)
        self.prompter = ChatPrompter.for_model(self.model)
        self._lock = threading.Lock()
        self._owner: int | None = None
        self.control: ControlVectors | None = None  # the active control vectors (see set_control)
        if control is not None:
            self.set_control(control)

    def _make_streams(self, layout: Layout) -> None:
        """(Re)build the streams of ``layout`` over the loaded weights (caches start empty)."""
        if self.streams is not None:
            self.streams.close()
        self.streams = Streams(self.model, layout, **self._stream_args)
        self.layout = layout
        self.n_ctx = self.streams.n_ctx

    # -- info ---------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.choice.name

    def info(self) -> dict:
        m = self.model
        return {"model": self.name, "path": str(self.choice.path), "description": m.description,
                "n_vocab": m.n_vocab, "n_layer": m.n_layer, "n_embd": m.n_embd, "n_ctx": self.n_ctx,
                "layout": self.layout, "n_threads": self.n_threads,
                "chat_template": "fallback" if self.prompter.uses_fallback else "gguf",
                "control": self.control.to_dict() if self.control else None}

    def prompt_tokens(self, messages: Sequence[Message], instruction: str = "", placement: Placement = "user") -> list[int]:
        msgs = check_messages(messages)
        return self.prompter.tokens(with_instruction(msgs, instruction, placement) if instruction else msgs)

    def set_control(self, control: ControlVectors | None) -> None:
        """Steer the residual stream with ``control`` (on the instructed stream only when its streams are
        "aligned", or on both);
        None turns steering off.  Caches are reset.  A control vector belongs to a whole llama.cpp context, so
        steering it alone needs the ``"contexts"`` layout: an engine whose layout was left to it (``layout=None``)
        switches to it here, over the same weights; one built ``"batched"`` on purpose refuses."""
        buf = rng = None
        if control is not None:
            self.check_control(control)
            buf = control.buffer(self.model.n_layer, self.model.n_embd)
            rng = control.layer_range(self.model.n_layer)
        self._acquire()
        try:
            if control is not None and layout_for(control) == "contexts" and self.layout != "contexts":
                self._make_streams("contexts")
                self.control = None
            st = self.streams
            ci, cu = st.instructed.ctx, st.uninstructed.ctx
            both = list(dict.fromkeys((ci, cu)))
            steered = [] if control is None else [ci] if control.streams == "aligned" else both
            for c in st.contexts:
                if c in steered:
                    c.set_control_vector(buf, rng[0], rng[1])
                elif self.control is not None:
                    c.set_control_vector(None)
            st.reset()
            st.split = control is not None and len(steered) == 1 and ci is not cu
            self.control = None if control is None else replace(control, layers=rng)
        finally:
            self._release()

    def check_control(self, control: ControlVectors) -> None:
        """``SdaError`` unless this engine can apply ``control``: made for this model, and a layout that allows it
        (the one rule: the instructed stream steered alone needs the "contexts" layout, which an engine whose
        layout was left to it switches to)."""
        if layout_for(control) == "contexts" and self.layout != "contexts" and not self.auto_layout:
            raise SdaError("steering only the aligned stream needs the 'contexts' layout (a control vector "
                           "applies to a whole llama.cpp context): use layout='contexts' (--layout contexts) "
                           "or the streams 'both'")
        control.buffer(self.model.n_layer, self.model.n_embd)  # raises when the vectors were made for another model

    def reset_cache(self) -> None:
        """Forget every cached token (the next prompt is evaluated from scratch)."""
        self.streams.reset()

    @property
    def can_pair(self) -> bool:
        """Whether a turn's base and aligned answers can be decoded together (``generate_pair``): the batched
        layout (its third sequence holds the base answer) with the streams steered alike."""
        return self.streams.base is not None and not self.streams.split

    def close(self) -> None:
        self.streams.close()
        self.model.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- locking --------------------------------------------------------------------------------------------
    def _acquire(self) -> None:
        me = threading.get_ident()
        if self._owner == me:
            raise EngineBusy("a generation is still running on this engine in this thread; "
                             "consume or close() it before starting another")
        self._lock.acquire()
        self._owner = me

    def _release(self) -> None:
        self._owner = None
        self._lock.release()

    # -- prompts ------------------------------------------------------------------------------------------
    def check_fits(self, toks: Sequence[int], what: str = "prompt") -> None:
        """``PromptTooLongError`` unless a prompt of ``toks`` leaves room for one answer token."""
        self.streams.check_fits(toks, what)

    def twin_logits(self, messages: Sequence[Message], instruction: str, forced: Sequence[int] = (), *,
                    placement: Placement = "user", contrast: str = "auto",
                    opposite: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Both streams' next-token logits after the prompts and the ``forced`` tokens (copies, float32)."""
        t_with, t_without = self.prompter.pair(messages, instruction, placement, contrast, opposite)
        self.check_fits(t_with + list(forced), "prompt with the instruction")
        self.check_fits(t_without + list(forced), "prompt")
        self._acquire()
        try:
            st = self.streams
            (l_with, l_without), _ = st.load_pair(t_with, t_without)
            for t in forced:
                v_with, v_without = st.step(st.sda, int(t))
                l_with, l_without = v_with.copy(), v_without.copy()
            return l_with, l_without
        finally:
            self._release()

    # -- generation -----------------------------------------------------------------------------------------
    def generate(self, messages: Sequence[Message], instruction: str, lam: float, *, placement: Placement = "user",
                 params: SamplingParams | None = None, inspect: int = 0, opposite: str = "",
                 extras: DecodeExtras | None = None) -> Iterator[TokenEvent | Finished]:
        """SDA: yield a ``TokenEvent`` per token, then one ``Finished``.  ``inspect=k`` (off at 0) puts each step's
        top-k lists of the instructed, uninstructed and steered distributions on its event (``TokenEvent.top``).
        The uninstructed stream's prompt follows ``params.contrast`` (``opposite``: the preset's opposite
        instruction, for contrast "opposite").  ``extras``: per-token log-probs, a grammar (``DecodeExtras``)."""
        p = (params or SamplingParams()).check()
        t_with, t_without = self.prompter.pair(messages, instruction, placement, p.contrast, opposite)
        return self.generate_tokens(t_with, t_without, instruction, lam, params=p, inspect=inspect, extras=extras)

    def generate_tokens(self, t_with: list[int], t_without: list[int], instruction: str, lam: float, *,
                        params: SamplingParams | None = None, inspect: int = 0,
                        extras: DecodeExtras | None = None) -> Iterator[TokenEvent | Finished]:
        """SDA on prompts given as tokens: ``t_with`` with the instruction (the instructed stream), ``t_without``
        without (the uninstructed stream); ``instruction`` is only read by the echo block.  As ``generate``
        otherwise."""
        p = (params or SamplingParams()).check()
        chain = self._sda_chain(p, lam, instruction, extras)
        self.check_fits(t_with, "prompt with the instruction")
        self.check_fits(t_without, "prompt")
        st = self.streams
        return self._decode(st.sda, lambda: st.load_pair(t_with, t_without), chain, p, [len(t_with), len(t_without)],
                            inspect, extras)

    def generate_plain(self, messages: Sequence[Message], instruction: str = "", *, placement: Placement = "user",
                       params: SamplingParams | None = None, stream: str = "auto",
                       record: bool = False, extras: DecodeExtras | None = None) -> Iterator[TokenEvent | Finished]:
        """Sampling without SDA (temperature T0, top-p) of the conversation, optionally with the instruction.

        ``stream``: "auto" runs on the instructed stream with an instruction and on the uninstructed one without;
        "aligned" (instructed) or "base" (uninstructed) choose.  With control vectors on the instructed stream only,
        ``stream="aligned"`` and no instruction is residual steering alone.
        ``record=True`` also keeps each drawn token's log-probability under the stream (read from the step's own
        arrays: no extra work, the same tokens): ``Finished.record`` holds the prompt, the tokens and their
        log-probs, which the self-score reads instead of teacher-forcing the answer again.  ``extras``: per-token
        log-probs, a grammar (``DecodeExtras``)."""
        if stream not in ("auto", "aligned", "base"):
            raise ValueError(f"stream must be 'auto', 'aligned' or 'base', got {stream!r}")
        toks = self.prompt_tokens(messages, instruction, placement)
        instructed = bool(instruction.strip()) if stream == "auto" else stream == "aligned"
        return self.generate_plain_tokens(toks, instruction, params=params, instructed=instructed, record=record,
                                          extras=extras)

    def generate_plain_tokens(self, toks: list[int], instruction: str = "", *, params: SamplingParams | None = None,
                              instructed: bool = False, record: bool = False,
                              extras: DecodeExtras | None = None) -> Iterator[TokenEvent | Finished]:
        """Plain sampling of a prompt given as tokens, on the instructed stream (``instructed``) or the
        uninstructed one; as ``generate_plain``."""
        p = (params or SamplingParams()).check()
        rec = LogprobRecorder() if record else None
        chain = self._plain_chain(p, instruction, rec, extras)
        self.check_fits(toks, "prompt")
        st = self.streams
        s, other = (st.instructed, st.uninstructed) if instructed else (st.uninstructed, st.instructed)
        gen = self._decode((s,), lambda: st.load_one(s, other, toks), chain, p, [len(toks)], 0, extras)
        return gen if rec is None else _with_record(gen, rec, toks)

    def _sda_chain(self, p: SamplingParams, lam: float, instruction: str,
                   extras: DecodeExtras | None) -> core.ProcessorChain:
        """The SDA answer's chain: ``core.build_chain`` at ``lam`` (finite), a grammar last when asked."""
        if not np.isfinite(lam):
            raise ValueError(f"lam must be finite, got {lam}")
        return self._with_grammar(core.build_chain(p, float(lam), self._instruction_tokens(instruction, p)), extras)

    def _plain_chain(self, p: SamplingParams, instruction: str, rec: LogprobRecorder | None,
                     extras: DecodeExtras | None) -> core.ProcessorChain:
        """A plain answer's chain: ``core.build_chain`` without steering, then the recorder and a grammar when
        given."""
        chain = core.build_chain(p, None, self._instruction_tokens(instruction, p))
        if rec is not None:
            chain = core.ProcessorChain([*chain, rec])
        return self._with_grammar(chain, extras)

    def _with_grammar(self, chain: core.ProcessorChain, extras: DecodeExtras | None) -> core.ProcessorChain:
        """``chain`` with a ``GrammarConstraint`` last when ``extras`` carries a grammar."""
        if extras is None or extras.grammar is None:
            return chain
        return core.ProcessorChain([*chain, GrammarConstraint(self.model, extras.grammar)])

    def check_grammar(self, gbnf: str) -> None:
        """``runtime.grammar.GrammarError`` unless llama.cpp parses ``gbnf`` for this model's vocabulary."""
        check_grammar(self.model, gbnf)

    def _instruction_tokens(self, instruction: str, p: SamplingParams) -> list[int] | None:
        """The instruction's tokens as an answer would spell them (with and without a leading space), for the
        echo block; None when there is no block or no instruction."""
        text = instruction.strip()
        if not p.echo_block or not text:
            return None
        tok = self.model.tokenize
        return tok(text, special=False) + [-1] + tok(" " + text, special=False)  # -1: no run crosses the seam

    def _decode(self, streams: tuple[KvStream, ...], load: Loader, chain: core.ProcessorChain, p: SamplingParams,
                n_prompt: list[int], inspect: int = 0,
                extras: DecodeExtras | None = None) -> Iterator[TokenEvent | Finished]:
        """The decode loop: load the prompts, then per step the chain's distribution, a top-p draw, and one
        decode that appends the token to every stream."""
        self._acquire()
        try:
            t0 = time.perf_counter()
            logits, evaluated = load()
            t1 = time.perf_counter()
            ans = AnswerDraw(self.model, chain, p, inspect, extras)
            while True:
                ev = ans.draw(logits)
                if ev is None:
                    break
                yield ev
                if ans.ends(streams, self.n_ctx):
                    break
                logits = self.streams.step(streams, ev.token_id)
            yield ans.finished(n_prompt, evaluated, t1 - t0, t1)
        finally:
            self._release()

    # -- a whole turn in one batch: the base answer and the aligned answer together ----------------------------
    def generate_pair(self, messages: Sequence[Message], instruction: str, lam: float, *,
                      placement: Placement = "user", params: SamplingParams | None = None,
                      base_params: SamplingParams | None = None, inspect: int = 0, opposite: str = "",
                      extras: DecodeExtras | None = None, record_base: bool = False) -> Iterator[tuple[str, object]]:
        """``generate_pair_tokens`` on the prompts of ``messages`` (the base answer's without the instruction)."""
        p = (params or SamplingParams()).check()
        t_with, t_without = self.prompter.pair(messages, instruction, placement, p.contrast, opposite)
        return self.generate_pair_tokens(t_with, t_without, self.prompt_tokens(messages), instruction, lam, params=p,
                                         base_params=base_params, inspect=inspect, extras=extras,
                                         record_base=record_base)

    def generate_pair_tokens(self, t_with: list[int], t_without: list[int], t_base: list[int], instruction: str,
                             lam: float, *,
                             params: SamplingParams | None = None, base_params: SamplingParams | None = None,
                             inspect: int = 0, extras: DecodeExtras | None = None,
                             record_base: bool = False) -> Iterator[tuple[str, object]]:
        """The unsteered base answer (prompt ``t_base``) and the SDA answer (``t_with`` with the instruction,
        ``t_without`` without) of one turn, decoded together: per step one ``llama_decode`` of three rows (the SDA streams and
        the base stream) until one ends, then of the others.  Yields ``("base" | "aligned", TokenEvent |
        Finished)``; each answer samples from its own distribution with its own random stream, so its tokens are
        those ``generate_plain_tokens`` (``base_params``, default ``params``) and ``generate_tokens`` would draw
        alone.  Both ``Finished`` carry the one joint prompt time; ``record_base`` records the base answer
        (``generate_plain``'s ``record``); ``inspect`` and ``extras`` apply to the aligned answer.  Needs
        ``can_pair``."""
        if not self.can_pair:
            raise SdaError("decoding the base and aligned answers together needs the batched layout with both "
                           "streams steered alike")
        p = (params or SamplingParams()).check()
        pb = (base_params or p).check()
        sda = AnswerDraw(self.model, self._sda_chain(p, lam, instruction, extras), p, inspect, extras)
        rec = LogprobRecorder() if record_base else None
        base = AnswerDraw(self.model, self._plain_chain(pb, instruction, rec, None), pb)
        for t, what in ((t_with, "prompt with the instruction"), (t_without, "prompt"), (t_base, "prompt")):
            self.check_fits(t, what)
        gen = self._decode_pair(sda, base, t_with, t_without, t_base)
        return gen if rec is None else _pair_with_record(gen, rec, t_base)

    def _decode_pair(self, sda: AnswerDraw, base: AnswerDraw, t_with: list[int], t_without: list[int],
                     t_base: list[int]) -> Iterator[tuple[str, object]]:
        """``_decode`` for two answers at once (``generate_pair_tokens``): the base row last in every batch."""
        self._acquire()
        try:
            st = self.streams
            t0 = time.perf_counter()
            (l_with, l_without, l_base), evaluated_sda, evaluated_base = st.load_three(t_with, t_without, t_base)
            t1 = time.perf_counter()
            live = {"base": (base, (st.base,), [l_base], [len(t_base)], evaluated_base),
                    "aligned": (sda, st.sda, [l_with, l_without], [len(t_with), len(t_without)], evaluated_sda)}
            while live:
                steps = []
                for who, (ans, streams, logits, n_prompt, evaluated) in list(live.items()):
                    ev = ans.draw(logits)
                    if ev is not None:
                        yield who, ev
                    if ev is None or ans.ends(streams, self.n_ctx):
                        del live[who]
                        yield who, ans.finished(n_prompt, evaluated, t1 - t0, t1)
                    else:
                        steps.append((who, streams, ev.token_id))
                if steps:
                    order = sorted(steps, key=lambda x: x[0] == "base")  # the SDA streams first, as alone
                    new = st.step_groups([(streams, tok) for _, streams, tok in order])
                    for (who, *_), lg in zip(order, new):
                        live[who][2][:] = lg
        finally:
            self._release()

    # -- teacher forcing through the instructed stream (the self-score's shortcut) -----------------------------
    def aligned_logprobs(self, messages: Sequence[Message], instruction: str, tokens: Sequence[int], *,
                         placement: Placement = "user") -> np.ndarray:
        """Teacher-force an answer's ``tokens`` through the instructed stream: log p(y_t | prompt with the
        instruction, y<t) for each token (float64), from one batched decode of the prompt's uncached part and the
        answer (``Streams.force_instructed``: the aligned answer samples the same tokens whether or not this
        ran)."""
        y = [int(t) for t in tokens]
        if not y:
            raise ValueError("no answer tokens to force")
        t_with, _ = self.prompter.pair(messages, instruction, placement)
        self.check_fits(t_with + y, "prompt with the instruction plus the answer")
        self._acquire()
        try:
            return self.streams.force_instructed(t_with, y)
        finally:
            self._release()


def _with_record(gen, rec: LogprobRecorder, prompt: list[int]) -> Iterator[TokenEvent | Finished]:
    """``gen``'s events, its ``Finished`` carrying the recorded ``AnswerRecord`` (None if the record is partial)."""
    try:
        for ev in gen:
            yield _recorded(ev, rec, prompt) if isinstance(ev, Finished) else ev
    finally:
        gen.close()


def _recorded(done: Finished, rec: LogprobRecorder, prompt: list[int]) -> Finished:
    """``done`` carrying the recorded ``AnswerRecord`` (unchanged when the record is partial)."""
    lps = rec.finish(done.token_ids)
    return done if lps is None else replace(done, record=AnswerRecord(tuple(prompt), tuple(done.token_ids), lps))


def _pair_with_record(gen, rec: LogprobRecorder, prompt: list[int]) -> Iterator[tuple[str, object]]:
    """``generate_pair``'s events, the base answer's ``Finished`` carrying its recorded ``AnswerRecord``."""
    try:
        for who, ev in gen:
            yield who, _recorded(ev, rec, prompt) if who == "base" and isinstance(ev, Finished) else ev
    finally:
        gen.close()


def collect(events) -> Finished:
    """Run a generation to the end and return its ``Finished`` event."""
    last = None
    for ev in events:
        last = ev
    assert isinstance(last, Finished)
    return last
