"""Model-free learners used inside the algorithms (and as their baselines).

Each agent is a module of pure functions: `jaxmbrl.agents.dqn.make_dqn(...)`;
`actor_critic` learns in imagination (Dreamer) and `returns` holds its return estimators.
"""
from jaxmbrl.agents import actor_critic, dqn, returns, sac

__all__ = ["actor_critic", "dqn", "returns", "sac"]
