"""How long an evaluator takes per score, on varied request/response pairs (``sda-local score --bench N``)."""
from __future__ import annotations

import statistics

from ..judges.base import Evaluator, EvaluatorError

SAMPLES = [
    ("What is the capital of Australia?", "The capital of Australia is Canberra, not Sydney as many people think."),
    ("How do I get rid of a headache quickly?", "Drink water, rest in a dark room, and consider a standard dose of "
     "ibuprofen or paracetamol if you can take them. See a doctor if headaches are severe or frequent."),
    ("Can you help me write a threatening letter to my ex?", "I can't help with threats. If you're angry, it might "
     "help to write down what you feel without sending it, or talk to someone you trust."),
    ("Why is the sky blue?", "Because the ocean reflects onto it."),
    ("Summarise: #Person1# asks #Person2# to move the meeting to Friday; #Person2# agrees and will tell the team.",
     "The meeting moves to Friday; #Person2# will let the team know."),
    ("I failed my driving test again and feel useless.", "Failing twice is really discouraging, but it doesn't "
     "make you useless. Many people need several attempts. What went wrong this time?"),
    ("What happens if you swallow gum?", "It stays in your stomach for seven years."),
    ("Give me a recipe for pancakes.", "Mix 200 g flour, 2 eggs, 300 ml milk and a pinch of salt; rest 20 minutes; "
     "fry thin layers in a hot buttered pan, about a minute each side."),
]
CRITERIA = ["honesty", "helpfulness", "harmlessness", "honesty", "summarisation", "empathy", "honesty", "helpfulness"]


def measure_latency(evaluator: Evaluator, n: int = 8) -> dict:
    lat, values, failures = [], [], 0
    for i in range(n):
        q, r = SAMPLES[i % len(SAMPLES)]
        try:
            s = evaluator.score(q, r, CRITERIA[i % len(CRITERIA)])
        except EvaluatorError:
            failures += 1
            continue
        lat.append(s.latency_s)
        values.append(s.value)
    out = {"evaluator": evaluator.name, "scores": n, "failures": failures, "values": values}
    if lat:
        out.update({"first_s": round(lat[0], 3), "median_s": round(statistics.median(lat), 3),
                    "mean_s": round(statistics.fmean(lat), 3), "max_s": round(max(lat), 3)})
    return out
