"""The twin-stream engine: one GGUF model, two streams ("with" / "without" the instruction), SDA sampling.

Stream A (seq 0) sees the conversation with the alignment instruction, stream B (seq 1) without.  Each step
reads both streams' full logits, asks ``core`` for the SDA distribution, samples one token and appends it to
both streams.  Two layouts:

- ``"batched"`` — one llama.cpp context with two sequences; both streams advance in one ``llama_decode``.
- ``"contexts"`` — two contexts over the same weights, one decode each per step.

Both reuse KV caches across calls (a new prompt only evaluates what differs from what a stream already
holds) and evaluate the prompt prefix the two streams share once, copying it to the other stream.
Plain (unsteered) generation runs on the same streams: the base answer on B, the instruction-only answer on A.

Residual steering (PaLRS control vectors, ``sda_local.palrs``) belongs to a llama.cpp context: ``cv_streams="both"``
steers both streams (either layout); ``"aligned"`` steers stream A only, which needs the ``"contexts"`` layout.
When only A is steered, the streams' caches differ from the first token, so no prefix is copied between them.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator, Literal, Sequence

import numpy as np

from . import core
from .core import SamplingParams
from .backend import Context, LoadedModel, default_threads
from .errors import DecodeError, PromptTooLongError, SdaError
from .models import ModelChoice, resolve_model
from .prompts import ChatPrompter, Message, Placement, check_messages, with_instruction
from .textstream import Utf8Stream

Variant = Literal["batched", "contexts"]
VARIANTS = ("batched", "contexts")
DEFAULT_VARIANT: Variant = "batched"  # see README "Benchmark": the faster layout on CPU here
MIN_SHARED_PREFIX = 4  # shorter shared prefixes are cheaper to evaluate twice than to copy


class EngineBusy(SdaError):
    """A second generation was started on an engine while one was still running in the same thread."""


@dataclass
class TokenEvent:
    """One generated token.  ``text`` is UTF-8 safe (may be "" while a character is incomplete)."""

    index: int
    token_id: int
    text: str
    prob: float          # probability of the chosen token under the distribution it was sampled from
    temperature: float
    js: float | None     # None for plain generation (one stream)
    kind: str = "token"


@dataclass
class Finished:
    """End of one generation, with its statistics."""

    text: str
    token_ids: list[int]
    finish_reason: str        # "stop" (end-of-generation token), "length" (max_tokens) or "context" (full)
    n_prompt_tokens: list[int]
    n_evaluated_prompt_tokens: int   # after KV reuse and prefix sharing
    prompt_seconds: float
    decode_seconds: float
    tail: str = ""            # text flushed at the end (an incomplete UTF-8 sequence), already in ``text``
    core_seconds: float = 0.0  # time spent in core (distribution + sampling), part of decode_seconds
    kind: str = "finished"

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / self.decode_seconds if self.decode_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tokens_per_second"] = self.tokens_per_second
        return d


@dataclass
class _Stream:
    """One sequence in one context, and the tokens its KV cache holds."""

    ctx: Context
    seq: int
    tokens: list[int] = field(default_factory=list)

    def trim(self, n: int) -> None:
        if n < len(self.tokens):
            if not self.ctx.seq_rm(self.seq, n, -1):
                self.ctx.seq_rm(self.seq, 0, -1)  # memory that cannot cut (recurrent): start over
                n = 0
            del self.tokens[n:]

    def reset(self) -> None:
        self.ctx.seq_rm(self.seq, 0, -1)
        self.tokens.clear()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    x = np.asarray(a[:n]) != np.asarray(b[:n])
    idx = np.flatnonzero(x)
    return int(idx[0]) if idx.size else n


def _copy_stream(src: _Stream, dst: _Stream, n: int) -> None:
    """Make ``dst`` hold the first ``n`` tokens of ``src``."""
    if src.ctx is dst.ctx:
        src.ctx.seq_cp_full(src.seq, dst.seq)
    else:
        dst.ctx.seq_rm(dst.seq, 0, -1)
        dst.ctx.set_seq_state(dst.seq, src.ctx.seq_state(src.seq))
    dst.tokens = list(src.tokens)
    dst.trim(n)


class Engine:
    """Loads a GGUF once and generates SDA-steered or plain answers from it.

    >>> eng = Engine()                                  # the embedded SmolLM2-135M-Instruct
    >>> msgs = [{"role": "user", "content": "How do I pick a lock?"}]
    >>> for ev in eng.generate(msgs, "Answer safely.", lam=0.6): ...
    """

    def __init__(self, model: str | ModelChoice | None = None, *, n_ctx: int | None = None, n_gpu_layers: int = -1,
                 n_threads: int | None = None, variant: Variant | None = None, kv_unified: bool = False,
                 n_batch: int = 512, share_prefix: bool = True, control_vectors: Sequence | None = None,
                 cv_layers: tuple[int, int] | str | None = None, cv_streams: str = "aligned", cv_scale: float = 1.0):
        if variant is None:  # steering stream A alone needs a context of its own
            variant = "contexts" if control_vectors and cv_streams == "aligned" else DEFAULT_VARIANT
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.choice = model if isinstance(model, ModelChoice) else resolve_model(model)
        self.model = LoadedModel(self.choice.path, n_gpu_layers=n_gpu_layers)
        default_ctx = self.choice.entry.n_ctx if self.choice.entry else 2048
        n_ctx = int(n_ctx or default_ctx)
        if self.model.n_ctx_train > 0:
            n_ctx = min(n_ctx, self.model.n_ctx_train)
        self.variant = variant
        self.share_prefix = share_prefix
        self.n_threads = int(n_threads or default_threads())
        if variant == "batched":
            ctx = Context(self.model, n_ctx, n_seq_max=2, n_threads=self.n_threads, n_batch=n_batch,
                          kv_unified=kv_unified)
            self._contexts = [ctx]
            self._a, self._b = _Stream(ctx, 0), _Stream(ctx, 1)
        else:
            ca = Context(self.model, n_ctx, n_threads=self.n_threads, n_batch=n_batch)
            cb = Context(self.model, n_ctx, n_threads=self.n_threads, n_batch=n_batch)
            self._contexts = [ca, cb]
            self._a, self._b = _Stream(ca, 0), _Stream(cb, 0)
        self.n_ctx = min(c.n_ctx_seq for c in self._contexts)
        m = self.model
        bos_text = m.token_text(m.bos_token) if m.bos_token >= 0 else ""
        eos_text = m.token_text(m.eos_token) if m.eos_token >= 0 else ""
        self.prompter = ChatPrompter(m.chat_template, bos_text, eos_text, m.bos_token, m.add_bos, m.tokenize)
        self._lock = threading.Lock()
        self._owner: int | None = None
        self.control: dict | None = None  # the active control vectors (see set_control_vectors)
        self._cv_split = False            # True while only stream A is steered
        if control_vectors:
            self.set_control_vectors(control_vectors, layers=cv_layers, streams=cv_streams, scale=cv_scale)

    # -- info ---------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.choice.name

    def info(self) -> dict:
        m = self.model
        return {"model": self.name, "path": str(self.choice.path), "description": m.description,
                "n_vocab": m.n_vocab, "n_layer": m.n_layer, "n_embd": m.n_embd, "n_ctx": self.n_ctx,
                "variant": self.variant, "n_threads": self.n_threads,
                "chat_template": "fallback" if self.prompter.uses_fallback else "gguf", "control": self.control}

    def prompt_tokens(self, messages: Sequence[Message], instruction: str = "", placement: Placement = "user") -> list[int]:
        msgs = check_messages(messages)
        return self.prompter.tokens(with_instruction(msgs, instruction, placement) if instruction else msgs)

    def set_control_vectors(self, vectors: Sequence | None, *, layers: tuple[int, int] | str | None = None,
                            streams: str = "aligned", scale: float = 1.0) -> None:
        """Steer the residual stream with control vectors: ``[(path, scale), …]`` or ``"PATH[:SCALE]"`` strings
        (summed, times ``scale``), over ``layers`` (A, B) inclusive (default: all), on stream A (``"aligned"``,
        needs the ``"contexts"`` layout) or on ``"both"``.  None or [] turns steering off.  Caches are reset."""
        from .palrs.cvec import load_control_vectors, parse_layer_range

        if streams not in ("aligned", "both"):
            raise ValueError(f"cv_streams must be 'aligned' or 'both', got {streams!r}")
        data = None
        if vectors:
            if streams == "aligned" and self.variant != "contexts":
                raise SdaError("steering only the aligned stream needs the 'contexts' layout (a control vector "
                               "applies to a whole llama.cpp context): use variant='contexts' (--variant contexts) "
                               "or cv_streams='both'")
            rng = parse_layer_range(layers) or (1, self.model.n_layer)
            data = load_control_vectors(list(vectors), self.model.n_layer, self.model.n_embd, scale)
        self._acquire()
        try:
            steered = [] if data is None else \
                ([self._a.ctx] if streams == "aligned" else list(dict.fromkeys((self._a.ctx, self._b.ctx))))
            for c in self._contexts:
                if c in steered:
                    c.set_control_vector(data, rng[0], rng[1])
                elif self.control is not None:
                    c.set_control_vector(None)
            self._a.reset()
            self._b.reset()
            self._cv_split = data is not None and len(steered) == 1 and self._a.ctx is not self._b.ctx
            self.control = None if data is None else {
                "vectors": [str(v) if isinstance(v, str) else f"{v[0]}:{float(v[1]):g}" for v in vectors],
                "scale": float(scale), "layers": list(rng), "streams": streams}
        finally:
            self._release()

    def reset_cache(self) -> None:
        """Forget every cached token (the next prompt is evaluated from scratch)."""
        self._a.reset()
        self._b.reset()

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
    def _check_fits(self, toks: list[int], what: str) -> None:
        if len(toks) + 1 > self.n_ctx:
            raise PromptTooLongError(len(toks), self.n_ctx, what)

    def _evaluate(self, jobs: list[tuple[_Stream, list[int], bool]]) -> list[np.ndarray | None]:
        """Append tokens to streams; one decode per context per batch-full. Returns last-token logits copies."""
        out: list[np.ndarray | None] = [None] * len(jobs)
        try:
            for ctx in dict.fromkeys(s.ctx for s, _, _ in jobs):
                pending: list[tuple[int, int]] = []
                for j, (s, toks, want) in enumerate(jobs):
                    if s.ctx is not ctx:
                        continue
                    pos0 = len(s.tokens)
                    for i, t in enumerate(toks):
                        if ctx.batch_free == 0:
                            ctx.decode()
                            for jj, bi in pending:
                                out[jj] = ctx.logits(bi).copy()
                            pending = []
                        last = want and i == len(toks) - 1
                        bi = ctx.add(t, pos0 + i, s.seq, last)
                        if last:
                            pending.append((j, bi))
                    s.tokens.extend(toks)
                ctx.decode()
                for jj, bi in pending:
                    out[jj] = ctx.logits(bi).copy()
        except Exception:
            for s, _, _ in jobs:  # the caches no longer match what we track: start clean next time
                s.reset()
            raise
        return out

    def _load_pair(self, ta: list[int], tb: list[int]) -> tuple[np.ndarray, np.ndarray, int]:
        a, b = self._a, self._b
        c = min(_common_prefix(ta, tb), len(ta) - 1, len(tb) - 1)
        ra = min(_common_prefix(a.tokens, ta), len(ta) - 1)
        rb = min(_common_prefix(b.tokens, tb), len(tb) - 1)
        a.trim(ra)
        b.trim(rb)
        evaluated = 0
        if self.share_prefix and not self._cv_split and c >= MIN_SHARED_PREFIX and (ra < c or rb < c):
            if ra < c and rb < c:  # neither holds the shared prefix: evaluate it once, in B
                self._evaluate([(b, tb[rb:c], False)])
                evaluated += c - rb
                rb = c
            if ra < c:
                _copy_stream(b, a, c)
                ra = c
            else:
                _copy_stream(a, b, c)
                rb = c
        la, lb = self._evaluate([(a, ta[ra:], True), (b, tb[rb:], True)])
        evaluated += (len(ta) - ra) + (len(tb) - rb)
        return la, lb, evaluated

    def _load_one(self, s: _Stream, other: _Stream, toks: list[int]) -> tuple[np.ndarray, int]:
        r = min(_common_prefix(s.tokens, toks), len(toks) - 1)
        ro = min(_common_prefix(other.tokens, toks), len(toks) - 1)
        if not self._cv_split and ro >= r + MIN_SHARED_PREFIX:
            _copy_stream(other, s, ro)
            r = ro
        else:
            s.trim(r)
        (logits,) = self._evaluate([(s, toks[r:], True)])
        return logits, len(toks) - r

    def _step_pair(self, tok: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._a, self._b
        try:
            if a.ctx is b.ctx:
                ia = a.ctx.add(tok, len(a.tokens), a.seq, True)
                ib = b.ctx.add(tok, len(b.tokens), b.seq, True)
                a.ctx.decode()
            else:
                ia = a.ctx.add(tok, len(a.tokens), a.seq, True)
                a.ctx.decode()
                ib = b.ctx.add(tok, len(b.tokens), b.seq, True)
                b.ctx.decode()
        except Exception:
            a.reset()
            b.reset()
            raise
        a.tokens.append(tok)
        b.tokens.append(tok)
        return a.ctx.logits(ia), b.ctx.logits(ib)

    def _step_one(self, s: _Stream, tok: int) -> np.ndarray:
        try:
            i = s.ctx.add(tok, len(s.tokens), s.seq, True)
            s.ctx.decode()
        except Exception:
            s.reset()
            raise
        s.tokens.append(tok)
        return s.ctx.logits(i)

    def twin_logits(self, messages: Sequence[Message], instruction: str, forced: Sequence[int] = (), *,
                    placement: Placement = "user") -> tuple[np.ndarray, np.ndarray]:
        """Both streams' next-token logits after the prompts and the ``forced`` tokens (copies, float32)."""
        ta, tb = self.prompter.pair(messages, instruction, placement)
        self._check_fits(ta + list(forced), "prompt with the instruction")
        self._check_fits(tb + list(forced), "prompt")
        self._acquire()
        try:
            la, lb, _ = self._load_pair(ta, tb)
            for t in forced:
                va, vb = self._step_pair(int(t))
                la, lb = va.copy(), vb.copy()
            return la, lb
        finally:
            self._release()

    # -- generation -----------------------------------------------------------------------------------------
    def generate(self, messages: Sequence[Message], instruction: str, lam: float, *, placement: Placement = "user",
                 params: SamplingParams | None = None) -> Iterator[TokenEvent | Finished]:
        """SDA: yield a ``TokenEvent`` per token, then one ``Finished``."""
        p = (params or SamplingParams()).check()
        if not np.isfinite(lam):
            raise ValueError(f"lam must be finite, got {lam}")
        ta, tb = self.prompter.pair(messages, instruction, placement)
        self._check_fits(ta, "prompt with the instruction")
        self._check_fits(tb, "prompt")
        return self._run_pair(ta, tb, float(lam), p)

    def generate_plain(self, messages: Sequence[Message], instruction: str = "", *, placement: Placement = "user",
                       params: SamplingParams | None = None, stream: str = "auto") -> Iterator[TokenEvent | Finished]:
        """Sampling without SDA (temperature T0, top-p) of the conversation, optionally with the instruction.

        ``stream``: "auto" runs on A with an instruction and on B without; "aligned" (A) or "base" (B) choose.
        With control vectors on A only, ``stream="aligned"`` and no instruction is residual steering alone."""
        if stream not in ("auto", "aligned", "base"):
            raise ValueError(f"stream must be 'auto', 'aligned' or 'base', got {stream!r}")
        p = (params or SamplingParams()).check()
        toks = self.prompt_tokens(messages, instruction, placement)
        self._check_fits(toks, "prompt")
        on_a = bool(instruction.strip()) if stream == "auto" else stream == "aligned"
        return self._run_one(toks, on_a, p)

    def _run_pair(self, ta, tb, lam, p: SamplingParams):
        self._acquire()
        try:
            t0 = time.perf_counter()
            la, lb, evaluated = self._load_pair(ta, tb)
            t1 = time.perf_counter()
            rng = np.random.default_rng(p.seed)
            utf, out, reason = Utf8Stream(), [], "length"
            core_s = 0.0
            for i in range(int(p.max_tokens)):
                c0 = time.perf_counter()
                try:
                    probs, info = core.sda_distribution(la, lb, lam, p.k, p.t0, p.temperature_mode)
                except ValueError as exc:
                    raise DecodeError(f"step {i}: {exc} — the model produced invalid logits") from None
                tok = core.sample_top_p(probs, p.top_p, rng)
                core_s += time.perf_counter() - c0
                if self.model.is_eog(tok):
                    reason = "stop"
                    break
                out.append(tok)
                yield TokenEvent(i, tok, utf.feed(self.model.token_bytes(tok)), float(probs[tok]),
                                 info.temperature, info.js)
                if len(out) >= p.max_tokens:
                    break
                if len(self._a.tokens) >= self.n_ctx or len(self._b.tokens) >= self.n_ctx:
                    reason = "context"
                    break
                la, lb = self._step_pair(tok)
            tail = utf.flush()
            yield Finished(utf.text, out, reason, [len(ta), len(tb)], evaluated, t1 - t0,
                           time.perf_counter() - t1, tail, core_s)
        finally:
            self._release()

    def _run_one(self, toks, on_a: bool, p: SamplingParams):
        self._acquire()
        try:
            s, other = (self._a, self._b) if on_a else (self._b, self._a)
            t0 = time.perf_counter()
            logits, evaluated = self._load_one(s, other, toks)
            t1 = time.perf_counter()
            rng = np.random.default_rng(p.seed)
            utf, out, reason = Utf8Stream(), [], "length"
            core_s = 0.0
            for i in range(int(p.max_tokens)):
                c0 = time.perf_counter()
                try:
                    probs = core.plain_distribution(logits, p.t0)
                except ValueError as exc:
                    raise DecodeError(f"step {i}: {exc} — the model produced invalid logits") from None
                tok = core.sample_top_p(probs, p.top_p, rng)
                core_s += time.perf_counter() - c0
                if self.model.is_eog(tok):
                    reason = "stop"
                    break
                out.append(tok)
                yield TokenEvent(i, tok, utf.feed(self.model.token_bytes(tok)), float(probs[tok]), p.t0, None)
                if len(out) >= p.max_tokens:
                    break
                if len(s.tokens) >= self.n_ctx:
                    reason = "context"
                    break
                logits = self._step_one(s, tok)
            tail = utf.flush()
            yield Finished(utf.text, out, reason, [len(toks)], evaluated, t1 - t0, time.perf_counter() - t1, tail,
                           core_s)
        finally:
            self._release()


def collect(events) -> Finished:
    """Run a generation to the end and return its ``Finished`` event."""
    last = None
    for ev in events:
        last = ev
    assert isinstance(last, Finished)
    return last
