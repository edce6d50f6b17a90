"""malt harness: multi-agent (generator -> verifier -> refiner) evaluation on lm-eval tasks."""

from harness.grading import extract_answer, is_correct, normalize_answer
from harness.solver import chain, generator, parse_agents, plan, refiner, verifier
from harness.state import SolveState, Turn

__all__ = [
    "SolveState",
    "Turn",
    "chain",
    "extract_answer",
    "generator",
    "is_correct",
    "normalize_answer",
    "parse_agents",
    "plan",
    "refiner",
    "verifier",
]
