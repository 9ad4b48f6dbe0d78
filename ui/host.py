"""The one loaded model every browser session shares, and the evaluators built around it.

Generations on the engine run one at a time: the app queues every event that touches the engine in one
Gradio concurrency group of size 1, and the engine's own lock backs that up.  Switching the model happens in
the same group, so it never runs under a generation; a file that fails to load leaves the old model in place.

A turn whose page went away (a reload, a closed tab) goes on in a thread of its own (``detach``), outside that
group: the next generation waits for it (``wait_detached``), and a model switch or ``close`` stops it first.
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
                 n_threads: int | None = None, layout: str | None = None):
        self.n_ctx, self.n_gpu_layers, self.n_threads, self.layout = n_ctx, n_gpu_layers, n_threads, layout
        self._swap = threading.Lock()
        self.engine = self._load(model)
        self.generation = 1          # bumped at each model switch: sessions drop what belongs to the old one
        self.judges = Judges(self.engine)
        self._detached: list[tuple[threading.Thread, threading.Event]] = []
        self._detached_lock = threading.Lock()

    def _load(self, spec, control: dict | None = None) -> Engine:
        choice = resolve_model(spec)  # ModelFileError with a clear message for a missing / bad file
        kwargs = {"control": _control_vectors(control)} if control else {}
        try:
            return Engine(choice, n_ctx=self.n_ctx, n_gpu_layers=self.n_gpu_layers, n_threads=self.n_threads,
                          layout=self.layout, **kwargs)
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
        return f"**{e.name}** · {e.model.description or '?'} · context {e.n_ctx} tokens per stream · {e.layout}{cv}"

    def switch(self, spec: str, control: dict | None = None) -> str:
        """Load another model (or the same one with other control vectors).  The old one stays if this fails."""
        spec = (spec or "").strip()
        if not spec:
            raise SdaError("choose a model or type a path to a .gguf file")
        self.stop_detached()  # a turn going on for a page that went away ends here (and is saved), not under it
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
        self.stop_detached()
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

    # -- turns whose page went away -----------------------------------------------------------------------------
    def detach(self, run, stop: threading.Event, name: str = "sda-detached-turn") -> threading.Thread:
        """Run ``run()`` (the rest of a turn) in a daemon thread; ``stop``: the event that ends it early."""
        def body():
            try:
                run()
            except Exception:  # the turn's own code catches what it can; anything left is a bug, logged
                log.exception("a detached turn failed")

        thread = threading.Thread(target=body, name=name, daemon=True)
        with self._detached_lock:
            self._detached = [(t, e) for t, e in self._detached if t.is_alive()] + [(thread, stop)]
        thread.start()
        return thread

    def detached_running(self) -> bool:
        with self._detached_lock:
            return any(t.is_alive() for t, _ in self._detached)

    def wait_detached(self, timeout: float | None = None) -> None:
        """Wait for the turns going on for pages that went away (not the calling thread's own)."""
        with self._detached_lock:
            threads = [t for t, _ in self._detached if t is not threading.current_thread()]
        for t in threads:
            t.join(timeout)

    def stop_detached(self, timeout: float = 60.0) -> None:
        """End those turns (each keeps what it has, as a stopped turn) and wait for them."""
        with self._detached_lock:
            running = [(t, e) for t, e in self._detached if t is not threading.current_thread()]
        for _, stop in running:
            stop.set()
        for t, _ in running:
            t.join(timeout)

    def close(self) -> None:
        self.stop_detached()
        self.judges.close()
        self.engine.close()

