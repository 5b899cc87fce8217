"""What a tree search does at the root: visit counts, values and the UCB score per action.

Searches one CartPole-v1 state (the true dynamics, `envs.true_model`) with MuZero's pUCT
selection and with Gumbel MuZero, after 1, 2, 4, ... simulations, and prints for each
root action its visits N(a), its value Q(a) = r + discount * V(child) and pUCT's score

    U(a) = Q(a) + P(a) * sqrt(N) / (1 + N(a)) * (c1 + log((N + c2 + 1) / c2))

(the upper confidence bound pUCT maximises to choose the next action to try; N counts
the root's own visit too, and mctx normalises Q to [0, 1] among the root's value and
children before adding the bonus, as printed).
An unvisited action has the largest bonus, so early simulations try every action; later
ones go to the action whose value plus remaining uncertainty is highest, and the most
visited action is played. Gumbel MuZero instead splits the root's simulations evenly
between the actions it considers (sequential halving) and plays the best by Gumbel noise
+ prior logits + a monotone transform of Q; its improved policy is printed in place of U. Leaves are valued by random-action rollouts over the rest of
the lookahead.

    python scripts/mcts_cartpole.py [--tilt 0.1] [--horizon 10] [--particles 8]

With `--episodes N` it instead plays N 500-step episodes per selection on the true
dynamics at `--simulations`, `--horizon` and `--particles` and prints their returns:

    python scripts/mcts_cartpole.py --episodes 4 --simulations 32 --horizon 10 --particles 8
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxmbrl import envs, planning
from jaxmbrl.testing import oracle_episode_returns

C1, C2 = 1.25, 19652.0  # MuZero's pUCT constants (mctx's defaults)


def puct_scores(out) -> np.ndarray:
    """pUCT's score of each root action after the search, computed as mctx does: Q
    normalised to [0, 1] by the root's value and its visited children's Q (an unvisited
    action counts as the minimum), plus the prior-weighted exploration bonus."""
    tree = jax.tree.map(lambda x: np.asarray(x, np.float64)[0], out.tree)
    visits = tree.children_visits[0]
    q = tree.children_rewards[0] + tree.children_discounts[0] * tree.children_values[0]
    value, n = tree.node_values[0], tree.node_visits[0]
    safe = np.where(visits > 0, q, value)
    lo, hi = min(value, safe.min()), max(value, safe.max())
    normalised = (np.where(visits > 0, q, lo) - lo) / max(hi - lo, 1e-8)
    prior = np.exp(tree.children_prior_logits[0] - tree.children_prior_logits[0].max())
    prior /= prior.sum()
    bonus = np.sqrt(n) * (C1 + np.log((n + C2 + 1) / C2)) * prior / (visits + 1)
    return normalised + bonus


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tilt", type=float, default=0.1, help="pole angle of the searched state (rad)")
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--particles", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=0, help="play this many episodes instead")
    parser.add_argument("--simulations", type=int, default=32, help="simulations per step (with --episodes)")
    args = parser.parse_args()
    if args.episodes:
        return play(args)
    env, env_params, spec = envs.make("CartPole-v1")
    model_fn, _ = envs.true_model("CartPole-v1")
    _, state = env.reset(jax.random.PRNGKey(0), env_params)
    state = state.replace(theta=jnp.float32(args.tilt), theta_dot=jnp.float32(0.0))
    print(f"CartPole-v1 state: x={float(state.x):.3f} x_dot={float(state.x_dot):.3f} theta={float(state.theta):.3f} "
          f"theta_dot={float(state.theta_dot):.3f} (pole tilted right: pushing right, action 1, saves it)")
    print(f"lookahead {args.horizon} steps, {args.particles} random rollouts per leaf, reward 1 per step alive\n")
    for selection in ("puct", "gumbel"):
        third = "pUCT score U" if selection == "puct" else "improved policy softmax(logits + sigma(Q))"
        print(f"## {selection}")
        print(f"| simulations | N(left), N(right) | Q(left), Q(right) | {third} (left, right) | root value | action |")
        print("|---:|---|---|---|---:|---:|")
        for sims in (1, 2, 4, 8, 16, 32, 64):
            search = jax.jit(planning.mcts_search(model_fn, spec, num_simulations=sims, horizon=args.horizon,
                                                  num_particles=args.particles, selection=selection))
            out = search(jax.random.PRNGKey(1), env_params, state)
            visits, q = np.asarray(out.visit_counts), np.asarray(out.q_values)
            score = puct_scores(out) if selection == "puct" else np.asarray(out.action_weights)
            print(f"| {sims} | {visits[0]}, {visits[1]} | {q[0]:.2f}, {q[1]:.2f} | {score[0]:.2f}, {score[1]:.2f} | "
                  f"{float(out.root_value):.2f} | {['left', 'right'][int(out.action)]} |")
        print()


def play(args):
    spec = envs.make("CartPole-v1")[2]
    model_fn, _ = envs.true_model("CartPole-v1")
    print(f"CartPole-v1, true dynamics: {args.simulations} simulations, lookahead {args.horizon}, "
          f"{args.particles} rollouts per leaf, {args.episodes} episodes of up to 500 steps")
    for selection in ("gumbel", "puct"):
        planner = planning.mcts(model_fn, spec, num_simulations=args.simulations, horizon=args.horizon,
                                num_particles=args.particles, selection=selection)
        returns = oracle_episode_returns("CartPole-v1", planner, args.episodes, 500)(jax.random.PRNGKey(0))
        print(f"{selection}: returns {np.asarray(returns).astype(int).tolist()}")


if __name__ == "__main__":
    main()
