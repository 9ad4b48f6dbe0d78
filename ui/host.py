"""The one loaded model every browser session shares, and the evaluators built around it.

Generations on the engine run one at a time: the app queues every event that touches the engine in one
Gradio concurrency group of size 1, and the engine's own lock backs that up.  Switching the model happens in
the same group, so it never runs under a generation; a file that fails to load leaves the old model in place.
"""
from __future__ import annotations

import logging
import threading

from sda_local.core import ControlVectors
from sda_local.errors import SdaError
from sda_local.judges import Evaluator
from sda_local.judges.spec import Judges, JudgeSpec
from sda_local.palrs.cvec import control_vectors
from sda_local.runtime.engine import Engine
from sda_local.runtime.models import (
    found_files,
    is_available,
    load_registry,
    resolve_model,
)

log = logging.getLogger("sda_local.ui")


def _control_vectors(control: dict) -> ControlVectors:
    """The engine's control-vector data from the chat's settings (files read here; errors are SdaErrors)."""
    return control_vectors(control["vectors"], scale=control["scale"], layers=control["layers"],
                           streams=control["streams"])


class ModelHost:
    """Owns the engine (one GGUF in memory) and caches the local judges that go with it."""

    def __init__(self, model: str | None = None, *, n_ctx: int | None = None, n_gpu_layers: int = -1,
                 n_threads: int | None = None, variant: str | None = None):
        self.n_ctx, self.n_gpu_layers, self.n_threads, self.variant = n_ctx, n_gpu_layers, n_threads, variant
        self._swap = threading.Lock()
        self.engine = self._load(model)
        self.generation = 1          # bumped at each model switch: sessions drop what belongs to the old one
        self.judges = Judges(self.engine)

    def _load(self, spec, control: dict | None = None) -> Engine:
        choice = resolve_model(spec)  # ModelFileError with a clear message for a missing / bad file
        kwargs = {"control": _control_vectors(control)} if control else {}
        try:
            return Engine(choice, n_ctx=self.n_ctx, n_gpu_layers=self.n_gpu_layers, n_threads=self.n_threads,
                          variant=self.variant, **kwargs)
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
            self.judges.switch(new)
            old.close()
        log.info("model loaded: %s", new.name)
        return self.describe()

    def set_control(self, control: dict | None) -> str:
        """Turn PaLRS control vectors on or off for the loaded model (the engine picks the layout they need)."""
        with self._swap:
            self.engine.set_control(_control_vectors(control) if control else None)
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

    # -- evaluators ------------------------------------------------------------------------------------------
    def evaluator(self, spec: JudgeSpec) -> Evaluator:
        """The evaluator a turn asks for (``judges.Judges``: kept between turns; one that cannot be built says
        why in the turn, which goes on with the fallback λ)."""
        return self.judges.get(spec)

    def close(self) -> None:
        self.judges.close()
        self.engine.close()

