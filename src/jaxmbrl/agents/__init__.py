"""Model-free learners used inside the algorithms (and as their baselines).

Each agent is a module of pure functions: `jaxmbrl.agents.dqn.make_dqn(...)`.
"""
from jaxmbrl.agents import dqn, sac

__all__ = ["dqn", "sac"]
