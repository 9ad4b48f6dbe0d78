"""``sda-local generate``: answer one question with SDA steering."""
from __future__ import annotations

from ..judges import Evaluator
from ..judges.spec import Judges
from ..presets import DEFAULT_PRESET
from ..runtime.engine import Engine
from ..session import ChatSession
from ..turn import TurnSettings
from .options import (
    evaluator_from_args,
    evaluator_parent,
    model_from_args,
    model_parent,
    preset_from_args,
    preset_parent,
    sampling_from_args,
    sampling_parent,
    text_arg,
    turn_parent,
    turn_settings_from_args,
)
from .output import print_turn
from .palrs import control_vector_kwargs, control_vector_parent


def generate(engine: Engine, evaluator: Evaluator, settings: TurnSettings, question: str, *,
             show_base: bool = False, as_json: bool = False) -> None:
    """One turn (``turn.answer``): the base answer when the evaluator reads it or ``show_base`` asks for it, λ,
    the aligned answer."""
    session = ChatSession(engine, evaluator, settings, show_base=show_base)
    print_turn(session.send(question), as_json, show_base=True)


def cmd_generate(args) -> int:
    question = text_arg(args.question, "question", 'sda-local generate "How do I keep basil alive?"')
    settings = turn_settings_from_args(args, preset_from_args(args), sampling_from_args(args))
    spec = evaluator_from_args(args)
    engine = model_from_args(args).open(**control_vector_kwargs(args))
    judges = Judges(engine)
    try:
        generate(engine, judges.build(spec), settings, question, show_base=args.base, as_json=args.json)
    finally:
        judges.close()
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
