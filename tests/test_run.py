"""The runner and the command line: chunked loop, resume, sharded sweeps, errors."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxmbrl import cli, run
from jaxmbrl.algorithms import pets

TINY = dict(num_iterations=5, steps_per_iteration=10)


def _tiny_config(**kw):
    return pets.Config.tiny(**{**TINY, **kw})


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(state)]


# The module fixture below is built once: `make test` (--dist loadgroup) keeps this
# file's tests on one worker.
pytestmark = pytest.mark.xdist_group("run")


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "straight")
    cfg = _tiny_config()
    result = run.run("pets", cfg, [cfg.hparams()], out, run.RunOptions(seeds=2, progress=False))
    return out, result


def test_four_chunks_straight_equals_two_plus_resumed_two(straight_run, tmp_path):
    out, straight = straight_run
    assert straight.completed and straight.summary["iterations"] == 5
    cfg = _tiny_config()
    part = str(tmp_path / "resumed")
    first = run.run("pets", cfg, [cfg.hparams()], part, run.RunOptions(seeds=2, progress=False, stop_after_chunks=2))
    assert not first.completed and first.summary["iterations"] == 3
    second = run.run("pets", cfg, [cfg.hparams()], part, run.RunOptions(seeds=2, progress=False, resume=True))
    assert second.completed
    for a, b in zip(_leaves(straight.state), _leaves(second.state)):
        np.testing.assert_array_equal(a, b)
    lines = lambda d: open(os.path.join(d, "metrics.jsonl")).read().splitlines()
    assert lines(out) == lines(part) and len(lines(out)) == 5 * 2
    for name in ("metrics.csv", "config.json", "summary.json", "learning_curve.png"):
        assert os.path.exists(os.path.join(part, name))


def _cli(*argv):
    return cli.main(list(argv))


def _snapshot(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(root, f)
            out[path] = open(path, "rb").read()
    return out


def test_bad_input_gets_one_line_errors_and_loses_nothing(straight_run, tmp_path, capsys):
    out, _ = straight_run
    before = _snapshot(out)
    cases = [
        (["train", "pets", "--preset", "tiny", "--set", "planner_horizn=3", "--out", str(tmp_path / "a")], "Did you mean planner_horizon"),
        (["train", "pets", "--preset", "tiny", "--set", "planner_horizon=abc", "--out", str(tmp_path / "b")], "not a valid int"),
        (["train", "pets", "--preset", "tiny", "--set", "planner_horizon=0", "--out", str(tmp_path / "c")], "planner_horizon must be"),
        (["train", "pets", "--env", "Pendulum-v9", "--out", str(tmp_path / "d")], "Unknown environment"),
        (["train", "petz", "--out", str(tmp_path / "e")], "Did you mean pets"),
        (["train", "pets", "--preset", "tiny", "--out", out], "already holds a run"),
        (["train", "pets", "--preset", "tiny", "--set", "num_iterations=5", "steps_per_iteration=10",
          "planner_horizon=7", "--seeds", "2", "--out", out, "--resume"], "planner_horizon (5 -> 7)"),
    ]
    for argv, message in cases:
        assert _cli(*argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, (argv, err)
    assert _snapshot(out) == before


def test_corrupt_checkpoint_is_reported_and_kept(straight_run, tmp_path, capsys):
    import shutil

    src, _ = straight_run
    out = str(tmp_path / "copy")
    shutil.copytree(src, out)
    # Every checkpoint truncated: nothing verified is left to fall back to (one bad
    # checkpoint falls back to the previous one: tests/test_reliability.py).
    for step_dir in (d for d in os.listdir(os.path.join(out, "checkpoints")) if d.isdigit()):
        for root, _, files in os.walk(os.path.join(out, "checkpoints", step_dir)):
            for f in files:
                path = os.path.join(root, f)
                if os.path.getsize(path) > 0 and f != "jaxmbrl_checksum.json":
                    with open(path, "r+b") as fh:
                        fh.truncate(os.path.getsize(path) // 2)
    before = _snapshot(out)
    code = _cli("train", "pets", "--preset", "tiny", "--set", "num_iterations=5", "steps_per_iteration=10",
                "--seeds", "2", "--out", out, "--resume", "--no-progress")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "corrupt or truncated" in err, err
    assert "no verified checkpoint is left" in err
    assert _snapshot(out) == before


def _subprocess_env(**extra):
    env = dict(os.environ, **extra)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


SHARDED_SCRIPT = r"""
import json, sys, jax, numpy as np
from jaxmbrl import run
from jaxmbrl.algorithms import pets
cfg = pets.Config.tiny(num_iterations=3, steps_per_iteration=10)
points = [cfg.hparams()._replace(planner_alpha=a) for a in (0.0, 0.5)]
res = run.run("pets", cfg, points, sys.argv[1], run.RunOptions(seeds=2, progress=False))
leaf = jax.tree.leaves(res.state.model.params)[0]
print(json.dumps({"devices": len(leaf.sharding.device_set), "count": jax.device_count(),
                  "returns": [r["planned_return"] for r in res.rows]}))
"""


# Two subprocesses that each compile PETS (one of them partitioned over 4 devices): ~50 s,
# the suite's largest single test, so it is `slow` (`make test-slow` runs it).
@pytest.mark.slow
def test_sweep_is_sharded_over_four_devices_and_matches_one_device(tmp_path):
    results = {}
    for n in (4, 1):
        flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}"
        proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT, str(tmp_path / f"d{n}")], capture_output=True,
                              text=True, env=_subprocess_env(XLA_FLAGS=flags, JAX_PLATFORMS="cpu"), timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results[4]["count"] == 4 and results[4]["devices"] == 4
    assert results[1]["devices"] == 1
    np.testing.assert_allclose(
        np.array(results[4]["returns"], float), np.array(results[1]["returns"], float), rtol=1e-5
    )


def test_sigterm_leaves_a_loadable_checkpoint_and_resume_finishes(tmp_path):
    out = str(tmp_path / "killed")
    argv = [sys.executable, "-m", "jaxmbrl", "train", "pets", "--preset", "tiny", "--set", "num_iterations=40",
            "steps_per_iteration=10", "--out", out, "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_subprocess_env())
    ckpt = os.path.join(out, "checkpoints")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if os.path.isdir(ckpt) and any(d.isdigit() for d in os.listdir(ckpt)):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode in (0, 130), stderr[-2000:]
    assert "Traceback" not in stderr
    steps = [int(d) for d in os.listdir(ckpt) if d.isdigit()]
    assert steps
    cfg = pets.Config.tiny(num_iterations=40, steps_per_iteration=10)
    train = pets.make_train(cfg)
    template = jax.eval_shape(jax.vmap(train.init), run.batch_keys(0, 1, 1), run.batch_hparams([cfg.hparams()], 1))
    step, state = run._checkpoint.restore(ckpt, template)
    assert step == max(steps) and int(state.iteration[0]) == 1 + step


def test_cli_help_plot_envs_and_diagnose(straight_run, tmp_path, capsys):
    out, _ = straight_run
    with pytest.raises(SystemExit) as exc:
        _cli("--help")
    assert exc.value.code == 0 and "jaxmbrl train pets" in capsys.readouterr().out
    png = str(tmp_path / "curves.png")
    assert _cli("plot", out, "--out", png, "--metric", "step_reward") == 0 and os.path.getsize(png) > 0
    assert _cli("envs") == 0
    listing = capsys.readouterr().out
    assert "Pendulum-v1" in listing and "box(1)" in listing and "discrete(2)" in listing
    assert _cli("diagnose", out, "--horizon", "4", "--out", str(tmp_path / "err.png")) == 0
    table = capsys.readouterr().out
    errors = [float(line.split()[1]) for line in table.splitlines()[1:5]]
    assert len(errors) == 4 and all(np.isfinite(errors))
    assert _cli("diagnose", str(tmp_path)) == 2


# Dreamer's world model is diagnosed in tests/test_dreamer.py (its runner test), MuZero's in
# tests/test_muzero.py and PETS' ensemble above; deep Dyna's (a program of its own) is `slow`.
@pytest.mark.slow
@pytest.mark.parametrize("algo, sets", [("dyna", ["mode=deep", "num_iterations=1"])])
def test_diagnose_works_for_every_learned_model(algo, sets, tmp_path, capsys):
    out = str(tmp_path / algo)
    assert _cli("train", algo, "--preset", "tiny", "--no-progress", "--set", *sets, "--out", out) == 0
    assert _cli("diagnose", out, "--horizon", "3") == 0
    errors = [float(line.split()[1]) for line in capsys.readouterr().out.splitlines()[-4:-1]]
    assert len(errors) == 3 and all(np.isfinite(errors)) and all(e >= 0 for e in errors)
    assert _cli("diagnose", out, "--horizon", "0") == 2


def test_config_file_then_set_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("planner_horizon: 9\nplanner_particles: 3\nplanner_alpha: 0.25\n")
    algo, cfg, hp = run.resolve("pets", preset="tiny", file=str(path), overrides={"planner_horizon": "11"})
    assert cfg.planner_horizon == 11 and cfg.planner_particles == 3 and hp.planner_alpha == 0.25
    assert cfg.num_members == pets.Config.tiny().num_members


def test_optional_number_field_parses_a_number_or_none():
    _, cfg, _ = run.resolve("mbpo", preset="tiny", overrides={"target_entropy": "-0.05"})
    assert cfg.target_entropy == -0.05
    _, cfg, _ = run.resolve("mbpo", preset="tiny", overrides={"target_entropy": "none"})
    assert cfg.target_entropy is None
    with pytest.raises(run.UsageError, match="target_entropy='x' is not a valid number or none"):
        run.resolve("mbpo", preset="tiny", overrides={"target_entropy": "x"})


def test_sweep_cli_writes_summary_table_and_plot(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    code = _cli("sweep", "pets", "--preset", "tiny", "--set", "num_iterations=2", "steps_per_iteration=10",
                "--grid", "planner_alpha=0.0,0.5", "--seeds", "2", "--out", out, "--no-progress")
    assert code == 0
    table = open(os.path.join(out, "summary.md")).read().splitlines()
    assert len(table) == 2 + 2 and "planner_alpha=0.0" in table[2] and "planner_alpha=0.5" in table[3]
    assert os.path.getsize(os.path.join(out, "sweep.png")) > 0
    assert os.path.exists(os.path.join(out, "summary.csv"))
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert {(r["point"], r["seed"]) for r in rows} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_grid_over_a_static_field_is_one_program_per_value():
    algo, cfg, hp = run.resolve("pets", preset="tiny")
    static, swept = run._sweep.parse_grid("pets", algo, cfg, hp, {"planner_horizon": "3,5", "discount": "0.9,0.99",
                                                                  "model_hidden_sizes": "8,8;16"})
    assert static == {"planner_horizon": [3, 5], "model_hidden_sizes": [(8, 8), (16,)]} and swept == {"discount": [0.9, 0.99]}
    with pytest.raises(run.UsageError, match="not a valid int"):
        run._sweep.parse_grid("pets", algo, cfg, hp, {"planner_horizon": "3,x"})
