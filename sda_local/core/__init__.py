"""SDA math: pure numpy, no I/O and no llama.cpp.

The formulas follow arXiv 2511.16324; see ``README.md`` for a summary.

    lp     = log_softmax(z_with)          lp_nc = log_softmax(z_without)
    s      = lp + k·λ·(lp − lp_nc)        (k = 2)
    s      = −inf where lp < max lp + ln α (plausibility constraint, off at α = 0)
    JS     = JSD(softmax(z_with), softmax(z_without))   natural log, in [0, ln 2]
    T      = T0 · 0.5^(JS / (2 ln 2))     ("ln2"), or max(0.2, T0 · 0.5^(JS / 0.01)) ("sharp"), or T0 ("off")
    probs  = softmax(s / T)               → nucleus (top-p) sampling

Modules:

- ``params``        — ``SamplingParams``, the one definition of the sampling settings, and their ``Option``s;
- ``lambdas``       — evaluator score → λ (``LAMBDA_MAPPINGS``, ``lambda_from_score``);
- ``distributions`` — the step's arithmetic in pieces (log-softmax, JS, steering, JS temperature, target
  log-probs);
- ``processors``    — the step as composable transforms over one step or many rows (``ProcessorChain``,
  ``build_chain``, ``apply_shared``), which the engine and the teacher-forced scorers use;
- ``sampling``      — nucleus sampling (``sample_top_p``);
- ``control``       — control vectors as data (``ControlVectors``);
- ``inspect``       — the token inspector's top-k lists of one step (``top_k_lists``).
"""
from __future__ import annotations

from .control import CV_STREAMS, ControlVectorError, ControlVectors
from .distributions import (
                            StepInfo,
                            js_temperature,
                            target_logprobs,
)
from .top_k import TopK, top_k_lists
from .lambdas import LAMBDA_MAPPINGS, lambda_from_score
from .params import (
                            ADAPTIVE_MODES,
                            CONTRASTS,
                            TEMPERATURE_MODES,
                            Option,
                            SamplingParams,
                            sampling_options,
)
from .processors import (
                            AdaptiveSteer,
                            BoundedSteer,
                            EchoBlock,
                            JsTemperature,
                            PlausibilityConstraint,
                            Processor,
                            ProcessorChain,
                            Steer,
                            StepState,
                            Temperature,
                            apply_shared,
                            build_chain,
                            plain_chain,
                            sda_chain,
)
from .sampling import sample_top_p

__all__ = [
    "LAMBDA_MAPPINGS",
    "TEMPERATURE_MODES",
    "ADAPTIVE_MODES",
    "AdaptiveSteer",
    "CONTRASTS",
    "CV_STREAMS",
    "SamplingParams",
    "Option",
    "sampling_options",
    "StepInfo",
    "lambda_from_score",
    "js_temperature",
    "target_logprobs",
    "sample_top_p",
    "StepState",
    "Processor",
    "Temperature",
    "Steer",
    "BoundedSteer",
    "JsTemperature",
    "PlausibilityConstraint",
    "EchoBlock",
    "ProcessorChain",
    "plain_chain",
    "sda_chain",
    "build_chain",
    "apply_shared",
    "ControlVectors",
    "ControlVectorError",
    "TopK",
    "top_k_lists",
]
