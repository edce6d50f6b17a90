"""malt harness: multi-agent (generator -> verifier -> refiner) evaluation on lm-eval tasks.

An evaluation in a few lines::

    from harness import EvalSpec, run_eval

    results = run_eval(EvalSpec(model="smollm2-135m", agents="g,v,r", tasks="malt_gsm8k", limit=5))
    print(results.table())

A step at a time: ``plan(parse_agents("g,v,r"))(states, SolveContext(prompts, engines, params))``.
"""

from harness.api import run_eval
from harness.core.errors import MaltError
from harness.core.roles import ROLES
from harness.inference.backends.base import PAPER_TEMPERATURE, SamplingParams
from harness.inference.engines import RoleEngine
from harness.provenance import Provenance
from harness.run.runner import EvalResults
from harness.solver.plans import SolverPlan, agents_plan, debate_plan
from harness.solver.state import SolveState, Turn
from harness.solver.steps import SolveContext, chain, generator, parse_agents, plan, refiner, verifier
from harness.spec import EngineSpec, EvalSpec
from harness.tasks.grading import extract_answer, is_correct, normalize_answer
from harness.tasks.prompts import load_prompts
from harness.tasks.taskinfo import TASKS, TaskInfo

__all__ = [
    "PAPER_TEMPERATURE",
    "ROLES",
    "TASKS",
    "EngineSpec",
    "EvalResults",
    "EvalSpec",
    "MaltError",
    "Provenance",
    "RoleEngine",
    "SamplingParams",
    "SolveContext",
    "SolveState",
    "SolverPlan",
    "TaskInfo",
    "Turn",
    "agents_plan",
    "chain",
    "debate_plan",
    "extract_answer",
    "generator",
    "is_correct",
    "load_prompts",
    "normalize_answer",
    "parse_agents",
    "plan",
    "refiner",
    "run_eval",
    "verifier",
]
