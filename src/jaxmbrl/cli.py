"""The `jaxmbrl` command (also `python -m jaxmbrl`)."""
from __future__ import annotations

import argparse
import os
import sys

EXAMPLES = """\
examples:
  jaxmbrl train pets --env Pendulum-v1 --seeds 5 --out runs/pets_pendulum
  jaxmbrl train pets --preset tiny --set planner_horizon=10 planner_particles=4 --out runs/quick
  jaxmbrl train pets --out runs/pets_pendulum --resume          # continue after an interruption
  jaxmbrl sweep pets --seeds 3 --grid planner_alpha=0.0,0.1,0.3 --grid planner_horizon=10,20 --out runs/sweep
  jaxmbrl sweep pets --seeds 3 --grid planner_horizon=10,20 --out runs/sweep --resume   # after Ctrl-C
  jaxmbrl --import my_envs train pets --env MyEnv-v0 --out runs/mine   # a module that registers an env
  jaxmbrl fields pets                                            # static vs sweepable fields, defaults, ranges
  jaxmbrl plot runs/pets_pendulum runs/sweep --out curves.png
  jaxmbrl diagnose runs/pets_pendulum --horizon 20
  jaxmbrl render runs/pets_pendulum --out episode.gif          # replay the latest checkpoint
  jaxmbrl envs

exit status: 0 done; 2 usage error (nothing ran, one line on stderr); 3 a run diverged
(NaN/inf, see summary.json); 130 interrupted (continue with --resume). See docs/RELIABILITY.md.
"""


def _algorithm_help() -> str:
    from jaxmbrl.algorithms import _registry

    return "algorithm: " + ", ".join(_registry.algorithm_names())


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"jaxmbrl: error: {message} (see jaxmbrl {self.prog.split()[-1]} --help)\n"
                  if " " in self.prog else f"jaxmbrl: error: {message} (see jaxmbrl --help)\n")


def _common_run_args(p):
    p.add_argument("algorithm", help=_algorithm_help())
    p.add_argument("--env", help="environment id (see `jaxmbrl envs`)")
    p.add_argument("--seeds", type=int, default=1, help="seeds, vmapped in one program (default 1)")
    p.add_argument("--seed", type=int, default=0, help="base PRNG seed (default 0)")
    p.add_argument("--preset", default="default", choices=("default", "tiny"), help="Config preset")
    p.add_argument("--config", help="YAML or JSON file of field: value (applied before --set)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="FIELD=VALUE",
                   help="override Config or HParams fields")
    p.add_argument("--out", help="run folder (default runs/ALGO_ENV)")
    p.add_argument("--chunk", type=int, default=1, help="iterations per compiled call (default 1)")
    p.add_argument("--checkpoint-every", type=int, default=1, help="chunks between checkpoints (0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--plot-every", type=float, default=60.0, metavar="SECONDS",
                   help="redraw learning_curve.png during the run at most this often (default 60; -1: at the end only)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events (extra)")
    p.add_argument("--wandb", metavar="PROJECT", help="also log to Weights & Biases (extra; WANDB_MODE=offline works)")
    g = p.add_argument_group("several processes (hosts): docs/SCALING.md")
    g.add_argument("--coordinator", metavar="HOST:PORT",
                   help="process 0's address (every process the same), or 'auto' for Slurm / Open MPI / TPU "
                        "detection; env JAXMBRL_COORDINATOR")
    g.add_argument("--num-processes", type=int, metavar="N", help="processes in the run; env JAXMBRL_NUM_PROCESSES")
    g.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1; env JAXMBRL_PROCESS_ID")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxmbrl", description="Model-based RL in JAX: whole training loops compiled to one program.",
                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it may register environments, planners or algorithms); repeatable")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("train", help="train one config over seeds", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_run_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p = sub.add_parser("sweep", help="grid over fields: all points and seeds in one vmapped program",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_run_args(p)
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                   help="values of a field; several grids form a product (tuple fields: V1;V2)")
    p.add_argument("--resume", action="store_true", help="continue the sweep in --out (finished programs are kept)")
    p = sub.add_parser("plot", help="learning curves of runs (seeds as a band) to a PNG")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--out", default="learning_curves.png")
    p.add_argument("--metric", default="episode_return")
    sub.add_parser("envs", help="supported environments, their spaces and fitting algorithms")
    p = sub.add_parser("fields", help="every field of an algorithm: static (one program each) or sweepable")
    p.add_argument("algorithm", help=_algorithm_help())
    p = sub.add_parser("diagnose", help="k-step open-loop prediction error of a run's learned model")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--horizon", type=int, default=15)
    p.add_argument("--out", help="PNG path (default RUN/model_error.png)")
    p = sub.add_parser("render", help="one episode of a run's latest checkpoint, as a GIF")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--out", help="GIF path (default RUN/episode.gif)")
    p.add_argument("--member", type=int, default=0, help="which of the run's seeds x points (default 0)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the episode (default 0)")
    p.add_argument("--max-steps", type=int, help="cap on the episode's steps (default the env's length)")
    p.add_argument("--renderer", default="auto", choices=("auto", "gymnax", "brax", "plain"),
                   help="auto: gymnax's renderer, else Brax's (MuJoCo, EGL), else a plain matplotlib picture")
    return parser


def _resolve(args):
    from jaxmbrl.run import _config

    overrides = _config.parse_assignments(args.set)
    return _config.resolve(args.algorithm, preset=args.preset, file=args.config, overrides=overrides, env=args.env)


def _options(args, resume=False):
    from jaxmbrl.run import RunOptions

    return RunOptions(seeds=args.seeds, seed=args.seed, chunk=args.chunk, checkpoint_every=args.checkpoint_every,
                      resume=resume, progress=not args.no_progress, tensorboard=args.tensorboard,
                      wandb=args.wandb, plot_every_s=args.plot_every)


def _train(args):
    from jaxmbrl import run
    from jaxmbrl.run import _distributed

    algo, config, hparams = _resolve(args)
    out = args.out or os.path.join("runs", f"{args.algorithm}_{config.env_id}")
    result = run.run(args.algorithm, config, [hparams], out, _options(args, args.resume))
    if _distributed.is_primary():  # the other processes of a multi-process run say nothing
        _report(result)
    if result.status == "diverged":
        print(f"jaxmbrl: error: {result.summary.get('error', 'diverged')}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0 if result.completed else EXIT_INTERRUPTED


def _report(result):
    s = dict(result.summary)
    s.update((s.get("resumes") or [{}])[-1])  # this session's timings
    said = {"completed": "finished", "diverged": "diverged (stopped; see the error below)"}
    print(f"{said.get(result.status, 'interrupted (resume with --resume)')}: {s['iterations']} iterations "
          f"in {s['wall_s']:.1f} s; compile {s['compile_s']:.1f} s; steady "
          f"{s['steady_env_steps_per_s'] or float('nan'):.0f} env steps/s over {s['batch']} runs on {s['devices']} device(s)")
    print(f"run folder: {result.out_dir} (metrics.jsonl, metrics.csv, config.json, summary.json, "
          f"checkpoints/, learning_curve.png)")


def _sweep(args):
    from jaxmbrl import run
    from jaxmbrl.run import _config, _distributed

    algo, config, hparams = _resolve(args)
    if not args.grid:
        raise _config.UsageError("sweep needs at least one --grid FIELD=V1,V2.")
    out = args.out or os.path.join("runs", f"sweep_{args.algorithm}_{config.env_id}")
    grids = _config.parse_assignments(args.grid)
    rows = run.sweep(args.algorithm, config, hparams, grids, out, _options(args, args.resume))
    if _distributed.is_primary():
        print(open(os.path.join(out, "summary.md")).read())
        print(f"sweep folder: {out} (summary.csv, summary.md, sweep.png)")
    statuses = {r["status"] for r in rows}
    if statuses & {"interrupted", "not run"}:
        print("jaxmbrl: sweep interrupted; continue it with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if "diverged" in statuses:
        diverged = [r["point"] for r in rows if r["status"] == "diverged"]
        print(f"jaxmbrl: error: diverged: {', '.join(diverged)[:200]} (see summary.json in the program folders)",
              file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def _plot(args):
    from jaxmbrl.run import learning_curves

    print(f"wrote {learning_curves(args.runs, args.out, metric=args.metric)}")
    return 0


def fitting_algorithms(spec):
    """`[(name, note)]` of the registered algorithms whose `supports(spec)` accepts it."""
    from jaxmbrl.algorithms import _registry

    out = []
    for name in _registry.algorithm_names():
        note = _registry.load_algorithm(name).supports(spec)
        if note is not None:
            out.append((name, note))
    return out


def _envs(args):
    from jaxmbrl import envs

    print(f"{'id':<30} {'observation':<14} {'actions':<20} algorithms")
    for env_id in envs.registered_ids():
        try:
            _, _, spec = envs.make(env_id)
        except Exception as err:  # noqa: BLE001 - e.g. an env that downloads data
            print(f"{env_id:<30} unavailable: {str(err).splitlines()[0][:60]}")
            continue
        actions = f"discrete({spec.num_actions})" if spec.discrete else f"box({spec.action_dim}) [{spec.low[0]:g},{spec.high[0]:g}]"
        fits = [name + (f" ({note})" if note else "") for name, note in fitting_algorithms(spec)]
        print(f"{env_id:<30} {str(spec.obs_shape):<14} {actions:<20} {', '.join(fits)}")
    return 0


def _fields(args):
    from jaxmbrl.algorithms._contract import fields_of
    from jaxmbrl.run import _config

    algo = _config.get_algorithm(args.algorithm)
    print(f"{args.algorithm}: static fields compile one program per value; sweepable fields "
          f"(traced floats) share one program (jaxmbrl sweep vmaps them)")
    print(f"{'field':<26} {'kind':<10} {'default':<24} range")
    for f in fields_of(algo):
        default = dict(f.default) if hasattr(f.default, "items") else f.default
        print(f"{f.name:<26} {f.kind:<10} {str(default):<24} {'' if f.range is None else f.range}")
    return 0


def _diagnose(args):
    from jaxmbrl.run import diagnose

    errors, png = diagnose(args.run, horizon=args.horizon, png=args.out)
    print("k   open-loop MSE (per obs dim, standardised)")
    for k, e in enumerate(errors, 1):
        print(f"{k:<3} {e:.5f}")
    print(f"wrote {png}")
    return 0


def _render(args):
    from jaxmbrl.run import render

    if args.max_steps is not None and args.max_steps < 1:
        from jaxmbrl.run import UsageError

        raise UsageError(f"--max-steps must be >= 1, got {args.max_steps}.")
    r = render(args.run, args.out or os.path.join(args.run, "episode.gif"), member=args.member, seed=args.seed,
               max_steps=args.max_steps, renderer=args.renderer)
    ended = "terminated" if r["terminated"] else "ran to its end"
    print(f"wrote {r['out']}: {r['env_id']}, {r['steps']} steps, return {r['return']:.1f} ({ended}; "
          f"member {r['member']}, checkpoint after iteration {r['iteration']}, {r['renderer']} renderer)")
    return 0


def _import_modules(names):
    """Imports each `--import` module (found on sys.path and in the working directory)."""
    import importlib

    from jaxmbrl.run import UsageError

    if names and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise UsageError(f"--import {name}: {str(err).splitlines()[0]}; put the module on PYTHONPATH "
                             f"or in the working directory.") from None


# Exit statuses (docs/RELIABILITY.md): 0 done, 2 a usage error (nothing run or lost),
# 3 a run diverged (NaN/inf; the last finite checkpoint kept), 4 another process of a
# multi-process run was lost (resumable), 130 interrupted (resumable).
EXIT_USAGE, EXIT_DIVERGED, EXIT_PEER_LOST, EXIT_INTERRUPTED = 2, 3, 4, 130


def _quiet_libraries():
    """Orbax and TensorStore log through absl and print asyncio noise ("Event loop is
    closed") while a failing checkpoint is torn down; the one-line error says it all."""
    import logging

    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    for name in ("absl", "orbax", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # TensorStore reports callbacks that outlive Orbax's event loop (after a failed
    # read) as "unraisable" exceptions from its own threads.
    previous = sys.unraisablehook
    if getattr(previous, "jaxmbrl", False):  # main() ran before in this process
        return

    def hook(unraisable):
        if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
            return
        previous(unraisable)

    hook.jaxmbrl = True
    sys.unraisablehook = hook


def _one_line(err) -> str:
    message = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
    return message if len(message) <= 400 else message[:397] + "..."


def main(argv=None) -> int:
    code = _main(argv)
    from jaxmbrl.run import _distributed

    _distributed.leave(code)
    return code


def _main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _quiet_libraries()
    from jaxmbrl.envs import MissingExtraError, UnknownEnvError
    from jaxmbrl.run import CheckpointError, UsageError, _distributed

    handlers = {"train": _train, "sweep": _sweep, "plot": _plot, "envs": _envs, "fields": _fields,
                "diagnose": _diagnose, "render": _render}
    try:
        if args.command in ("train", "sweep"):
            # Before anything computes: JAX's distributed runtime must start first.
            _distributed.initialize(_distributed.settings_from(args.coordinator, args.num_processes, args.process_id))
        _import_modules(args.imports)
        return handlers[args.command](args)
    except _distributed.PeerLost as err:
        print(f"jaxmbrl: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_PEER_LOST
    except (UsageError, UnknownEnvError, MissingExtraError, CheckpointError, FileNotFoundError) as err:
        print(f"jaxmbrl: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("jaxmbrl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
