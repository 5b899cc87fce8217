"""MuZero on Breakout-MinAtar with the CNN representation, for a wall-time budget (default
30 minutes, compile included), beside Dreamer's 1.45 at 153k env steps in the same 30
minutes and a uniformly random policy's 0.43 (docs/BENCHMARKS.md).

8 envs, 4,000 env steps per iteration (the first random; long because each greedy
evaluation episode runs up to 1,000 sequential searches), Gumbel MuZero with 32
simulations, replay capped at 12,500 vectorised steps (100,000 env steps), 4 greedy
evaluation episodes per iteration; `muzero.Config` otherwise.

    python scripts/muzero_minatar.py [--max-minutes 30] [--set field=value ...] [--png curve.png]
"""
from __future__ import annotations

import muzero_cartpole

FIELDS = dict(num_envs=8, num_iterations=1000, steps_per_iteration=500, model_train_every=5,
              buffer_capacity=12_500, discount=0.99)

if __name__ == "__main__":
    muzero_cartpole.main(__doc__, env="Breakout-MinAtar", seeds=1, target=1.45, max_minutes=30.0, fields=FIELDS)
