"""`jaxmbrl render`: a run's checkpoint replayed for one episode into a GIF."""
import importlib.util
import os

import jax
import numpy as np
import pytest

from jaxmbrl import cli, envs
from jaxmbrl.algorithms import _registry
from jaxmbrl.algorithms._contract import evaluate, resolve_env
from jaxmbrl.run import _render
from jaxmbrl.run._diagnose import load_state

pytestmark = pytest.mark.xdist_group("render")
PIL = pytest.importorskip("PIL.Image")


def _cli(*argv):
    return cli.main(list(argv))


def _frames(path):
    """(frames shown, size): Pillow merges identical consecutive frames into one that is
    shown longer, so frames are counted by duration (1,000 / 20 fps = 50 ms each)."""
    from PIL import ImageSequence

    with PIL.open(path) as gif:
        return sum(f.info["duration"] for f in ImageSequence.Iterator(gif)) // 50, gif.size


@pytest.fixture(scope="module")
def pets_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("render") / "pets")
    assert _cli("train", "pets", "--preset", "tiny", "--env", "Pendulum-v1", "--seeds", "2", "--no-progress",
                "--plot-every", "-1", "--set", "num_iterations=2", "steps_per_iteration=10", "--out", out) == 0
    return out


@pytest.mark.skipif(importlib.util.find_spec("pygame") is None, reason="gymnax draws classic control with pygame")
def test_render_replays_the_evaluation_controller_into_a_gif(pets_run, tmp_path, capsys):
    gif = str(tmp_path / "ep.gif")
    assert _cli("render", pets_run, "--out", gif, "--member", "1", "--seed", "3") == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {gif}: Pendulum-v1, 200 steps") and "gymnax renderer" in said
    frames, size = _frames(gif)
    assert frames == 200 and size[0] >= 100  # Pendulum's 200 steps, one frame each
    assert not os.path.exists(gif + ".part.gif")
    # The replayed return is the one `evaluate` measures for that member and key: the
    # same controller, the same key schedule.
    _, config, train, state, _ = load_state(pets_run)
    one = jax.tree.map(lambda x: x[1], state)
    env, env_params, spec = resolve_env(config)
    expected = jax.jit(lambda s, k: evaluate(env, env_params, k, *train.policy(s, 1), 1, spec.max_steps))(
        one, jax.random.PRNGKey(3))
    replayed = float(said.split("return ")[1].split(" ")[0])
    assert replayed == pytest.approx(float(expected), abs=0.06)


def test_render_refuses_bad_input_with_one_line_and_writes_nothing(pets_run, tmp_path, capsys):
    gif = str(tmp_path / "never.gif")
    cases = [
        ((str(tmp_path), "--out", gif), "not a jaxmbrl run folder"),
        ((pets_run, "--out", str(tmp_path / "ep.mp4")), "ending in .gif"),
        ((pets_run, "--out", gif, "--member", "2"), "--member must be one of the run's 2 runs"),
        ((pets_run, "--out", gif, "--max-steps", "0"), "--max-steps must be >= 1"),
        ((pets_run, "--out", gif, "--renderer", "brax"), "is not a Brax env"),
    ]
    for argv, message in cases:
        assert _cli("render", *argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not os.listdir(tmp_path)


def test_a_diverged_episode_is_said_and_nothing_is_written(pets_run, tmp_path, capsys, monkeypatch):
    real = _render.play_episode

    def diverged(*args, **kwargs):
        episode = real(*args, **kwargs)
        return episode._replace(reward=np.where(np.arange(len(episode.reward)) >= 7, np.nan, episode.reward))

    monkeypatch.setattr(_render, "play_episode", diverged)
    gif = str(tmp_path / "nan.gif")
    assert _cli("render", pets_run, "--out", gif, "--max-steps", "20") == 2
    err = capsys.readouterr().err
    assert "not finite (NaN/inf) from step 8" in err and len(err.strip().splitlines()) == 1
    assert not os.listdir(tmp_path)


def test_plain_renderer_draws_any_env(tmp_path, capsys):
    # Tabular Dyna on the Dyna Maze: an env no library draws, one-hot observations.
    out = str(tmp_path / "dyna")
    assert _cli("train", "dyna", "--preset", "tiny", "--env", "DynaMaze", "--no-progress", "--plot-every", "-1",
                "--set", "num_iterations=1", "steps_per_iteration=50", "--out", out) == 0
    gif = str(tmp_path / "maze.gif")
    assert _cli("render", out, "--out", gif, "--max-steps", "40") == 0
    said = capsys.readouterr().out.splitlines()[-1]
    steps = int(said.split(", ")[1].split()[0])
    assert "plain renderer" in said and 1 <= steps <= 40
    frames, _ = _frames(gif)
    assert frames == len(_render.frame_indices(steps))


def test_frame_indices_keep_the_last_step_and_at_most_the_cap():
    assert _render.frame_indices(5).tolist() == [0, 1, 2, 3, 4]
    idx = _render.frame_indices(1000, max_frames=250)
    assert idx[0] == 0 and idx[-1] == 999 and len(idx) <= 251 and np.all(np.diff(idx) > 0)
    assert _render.frame_indices(1001, max_frames=250)[-1] == 1000


@pytest.mark.parametrize("name", _registry.algorithm_names())
def test_every_algorithm_exposes_the_policy_its_evaluation_uses(name):
    """`Train.policy(state, n)` gives `evaluate` a controller for n envs (traced, not run)."""
    algo = _registry.load_algorithm(name)
    config = algo.Config.tiny()
    train = algo.make_train(config)
    env, env_params, spec = resolve_env(config)
    hp = config.hparams()
    key = jax.random.PRNGKey(0)

    def episode(key):
        state = train.init(key, hp)
        act, policy_state = train.policy(state, 3)
        obs, _ = envs.batch_reset(env, env_params, key, 3)
        action, _ = act(key, obs, policy_state, jax.numpy.ones((3,), bool))
        return action, evaluate(env, env_params, key, act, policy_state, 3, 5)

    action, ret = jax.eval_shape(episode, key)
    assert action.shape == (3,) + spec.action_shape and ret.shape == ()


@pytest.mark.slow
def test_brax_run_renders_with_mujoco_or_falls_back_to_plain(tmp_path, capsys):
    pytest.importorskip("brax")
    out = str(tmp_path / "brax")
    assert _cli("train", "mbpo", "--preset", "tiny", "--env", "brax/inverted_pendulum", "--no-progress",
                "--plot-every", "-1", "--set", 'env_kwargs={"backend": "spring"}', "--out", out) == 0
    gif = str(tmp_path / "ip.gif")
    assert _cli("render", out, "--out", gif) == 0
    said = capsys.readouterr().out.splitlines()[-1]
    steps = int(said.split(", ")[1].split()[0])
    # MuJoCo draws through EGL where the machine has it; elsewhere the plain picture.
    assert ("brax renderer" in said or "plain renderer" in said) and _frames(gif)[0] == len(
        _render.frame_indices(steps))
