"""Where one compiled training step spends its time, operation by operation.

`profile_phases.py` splits an algorithm's iteration by phase; this script looks inside
the two steps that dominate those phases at the reference settings (issue 18) and sums
the time of every operation XLA ran by what it is:

- `fit`: `models.fit` of the PETS ensemble (5 x 4 x 200, Pendulum-v1, 10,000
  transitions, one epoch) at `--batch-size` per member: ensemble training.
- `sac`: `--updates` SAC updates at batch 256 on Pendulum-v1 (256-256 twin critics and
  actor, one `lax.scan`): MBPO's agent updates, 96% of its loop at the reference settings.
- `cem`: one CEM `plan` at 500/30/20 (population/horizon/particles, 5 iterations) through
  the same ensemble with TSinf: PETS' planning, 99% of its iteration.

Each operation is put in one class: `products` (XLA's dot and the YNNPACK fusions that
run them), `optimizer` (elementwise work whose innermost Python frame is in optax:
Adam's moments and the update, weight decay, Polyak averaging), `copies`, and `other
elementwise` (activations, the loss, gathers, selections), and the classes are printed
per step with the top operations and the source line each comes from.

    python scripts/profile_ops.py fit [--batch-size 32] [--activation relu]
    python scripts/profile_ops.py sac [--updates 20]
    python scripts/profile_ops.py cem [--compute-dtype bfloat16]
"""
from __future__ import annotations

import argparse
import collections
import json
import re

import jax
import jax.numpy as jnp

import _common
from jaxmbrl import agents, buffers, envs, models, planning



def _pendulum_data(transitions: int):
    env, env_params, spec = envs.make("Pendulum-v1")
    num_envs = 10
    data = jax.jit(lambda k: envs.random_rollout(env, env_params, spec, k, transitions // num_envs, num_envs))(
        jax.random.PRNGKey(0))
    data = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), data)
    return spec, data


def fit_target(args):
    """`(compiled, args, steps)` for one `models.fit` call."""
    spec, data = _pendulum_data(10_000)
    example = jax.tree.map(lambda a: a[0], data)
    buf = buffers.add(buffers.init(10_000, example), data)
    ens = models.make_ensemble(spec.obs_dim, spec.action_dim, 5, 5, (200,) * 4, learn_reward=True,
                               activation=args.activation, compute_dtype=args.compute_dtype)
    mstate = models.init_model(ens, jax.random.PRNGKey(1), example)
    fn = jax.jit(lambda m, k, b: models.fit(ens, m, k, b, epochs=1, batch_size=args.batch_size,
                                            holdout_ratio=0.0, patience=0))
    call = (mstate, jax.random.PRNGKey(2), buf)
    return fn.lower(*call).compile(), call, -(-10_000 // args.batch_size)


def sac_target(args):
    """`(compiled, args, steps)` for `args.updates` SAC updates in one scan."""
    spec, data = _pendulum_data(10_000)
    sac = agents.sac.make_sac(spec.obs_shape, spec.action_dim, spec.low, spec.high, compute_dtype=args.compute_dtype)
    state = sac.init(jax.random.PRNGKey(1))
    hp = agents.sac.SACHParams()

    def many(state, key):
        def one(state, k):
            k_idx, k_upd = jax.random.split(k)
            idx = jax.random.randint(k_idx, (256,), 0, 10_000)
            state, info = sac.update(state, jax.tree.map(lambda a: a[idx], data), hp, k_upd)
            return state, info.critic_loss
        return jax.lax.scan(one, state, jax.random.split(key, args.updates))

    call = (state, jax.random.PRNGKey(2))
    return jax.jit(many).lower(*call).compile(), call, args.updates


def cem_target(args):
    """`(compiled, args, 1)` for one CEM `plan` call (the step is the whole plan)."""
    _, _, spec = envs.make("Pendulum-v1")
    ens = models.make_ensemble(spec.obs_dim, spec.action_dim, 5, 5, (200,) * 4, activation=args.activation,
                               compute_dtype=args.compute_dtype)
    mstate = models.init_model(ens, jax.random.PRNGKey(0))
    model_fn = models.as_model_fn(ens, "tsinf", reward_fn=envs.reward_fn("Pendulum-v1"))
    planner = planning.make_planner("cem", model_fn, spec, horizon=30, num_samples=500, num_elites=50,
                                    num_iters=5, num_particles=20)
    call = (jax.random.PRNGKey(1), planner.init(), mstate, jnp.array([1.0, 0.0, 0.0]), planner.hparams)
    return jax.jit(planner.plan).lower(*call).compile(), call, 1


TARGETS = {"fit": fit_target, "sac": sac_target, "cem": cem_target}


def _frames(text: str):
    """op name -> innermost source `file:function:line` from the HLO's stack-frame tables."""
    tables = {}
    for name in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
        block = re.search(name + r"\n(.*?)\n\n", text, re.S)
        tables[name] = dict(re.findall(r"^(\d+) (.*)$", block.group(1), re.M)) if block else {}
    files, funcs = tables["FileNames"], tables["FunctionNames"]

    def where(frame_id: str) -> str:
        frame = tables["StackFrames"].get(frame_id, "")
        loc_id = re.search(r"file_location_id=(\d+)", frame)
        loc = tables["FileLocations"].get(loc_id.group(1), "") if loc_id else ""
        m = re.search(r"file_name_id=(\d+) function_name_id=(\d+) line=(\d+)", loc)
        if not m:
            return "?"
        path = files.get(m.group(1), "?").strip('"')
        short = re.sub(r".*/(site-packages|src)/", "", path)
        return f"{short}:{funcs.get(m.group(2), '?').strip(chr(34))}:{m.group(3)}"

    ops = {}
    for op, body in re.findall(r"%([\w.\-]+) = (.*)", text):
        frame = re.search(r"stack_frame_id=(\d+)", body)
        opcode = re.search(r"([a-z][\w\-]*)\(", body)
        ops[op] = (opcode.group(1) if opcode else "?", where(frame.group(1)) if frame else "?")
    return ops


def classify(op: str, kind: str, source: str) -> str:
    if op.startswith(("dot", "ynn_fusion")) or kind == "dot":
        return "products"
    if "optax" in source:
        return "optimizer"
    if op.startswith("copy"):
        return "copies"
    return "other elementwise"


def profile(compiled, call, steps: int, top: int) -> dict:
    jax.block_until_ready(compiled(*call))
    ops = _frames(compiled.as_text())
    _, _, seconds = _common.profiled_op_seconds(compiled, *call, ops=ops)
    classes = collections.Counter()
    for op, s in seconds.items():
        classes[classify(op, *ops[op])] += s
    total = sum(classes.values())
    per_step = lambda s: round(1e3 * s / steps, 4)  # noqa: E731
    return {
        "steps": steps, "ms_per_step_ops": per_step(total),
        "classes": {c: {"ms_per_step": per_step(s), "share": round(s / total, 3)} for c, s in classes.most_common()},
        "top_ops": [{"op": op, "class": classify(op, *ops[op]), "source": ops[op][1], "ms_per_step": per_step(s)}
                    for op, s in seconds.most_common(top)],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--activation", default="relu", choices=sorted(models.ACTIVATIONS))
    parser.add_argument("--compute-dtype", default="float32", choices=sorted(models.COMPUTE_DTYPES))
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    compiled, call, steps = TARGETS[args.target](args)
    result = {"target": args.target, **{k: v for k, v in vars(args).items() if k != "target"},
              **profile(compiled, call, steps, args.top), "machine": _common.machine()}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
