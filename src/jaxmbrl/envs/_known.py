"""Known reward and termination functions (filled in by the envs work)."""
from __future__ import annotations


def reward_fn(env_id: str, env_params=None):
    raise NotImplementedError


def termination_fn(env_id: str, env_params=None):
    raise NotImplementedError
