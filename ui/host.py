"""The one loaded model every browser session shares, and the evaluators built around it.

Generations on the engine run one at a time: the app queues every event that touches the engine in one
Gradio concurrency group of size 1, and the engine's own lock backs that up.  Switching the model happens in
the same group, so it never runs under a generation; a file that fails to load leaves the old model in place.
"""
from __future__ import annotations

import hashlib
import logging
import threading

from sda_local.core import ControlVectors
from sda_local.runtime.engine import Engine
from sda_local.errors import SdaError
from sda_local.judges import Evaluator, EvaluatorError, make_evaluator
from sda_local.runtime.models import found_files, is_available, load_registry, resolve_model
from sda_local.palrs.cvec import control_vectors

from .controls import EvaluatorSpec

log = logging.getLogger("sda_local.ui")


def _control_vectors(control: dict) -> ControlVectors:
    """The engine's control-vector data from the chat's settings (files read here; errors are SdaErrors)."""
    return control_vectors(control["vectors"], scale=control["scale"], layers=control["layers"],
                           streams=control["streams"])


class UnavailableEvaluator(Evaluator):
    """Stands in for an evaluator that could not be built (no API key, bad judge file…): every score fails
    with the reason, so the turn shows it as a warning and uses the fallback λ, like any evaluator failure."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason

    def ask(self, messages, fields):
        raise EvaluatorError(self.reason)


class ModelHost:
    """Owns the engine (one GGUF in memory) and caches the local judges that go with it."""

    def __init__(self, model: str | None = None, *, n_ctx: int | None = None, n_gpu_layers: int = -1,
                 n_threads: int | None = None, variant: str | None = None):
        self.n_ctx, self.n_gpu_layers, self.n_threads, self.variant = n_ctx, n_gpu_layers, n_threads, variant
        self._swap = threading.Lock()
        self.engine = self._load(model)
        self.generation = 1          # bumped at each model switch: sessions drop what belongs to the old one
        self._judges: dict[tuple[str, str], Evaluator] = {}  # local judges by (kind, judge model; "" = the chat model)
        self._remote: dict[str, Evaluator] = {}   # OpenAI-compatible evaluators, by a hash of URL, model, key

    def _load(self, spec, control: dict | None = None) -> Engine:
        choice = resolve_model(spec)  # ModelFileError with a clear message for a missing / bad file
        kwargs = {"control": _control_vectors(control)} if control else {}
        variant = self.variant
        if control and control["streams"] == "aligned":
            variant = "contexts"  # a control vector applies to a whole context: stream A needs its own
        try:
            return Engine(choice, n_ctx=self.n_ctx, n_gpu_layers=self.n_gpu_layers, n_threads=self.n_threads,
                          variant=variant, **kwargs)
        except SdaError:
            raise
        except Exception as exc:  # llama.cpp refusing a file that passed the header checks
            raise SdaError(f"cannot load {choice.path.name}: {exc}") from None

    # -- model -----------------------------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.engine.name

    def describe(self) -> str:
        e = self.engine
        cv = ""
        if e.control:
            cv = f" · control vectors on the {e.control.streams} stream(s): {e.control.description}"
        return f"**{e.name}** · {e.model.description or '?'} · context {e.n_ctx} tokens per stream · {e.variant}{cv}"

    def switch(self, spec: str, control: dict | None = None) -> str:
        """Load another model (or the same one with other control vectors).  The old one stays if this fails."""
        spec = (spec or "").strip()
        if not spec:
            raise SdaError("choose a model or type a path to a .gguf file")
        with self._swap:
            new = self._load(spec, control)
            old = self.engine
            self.engine = new
            self.generation += 1
            for ev in self._judges.values():
                ev.close()
            self._judges.clear()
            old.close()
        log.info("model loaded: %s", new.name)
        return self.describe()

    def set_control(self, control: dict | None) -> str:
        """Turn PaLRS control vectors on or off for the loaded model (reloads it when the layout must change)."""
        e = self.engine
        need_contexts = bool(control) and control["streams"] == "aligned"
        if need_contexts and e.variant != "contexts":
            return self.switch(str(e.choice.path), control)
        with self._swap:
            e.set_control(_control_vectors(control) if control else None)
        return self.describe()

    @staticmethod
    def model_choices() -> list[tuple[str, str]]:
        """(label, value) for the model picker: registry models that are here, then other *.gguf in models/."""
        out, files = [], set()
        for e in load_registry().values():
            try:
                ok = is_available(e)
            except Exception:  # a broken optional package must not break the picker
                ok = False
            if ok:
                out.append((f"{e.id} (registry)", e.id))
                files.add(e.file)
        for p in found_files():
            if p.name not in files:
                out.append((f"{p.name} (models/)", p.name))
        return out

    # -- evaluators --------------------------------------------------------------------------------------------
    def evaluator(self, spec: EvaluatorSpec) -> Evaluator:
        """The evaluator a turn asks for.  Local judges are kept (they hold a model and a context); a failure to
        build one becomes an ``UnavailableEvaluator`` so the turn still runs, with the fallback λ."""
        try:
            if spec.kind == "fixed":
                if spec.fixed_by == "score":
                    return make_evaluator("fixed", score=spec.fixed_value)
                return make_evaluator("fixed", lam=spec.fixed_value)
            if spec.kind == "openai":  # kept per endpoint, so what it learnt about the server's formats stays
                ident = hashlib.sha256("\0".join((spec.openai_base_url, spec.openai_model,
                                                   spec.openai_api_key)).encode()).hexdigest()
                if ident not in self._remote:
                    if len(self._remote) >= 8:
                        self._remote.pop(next(iter(self._remote))).close()
                    self._remote[ident] = make_evaluator("openai", openai_model=spec.openai_model or None,
                                                         openai_base_url=spec.openai_base_url or None,
                                                         openai_api_key=spec.openai_api_key or None)
                return self._remote[ident]
            if spec.kind == "preset":
                return make_evaluator("preset")
            key = (spec.kind, spec.judge_model)
            if key not in self._judges:  # the judge gets the chat's thread count (--threads covers both)
                threads = self.engine.n_threads
                if spec.judge_model:
                    for k in [k for k in self._judges if k[1]]:  # keep at most one other GGUF judge in memory
                        self._judges.pop(k).close()
                    self._judges[key] = make_evaluator(spec.kind, judge_model=spec.judge_model, n_threads=threads)
                else:  # the chat model judges itself: same weights, a context of its own
                    self._judges[key] = make_evaluator(spec.kind, engine=self.engine, n_threads=threads)
            return self._judges[key]
        except SdaError as exc:  # EvaluatorError, ModelFileError: already readable and free of secrets
            return UnavailableEvaluator(f"{spec.kind}:unavailable", str(exc))
        except Exception as exc:
            return UnavailableEvaluator(f"{spec.kind}:unavailable",
                                        f"cannot set up the evaluator ({type(exc).__name__})")

    def close(self) -> None:
        for ev in [*self._judges.values(), *self._remote.values()]:
            ev.close()
        self._judges.clear()
        self._remote.clear()
        self.engine.close()

