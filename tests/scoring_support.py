"""A whole answer's log-probs under the evaluation's settings, for the scorer tests: ``edge_logprobs`` with row i
predicting target i."""
from __future__ import annotations

import numpy as np

from sda_local.evaluation.token_logprobs import edge_logprobs


def answer_logprobs(logits_with, logits_without, targets, settings, **kw):
    """(log-prob of each target under each setting, JS per position): row i of the logits predicts ``targets[i]``."""
    zw = np.asarray(logits_with)
    if zw.ndim != 2 or zw.shape[0] != len(targets):
        raise ValueError(f"logits must be (n, n_vocab) with n = len(targets); got {zw.shape}, {len(targets)} targets")
    return edge_logprobs(zw, logits_without, np.arange(len(targets)), np.asarray(targets, dtype=np.int64), settings,
                         **kw)
