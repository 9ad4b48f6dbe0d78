"""``sda-local generate``: answer one question with SDA steering."""
from __future__ import annotations

import sys

from ..runtime.engine import Engine
from ..judges import Evaluator
from ..judges.decision import decide_without_answer
from .palrs import control_vector_kwargs, control_vector_parent
from ..turn import ChatSession, TurnSettings
from ..presets import DEFAULT_PRESET
from .options import (evaluator_from_args, evaluator_parent, model_from_args, model_parent, preset_from_args,
                      preset_parent, sampling_from_args, sampling_parent, text_arg, turn_parent,
                      turn_settings_from_args)
from .output import lambda_text, print_finished, print_stream, print_turn


def generate(engine: Engine, evaluator: Evaluator, settings: TurnSettings, question: str, *,
             show_base: bool = False, as_json: bool = False) -> None:
    """One turn: base answer, λ, aligned answer.  When the evaluator sets λ itself (a given λ or score) and
    ``show_base`` is off, there is nothing to judge: only the aligned answer is generated."""
    session = ChatSession(engine, evaluator, settings)
    decision = None if show_base else decide_without_answer(evaluator, settings.preset, settings.mapping)
    if decision is None:
        print_turn(session.send(question), as_json, show_base=True)
        return
    if not as_json:
        how = lambda_text(decision.lam, decision.source, decision.score_value, settings.mapping)
        print(f"── SDA answer (preset {settings.preset.name}, {how}) ──", file=sys.stderr, flush=True)
    messages = session.messages() + [{"role": "user", "content": question}]
    done = print_stream(engine.generate(messages, settings.preset.instruction, decision.lam,
                                        placement=settings.effective_placement, params=settings.params()), "sda", as_json)
    if not as_json:
        print_finished(done)


def cmd_generate(args) -> int:
    question = text_arg(args.question, "question", 'sda-local generate "How do I keep basil alive?"')
    settings = turn_settings_from_args(args, preset_from_args(args), sampling_from_args(args))
    options = evaluator_from_args(args)
    engine = model_from_args(args).open(**control_vector_kwargs(args))
    evaluator = None
    try:
        evaluator = options.build(engine)
        generate(engine, evaluator, settings, question, show_base=args.base, as_json=args.json)
    finally:
        if evaluator is not None:
            evaluator.close()
        engine.close()
    return 0


def add_command(sub) -> None:
    g = sub.add_parser("generate", help="answer one question with SDA steering",
                       description="Answer one question with SDA: the unsteered base answer is rated by the "
                                   "evaluator, the score sets λ, then the aligned answer is generated "
                                   f"(preset {DEFAULT_PRESET} unless --preset or --instruction says otherwise).",
                       parents=[preset_parent(), evaluator_parent(), turn_parent(), sampling_parent(),
                                model_parent(), control_vector_parent()])
    g.add_argument("question")
    g.add_argument("--base", action="store_true",
                   help="with --lam/--score: also generate and print the unsteered answer (always shown otherwise)")
    g.add_argument("--json", action="store_true", help="one JSON object per token, with diagnostics")
    g.set_defaults(func=cmd_generate)
