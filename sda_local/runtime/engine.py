"""The twin-stream engine: one GGUF model, two streams ("with" / "without" the instruction), SDA sampling.

Stream A (seq 0) sees the conversation with the alignment instruction, stream B (seq 1) without.  Each step
reads both streams' full logits, asks ``core`` for the SDA distribution, samples one token and appends it to
both streams.  Two layouts:

- ``"batched"`` — one llama.cpp context with two sequences; both streams advance in one ``llama_decode``.
- ``"contexts"`` — two contexts over the same weights, one decode each per step.

Both reuse KV caches across calls (a new prompt only evaluates what differs from what a stream already
holds) and evaluate the prompt prefix the two streams share once, copying it to the other stream
(``sda_local.runtime.kvprefix``).
Plain (unsteered) generation runs on the same streams: the base answer on B, the instruction-only answer on A.

One decode loop serves both: it advances the streams it is given (two for SDA, one for plain sampling) with
one ``llama_decode`` per context and step, and turns their logits into the next token's distribution with a
``core.ProcessorChain`` built from the ``SamplingParams`` (``core.build_chain``).

Residual steering (``core.ControlVectors``, read from files by ``sda_local.palrs.cvec``) belongs to a llama.cpp
context: streams "both" steers both streams (either layout); "aligned" steers stream A only, which needs the
``"contexts"`` layout.  When only A is steered, the streams' caches differ from the first token, so no prefix is
copied between them.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import numpy as np

from .. import core
from ..core import ControlVectors, SamplingParams
from ..errors import PromptTooLongError, SdaError
from .answer_logprobs import AnswerRecord, LogprobRecorder, target_logprobs
from .backend import Context, LoadedModel, default_threads
from .drawing import AnswerDraw, Finished, TokenEvent
from .grammar import GrammarConstraint, check_grammar
from .kvprefix import PROMPT_CHUNK, KvStream, chunk_floor, common_prefix
from .layouts import DEFAULT_VARIANT, VARIANTS, Variant
from .logprobs import DecodeExtras
from .models import ModelChoice, resolve_model
from .prompts import ChatPrompter, Message, Placement, check_messages, with_instruction


def layout_for(control: ControlVectors | None) -> Variant:
    """The layout a set of control vectors needs: steering stream A alone needs a context of its own."""
    return "contexts" if control is not None and control.streams == "aligned" else DEFAULT_VARIANT


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
                 n_threads: int | None = None, variant: Variant | None = None, kv_unified: bool = False,
                 n_batch: int = 512, share_prefix: bool = True, control: ControlVectors | None = None):
        self.auto_layout = variant is None   # the layout follows the control vectors (see ``set_control``)
        if variant is None:
            variant = layout_for(control)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.choice = model if isinstance(model, ModelChoice) else resolve_model(model)
        self.model = LoadedModel(self.choice.path, n_gpu_layers=n_gpu_layers)
        default_ctx = self.choice.entry.n_ctx if self.choice.entry else 2048
        n_ctx = int(n_ctx or default_ctx)
        if self.model.n_ctx_train > 0:
            n_ctx = min(n_ctx, self.model.n_ctx_train)
        self.share_prefix = share_prefix
        self.n_threads = int(n_threads or default_threads())
        self._ctx_args = {"n_ctx": n_ctx, "n_batch": n_batch, "kv_unified": kv_unified}
        self._contexts: list[Context] = []
        self._make_contexts(variant)
        m = self.model
        bos_text = m.token_text(m.bos_token) if m.bos_token >= 0 else ""
        eos_text = m.token_text(m.eos_token) if m.eos_token >= 0 else ""
        self.prompter = ChatPrompter(m.chat_template, bos_text, eos_text, m.bos_token, m.add_bos, m.tokenize)
        self._lock = threading.Lock()
        self._owner: int | None = None
        self.control: ControlVectors | None = None  # the active control vectors (see set_control)
        self._cv_split = False                      # True while only stream A is steered
        if control is not None:
            self.set_control(control)

    def _make_contexts(self, variant: Variant) -> None:
        """(Re)build the llama.cpp contexts of ``variant`` over the loaded weights (caches start empty)."""
        for c in self._contexts:
            c.close()
        a = self._ctx_args
        if variant == "batched":
            ctx = Context(self.model, a["n_ctx"], n_seq_max=3, n_threads=self.n_threads, n_batch=a["n_batch"],
                          kv_unified=a["kv_unified"])
            self._contexts = [ctx]
            self._a, self._b, self._c = KvStream(ctx, 0), KvStream(ctx, 1), KvStream(ctx, 2)
        else:
            ca = Context(self.model, a["n_ctx"], n_threads=self.n_threads, n_batch=a["n_batch"])
            cb = Context(self.model, a["n_ctx"], n_threads=self.n_threads, n_batch=a["n_batch"])
            self._contexts = [ca, cb]
            self._a, self._b, self._c = KvStream(ca, 0), KvStream(cb, 0), None
        self.variant = variant
        self.n_ctx = min(c.n_ctx_seq for c in self._contexts)

    # -- info ---------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.choice.name

    def info(self) -> dict:
        m = self.model
        return {"model": self.name, "path": str(self.choice.path), "description": m.description,
                "n_vocab": m.n_vocab, "n_layer": m.n_layer, "n_embd": m.n_embd, "n_ctx": self.n_ctx,
                "variant": self.variant, "n_threads": self.n_threads,
                "chat_template": "fallback" if self.prompter.uses_fallback else "gguf",
                "control": self.control.to_dict() if self.control else None}

    def prompt_tokens(self, messages: Sequence[Message], instruction: str = "", placement: Placement = "user") -> list[int]:
        msgs = check_messages(messages)
        return self.prompter.tokens(with_instruction(msgs, instruction, placement) if instruction else msgs)

    def set_control(self, control: ControlVectors | None) -> None:
        """Steer the residual stream with ``control`` (on stream A only when its streams are "aligned", or on both);
        None turns steering off.  Caches are reset.  A control vector belongs to a whole llama.cpp context, so
        steering A alone needs the ``"contexts"`` layout: an engine whose layout was left to it (``variant=None``)
        switches to it here, over the same weights; one built ``"batched"`` on purpose refuses."""
        buf = rng = None
        if control is not None:
            self.check_control(control)
            buf = control.buffer(self.model.n_layer, self.model.n_embd)
            rng = control.layer_range(self.model.n_layer)
        self._acquire()
        try:
            if control is not None and layout_for(control) == "contexts" and self.variant != "contexts":
                self._make_contexts("contexts")
                self.control = None
            steered = [] if control is None else \
                ([self._a.ctx] if control.streams == "aligned" else list(dict.fromkeys((self._a.ctx, self._b.ctx))))
            for c in self._contexts:
                if c in steered:
                    c.set_control_vector(buf, rng[0], rng[1])
                elif self.control is not None:
                    c.set_control_vector(None)
            self._reset_streams()
            self._cv_split = control is not None and len(steered) == 1 and self._a.ctx is not self._b.ctx
            self.control = None if control is None else replace(control, layers=rng)
        finally:
            self._release()

    def check_control(self, control: ControlVectors) -> None:
        """``SdaError`` unless this engine can apply ``control``: made for this model, and a layout that allows it
        (the one rule: stream A steered alone needs the "contexts" layout, which an engine whose layout was left
        to it switches to)."""
        if layout_for(control) == "contexts" and self.variant != "contexts" and not self.auto_layout:
            raise SdaError("steering only the aligned stream needs the 'contexts' layout (a control vector "
                           "applies to a whole llama.cpp context): use variant='contexts' (--variant contexts) "
                           "or the streams 'both'")
        control.buffer(self.model.n_layer, self.model.n_embd)  # raises when the vectors were made for another model

    def reset_cache(self) -> None:
        """Forget every cached token (the next prompt is evaluated from scratch)."""
        self._reset_streams()

    def _reset_streams(self) -> None:
        for s in (self._a, self._b, self._c):
            if s is not None:
                s.reset()

    @property
    def can_pair(self) -> bool:
        """Whether a turn's base and aligned answers can be decoded together (``generate_pair``): the batched
        layout (its third sequence holds the base answer) with the streams steered alike."""
        return self._c is not None and not self._cv_split

    def close(self) -> None:
        for c in self._contexts:
            c.close()
        self._contexts = []
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

    # -- prompt loading -------------------------------------------------------------------------------------
    def check_tokens(self, toks: list[int], what: str = "prompt") -> None:
        """``PromptTooLongError`` unless a prompt of ``toks`` leaves room for one answer token."""
        self._check_fits(toks, what)

    def _check_fits(self, toks: list[int], what: str) -> None:
        if len(toks) + 1 > self.n_ctx:
            raise PromptTooLongError(len(toks), self.n_ctx, what)

    def check_prompt(self, messages: Sequence[Message], instruction: str = "", placement: Placement = "user",
                     contrast: str = "auto", opposite: str = "") -> None:
        """Raise ``PromptTooLongError`` (with the token counts) unless the prompt of every stream an SDA answer
        uses (and the plain one) leaves room for at least one answer token; ``SdaError`` for bad messages."""
        if instruction.strip():
            ta, tb = self.prompter.pair(messages, instruction, placement, contrast, opposite)
            self._check_fits(ta, "message with the instruction")
            self._check_fits(tb, "message")
        self._check_fits(self.prompt_tokens(messages), "message")

    def _prefill(self, s: KvStream, toks: Sequence[int], want: bool = True) -> np.ndarray | None:
        """Evaluate the rest of prompt ``toks`` after what ``s`` holds (a chunk boundary) in chunks of
        ``PROMPT_CHUNK`` tokens at fixed boundaries from position 0, one decode of ``s``'s rows each: the same
        batches whatever the cache held, so the same numbers.  The last token's logits (a copy) when ``want``."""
        start, ctx, out = len(s.tokens), s.ctx, None
        if start % PROMPT_CHUNK:
            raise SdaError(f"internal: a prompt resumes at token {start}, not at a chunk boundary")
        try:
            for lo in range(start, len(toks), PROMPT_CHUNK):
                hi = min(lo + PROMPT_CHUNK, len(toks))
                rows = [ctx.add(toks[i], i, s.seq, want and i == len(toks) - 1) for i in range(lo, hi)]
                ctx.decode()
                s.tokens.extend(toks[lo:hi])
                if want and hi == len(toks):
                    out = ctx.logits(rows[-1]).copy()
        except Exception:
            s.reset()  # the cache no longer matches what we track: start clean next time
            raise
        s.canonical = len(s.tokens)
        return out

    def _keep(self, s: KvStream, toks: Sequence[int]) -> int:
        """``s`` keeps the part of prompt ``toks`` it can reuse exactly (never the last token); how much."""
        return s.trim(s.canonical_prefix(toks, len(toks) - 1))

    def _adopt(self, s: KvStream, src: KvStream, toks: Sequence[int]) -> int:
        """``s`` takes ``src``'s exactly reusable prefix of ``toks`` when that is longer than its own (never across
        differently steered contexts); how many tokens ``s`` holds."""
        n = src.canonical_prefix(toks, len(toks) - 1)
        if not self._cv_split and n > len(s.tokens):
            s.copy_from(src, n)
        return len(s.tokens)

    def _load_pair(self, ta: list[int], tb: list[int],
                   sources: Sequence[KvStream] = ()) -> tuple[list[np.ndarray], int]:
        """Streams A and B hold ``ta`` and ``tb``: each keeps (or takes from ``sources``) what it can reuse exactly,
        the chunks the two prompts share are evaluated once and copied, the rest evaluated in each stream's own
        chunks.  → (both last-token logits, tokens evaluated)."""
        a, b = self._a, self._b
        self._keep(a, ta)
        self._keep(b, tb)
        for src in sources:
            self._adopt(b, src, tb)
            self._adopt(a, src, ta)
        evaluated = 0
        c = chunk_floor(min(common_prefix(ta, tb), len(ta) - 1, len(tb) - 1))
        if self.share_prefix and not self._cv_split and c and min(len(a.tokens), len(b.tokens)) < c:
            src, dst, tsrc = (b, a, tb) if len(b.tokens) >= len(a.tokens) else (a, b, ta)
            if len(src.tokens) < c:
                evaluated += c - len(src.tokens)
                self._prefill(src, tsrc[:c], want=False)
            if len(dst.tokens) < c:
                dst.copy_from(src, c)
        ra, rb = len(a.tokens), len(b.tokens)
        la, lb = self._prefill(a, ta), self._prefill(b, tb)
        return [la, lb], evaluated + (len(ta) - ra) + (len(tb) - rb)

    def _load_one(self, s: KvStream, other: KvStream, toks: list[int]) -> tuple[list[np.ndarray], int]:
        self._keep(s, toks)
        r = self._adopt(s, other, toks)
        return [self._prefill(s, toks)], len(toks) - r

    def _step(self, streams: tuple[KvStream, ...], tok: int) -> list[np.ndarray]:
        """Append ``tok`` to every stream: one ``llama_decode`` per context.  Views of each stream's new logits."""
        return self._step_groups([(streams, tok)])[0]

    def _step_groups(self, groups: list[tuple[tuple[KvStream, ...], int]]) -> list[list[np.ndarray]]:
        """Append each group's token to the group's streams, every group in the same ``llama_decode`` per
        context (rows in group order).  Per group, views of its streams' new logits."""
        rows: dict[tuple[int, int], int] = {}
        every = [s for g, _ in groups for s in g]
        try:
            for ctx in dict.fromkeys(s.ctx for s in every):
                for gi, (g, tok) in enumerate(groups):
                    for j, s in enumerate(g):
                        if s.ctx is ctx:
                            rows[gi, j] = ctx.add(tok, len(s.tokens), s.seq, True)
                ctx.decode()
        except Exception:
            for s in every:
                s.reset()
            raise
        for g, tok in groups:
            for s in g:
                s.tokens.append(tok)
        return [[s.ctx.logits(rows[gi, j]) for j, s in enumerate(g)] for gi, (g, _) in enumerate(groups)]

    def twin_logits(self, messages: Sequence[Message], instruction: str, forced: Sequence[int] = (), *,
                    placement: Placement = "user", contrast: str = "auto",
                    opposite: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Both streams' next-token logits after the prompts and the ``forced`` tokens (copies, float32)."""
        ta, tb = self.prompter.pair(messages, instruction, placement, contrast, opposite)
        self._check_fits(ta + list(forced), "prompt with the instruction")
        self._check_fits(tb + list(forced), "prompt")
        self._acquire()
        try:
            (la, lb), _ = self._load_pair(ta, tb)
            for t in forced:
                va, vb = self._step((self._a, self._b), int(t))
                la, lb = va.copy(), vb.copy()
            return la, lb
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
        ta, tb = self.prompter.pair(messages, instruction, placement, p.contrast, opposite)
        return self.generate_tokens(ta, tb, instruction, lam, params=p, inspect=inspect, extras=extras)

    def generate_tokens(self, ta: list[int], tb: list[int], instruction: str, lam: float, *,
                        params: SamplingParams | None = None, inspect: int = 0,
                        extras: DecodeExtras | None = None) -> Iterator[TokenEvent | Finished]:
        """SDA on prompts given as tokens: ``ta`` with the instruction (stream A), ``tb`` without (stream B);
        ``instruction`` is only read by the echo block.  As ``generate`` otherwise."""
        p = (params or SamplingParams()).check()
        chain = self._sda_chain(p, lam, instruction, extras)
        self._check_fits(ta, "prompt with the instruction")
        self._check_fits(tb, "prompt")
        streams = (self._a, self._b)
        return self._decode(streams, lambda: self._load_pair(ta, tb), chain, p, [len(ta), len(tb)], inspect, extras)

    def generate_plain(self, messages: Sequence[Message], instruction: str = "", *, placement: Placement = "user",
                       params: SamplingParams | None = None, stream: str = "auto",
                       record: bool = False, extras: DecodeExtras | None = None) -> Iterator[TokenEvent | Finished]:
        """Sampling without SDA (temperature T0, top-p) of the conversation, optionally with the instruction.

        ``stream``: "auto" runs on A with an instruction and on B without; "aligned" (A) or "base" (B) choose.
        With control vectors on A only, ``stream="aligned"`` and no instruction is residual steering alone.
        ``record=True`` also keeps each drawn token's log-probability under the stream (read from the step's own
        arrays: no extra work, the same tokens): ``Finished.record`` holds the prompt, the tokens and their
        log-probs, which the self-score reads instead of teacher-forcing the answer again.  ``extras``: per-token
        log-probs, a grammar (``DecodeExtras``)."""
        if stream not in ("auto", "aligned", "base"):
            raise ValueError(f"stream must be 'auto', 'aligned' or 'base', got {stream!r}")
        toks = self.prompt_tokens(messages, instruction, placement)
        on_a = bool(instruction.strip()) if stream == "auto" else stream == "aligned"
        return self.generate_plain_tokens(toks, instruction, params=params, on_a=on_a, record=record, extras=extras)

    def generate_plain_tokens(self, toks: list[int], instruction: str = "", *, params: SamplingParams | None = None,
                              on_a: bool = False, record: bool = False,
                              extras: DecodeExtras | None = None) -> Iterator[TokenEvent | Finished]:
        """Plain sampling of a prompt given as tokens, on stream A (``on_a``) or B; as ``generate_plain``."""
        p = (params or SamplingParams()).check()
        rec = LogprobRecorder() if record else None
        chain = self._plain_chain(p, instruction, rec, extras)
        self._check_fits(toks, "prompt")
        s, other = (self._a, self._b) if on_a else (self._b, self._a)
        gen = self._decode((s,), lambda: self._load_one(s, other, toks), chain, p, [len(toks)], 0, extras)
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
                logits = self._step(streams, ev.token_id)
            yield ans.finished(n_prompt, evaluated, t1 - t0, t1)
        finally:
            self._release()

    # -- a whole turn in one batch: the base answer and the aligned answer together ----------------------------
    def generate_pair(self, messages: Sequence[Message], instruction: str, lam: float, *,
                      placement: Placement = "user", params: SamplingParams | None = None,
                      base_params: SamplingParams | None = None, inspect: int = 0, opposite: str = "",
                      extras: DecodeExtras | None = None, record_base: bool = False,
                      base_messages: Sequence[Message] | None = None) -> Iterator[tuple[str, object]]:
        """The unsteered base answer and the SDA answer of one conversation, decoded together: per step one
        ``llama_decode`` of three rows (stream A and B for SDA, a third sequence for the base answer) until one
        ends, then of the others.  Yields ``("base" | "aligned", TokenEvent | Finished)``; each answer samples
        from its own distribution with its own random stream, so its tokens are those ``generate_plain``
        (``base_params``, default ``params``) and ``generate`` would draw alone.  Both ``Finished`` carry the
        one joint prompt time; ``record_base`` records the base answer (``generate_plain``'s ``record``);
        ``inspect`` and ``extras`` apply to the aligned answer; ``base_messages``: the base answer's conversation
        when it is not ``messages`` (a system prompt steered toward).  Needs ``can_pair``."""
        if not self.can_pair:
            raise SdaError("decoding the base and aligned answers together needs the batched layout with both "
                           "streams steered alike")
        p = (params or SamplingParams()).check()
        pb = (base_params or p).check()
        sda = AnswerDraw(self.model, self._sda_chain(p, lam, instruction, extras), p, inspect, extras)
        rec = LogprobRecorder() if record_base else None
        base = AnswerDraw(self.model, self._plain_chain(pb, instruction, rec, None), pb)
        ta, tb = self.prompter.pair(messages, instruction, placement, p.contrast, opposite)
        tc = self.prompt_tokens(messages if base_messages is None else base_messages)
        for t, what in ((ta, "prompt with the instruction"), (tb, "prompt"), (tc, "prompt")):
            self._check_fits(t, what)
        gen = self._decode_pair(sda, base, ta, tb, tc)
        return gen if rec is None else _pair_with_record(gen, rec, tc)

    def _load_three(self, ta: list[int], tb: list[int], tc: list[int]) -> tuple[list[np.ndarray], int, int]:
        """Streams A, B and the base stream C hold ``ta``, ``tb``, ``tc`` (each prompt in its own chunks, as
        ``_load_pair`` and ``_load_one`` load them, so each answer's numbers are those it gets alone); C may
        lend A and B the chunks it shares with their prompts.  → (the three last-token logits, tokens evaluated
        for A and B, for C)."""
        (lc,), ev_c = self._load_one(self._c, self._b, tc)
        (la, lb), ev_ab = self._load_pair(ta, tb, sources=(self._c,))
        return [la, lb, lc], ev_ab, ev_c

    def _decode_pair(self, sda: AnswerDraw, base: AnswerDraw, ta: list[int], tb: list[int],
                     tc: list[int]) -> Iterator[tuple[str, object]]:
        """``_decode`` for two answers at once (``generate_pair``): the base row last in every batch."""
        self._acquire()
        try:
            t0 = time.perf_counter()
            (la, lb, lc), ev_ab, ev_c = self._load_three(ta, tb, tc)
            t1 = time.perf_counter()
            live = {"base": (base, (self._c,), [lc], [len(tc)], ev_c),
                    "aligned": (sda, (self._a, self._b), [la, lb], [len(ta), len(tb)], ev_ab)}
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
                    order = sorted(steps, key=lambda x: x[0] == "base")  # A, B first, as in a lone SDA answer
                    new = self._step_groups([(streams, tok) for _, streams, tok in order])
                    for (who, *_), lg in zip(order, new):
                        live[who][2][:] = lg
        finally:
            self._release()

    # -- teacher forcing through stream A (the self-score's shortcut) ------------------------------------------
    def aligned_logprobs(self, messages: Sequence[Message], instruction: str, tokens: Sequence[int], *,
                         placement: Placement = "user") -> np.ndarray:
        """Teacher-force an answer's ``tokens`` through stream A: log p(y_t | prompt with the instruction, y<t)
        for each token (float64), from one batched decode of the prompt's uncached part and the answer.  The
        prompt prefix stream B holds is copied, not evaluated.  Afterwards A holds only that copied prefix: what
        the forced batch computed is dropped, because llama.cpp's numbers depend on how a batch is laid out, and
        the aligned answer must sample the same tokens whether or not this ran."""
        y = [int(t) for t in tokens]
        if not y:
            raise ValueError("no answer tokens to force")
        ta, _ = self.prompter.pair(messages, instruction, placement)
        self._check_fits(ta + y, "prompt with the instruction plus the answer")
        self._acquire()
        try:
            self._keep(self._a, ta)
            r = self._adopt(self._a, self._b, ta)
            lps = self._force(self._a, ta[r:] + y[:-1], y)
            self._a.trim(r)
            return lps
        finally:
            self._release()

    def _force(self, s: KvStream, toks: list[int], targets: list[int]) -> np.ndarray:
        """Decode ``toks`` after what ``s`` holds, with logits at the last ``len(targets)`` of them; the float64
        log-prob of each target from its row (batches of ``n_batch``)."""
        ctx, first = s.ctx, len(toks) - len(targets)
        out: list[np.ndarray] = []
        try:
            pos0, i = len(s.tokens), 0
            while i < len(toks):
                n = min(ctx.batch_free, len(toks) - i)
                idx = [(j, ctx.add(toks[j], pos0 + j, s.seq, j >= first)) for j in range(i, i + n)]
                ctx.decode()
                want = [(j, bi) for j, bi in idx if j >= first]
                for k in range(0, len(want), 32):  # 32 rows at a time: float64 copies of whole rows
                    part = want[k:k + 32]
                    rows = np.stack([ctx.logits(bi) for _, bi in part])
                    out.append(target_logprobs(rows, [targets[j - first] for j, _ in part]))
                i += n
        except Exception:
            s.reset()
            raise
        s.tokens.extend(toks)
        return np.concatenate(out)


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
