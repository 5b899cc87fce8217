"""`jaxmbrl render RUN --out episode.gif`: one episode of a run's latest checkpoint, animated.

The controller is the one the run evaluates with (`Train.policy`: SAC's mean action, the
MPC planner, the greedy search), replayed for one episode in one fresh env as a single
compiled `lax.scan`. Frames come from gymnax's own renderers (classic control, MinAtar),
Brax's MuJoCo renderer (needs an OpenGL context: EGL on a headless machine), or, for any
other env, a plain matplotlib picture of the observation.
"""
from __future__ import annotations

import math
import os
from typing import Any, List, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxmbrl.run._config import UsageError

# gymnax's Visualizer draws these (gymnax.visualize.visualizer); its other envs are not
# registered here.
GYMNAX_DRAWN = ("Acrobot-v1", "CartPole-v1", "Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0",
                "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar",
                "SpaceInvaders-MinAtar")
# Beyond this many frames an episode is subsampled, so a 1,000-step Brax episode stays a
# GIF of a few MB.
MAX_FRAMES = 250


class Episode(NamedTuple):
    """One replayed episode, on the host: T steps up to and including the ending one."""

    env_states: Any  # [T, ...] the state each action was taken in
    obs: np.ndarray  # [T, *obs_shape]
    reward: np.ndarray  # [T] float32
    terminated: bool  # the episode ended by termination (not truncation or the step cap)


def play_episode(train, state, env, env_params, key, num_steps: int) -> Episode:
    """Runs `train.policy(state, 1)` in one env from a reset for up to `num_steps` steps.

    `state` is one run's State (no batch axis). One compiled scan of `num_steps` steps;
    what follows the first episode's end is cut off on the host.
    """
    from jaxmbrl import envs

    def play(state, key):
        act, policy_state = train.policy(state, 1)
        k_reset, k_scan = jax.random.split(key)
        obs, env_state = envs.batch_reset(env, env_params, k_reset, 1)

        def body(carry, k):
            obs, env_state, policy_state, is_first = carry
            k_act, k_env = jax.random.split(k)
            action, policy_state = act(k_act, obs, policy_state, is_first)
            transition, next_obs, next_state = envs.batch_step(env, env_params, k_env, env_state, obs, action)
            done = transition.terminated | transition.truncated
            out = (env_state, obs, transition.reward, transition.terminated, done)
            return (next_obs, next_state, policy_state, done), out

        carry = (obs, env_state, policy_state, jnp.ones((1,), jnp.bool_))
        _, out = jax.lax.scan(body, carry, jax.random.split(k_scan, num_steps))
        return jax.tree.map(lambda x: x[:, 0], out)  # drop the env axis

    env_states, obs, reward, terminated, done = jax.device_get(jax.jit(play)(state, key))
    ended = np.flatnonzero(done)
    length = int(ended[0]) + 1 if ended.size else num_steps
    cut = lambda x: np.asarray(x)[:length]  # noqa: E731
    return Episode(jax.tree.map(cut, env_states), cut(obs), cut(reward).astype(np.float32),
                   bool(ended.size and terminated[length - 1]))


def frame_indices(length: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """Every k-th step (k the smallest that keeps at most `max_frames`), the last one kept."""
    stride = max(1, math.ceil(length / max_frames))
    idx = np.arange(0, length, stride)
    return idx if idx[-1] == length - 1 else np.append(idx, length - 1)


def _pick(tree, idx):
    return [jax.tree.map(lambda x: x[i], tree) for i in idx]


def _gymnax_gif(env, env_params, episode: Episode, idx, out: str) -> None:
    """MinAtar through gymnax's matplotlib Visualizer."""
    from gymnax.visualize import Visualizer

    returns = np.cumsum(episode.reward)[idx]
    Visualizer(env, env_params, _pick(episode.env_states, idx), returns).animate(out)


def _classic_frames(env, env_params, episode: Episode, idx) -> List[np.ndarray]:
    """Classic control through gymnax's gymnasium adapter, one gymnasium env for every frame
    (gymnax's own `render_gym_frame` builds a new one per frame: ~0.3 s each)."""
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # pygame: no sound card nor display wanted
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import gymnasium
    from gymnax.visualize import vis_gym

    gym_env = gymnasium.make(env.name, render_mode="rgb_array")
    try:
        gym_env.reset(seed=0)
        unwrapped = gym_env.unwrapped
        vis_gym.set_gym_params(unwrapped, env.name, env_params)
        frames = []
        for state in _pick(episode.env_states, idx):
            unwrapped.state = vis_gym.get_gym_state(state, env.name)
            if env.name == "Pendulum-v1":  # gymnasium draws the applied torque's arrow
                unwrapped.last_u = np.asarray(state.last_u, dtype=np.float64)
            frames.append(np.asarray(gym_env.render()))
    finally:
        gym_env.close()
    return frames


def _brax_frames(env, episode: Episode, idx) -> List[np.ndarray]:
    from brax.io import image

    pipeline = [s.brax_state.pipeline_state for s in _pick(episode.env_states, idx)]
    return [np.asarray(f) for f in image.render_array(env.brax_env.sys, pipeline, height=240, width=320)]


def _plain_frames(name: str, episode: Episode, idx) -> List[np.ndarray]:
    """The observation drawn as bars (or as an image when it is one), step by step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs = episode.obs.astype(np.float32)
    image = obs.ndim in (3, 4) and obs.shape[1] > 2 and obs.shape[2] > 2
    flat = obs.reshape(obs.shape[0], -1)[:, :64]
    bound = max(float(np.abs(flat).max()), 1e-6)
    returns = np.cumsum(episode.reward)
    frames = []
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=80)
    for i in idx:
        ax.clear()
        if image:
            pic = obs[i] if obs.ndim == 3 else obs[i].max(-1)
            ax.imshow(pic, vmin=0.0, vmax=max(float(obs.max()), 1e-6))
            ax.set_axis_off()
        else:
            ax.bar(np.arange(flat.shape[1]), flat[i], color="tab:blue")
            ax.set_ylim(-bound, bound)
            ax.set_xlabel("observation dim")
        ax.set_title(f"{name}: step {i + 1:4d}, return {returns[i]:8.2f}", fontsize=10)
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return frames


def _write_gif(frames: List[np.ndarray], out: str, fps: float) -> None:
    from PIL import Image

    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(out, save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0)


def render(run_dir: str, out: str, member: int = 0, seed: int = 0, max_steps: Optional[int] = None,
           renderer: str = "auto", fps: float = 20.0) -> dict:
    """Replays batch member `member` of the run's latest checkpoint for one episode into a GIF.

    Args:
      renderer: "auto" (gymnax's where it draws the env and pygame is installed, else
        Brax's, else "plain"), "gymnax", "brax" or "plain".
      max_steps: a cap on the episode's steps (default the env's episode length).
    Returns:
      {"out", "steps", "return", "terminated", "renderer", "member", "iteration", "env_id"}.
    """
    if not str(out).lower().endswith(".gif"):
        raise UsageError(f"render writes a GIF; give --out a name ending in .gif, got {out!r}.")
    if renderer not in ("auto", "gymnax", "brax", "plain"):
        raise UsageError(f"--renderer {renderer!r} is unknown; choose auto, gymnax, brax or plain.")
    # Brax draws with MuJoCo, whose OpenGL context on a machine without a display is EGL;
    # this must be set before mujoco is first imported (when the Brax env is built).
    os.environ.setdefault("MUJOCO_GL", "egl")
    from jaxmbrl.algorithms._contract import resolve_env
    from jaxmbrl.run._diagnose import load_state

    algo_name, config, train, state, meta = load_state(run_dir)
    batch = len(meta["points"]) * meta["seeds"]
    if isinstance(member, bool) or not isinstance(member, int) or not 0 <= member < batch:
        raise UsageError(f"--member must be one of the run's {batch} runs, 0..{batch - 1}; got {member!r}.")
    if getattr(train, "policy", None) is None:
        raise UsageError(f"the {algo_name} algorithm exposes no Train.policy to replay; render needs one.")
    env, env_params, spec = resolve_env(config)
    limit = max_steps or spec.max_steps
    if not isinstance(limit, int) or limit < 1:
        raise UsageError(f"{config.env_id} has no episode length; pass --max-steps N (N >= 1).")
    name = getattr(env, "name", config.env_id)
    _check_renderer(renderer, env, name)
    one = jax.tree.map(lambda x: x[member], state)
    episode = play_episode(train, one, env, env_params, jax.random.PRNGKey(seed), limit)
    if not np.isfinite(episode.reward).all():
        bad = int(np.flatnonzero(~np.isfinite(episode.reward))[0])
        raise UsageError(f"the replayed episode's reward is not finite (NaN/inf) from step {bad + 1}: the "
                         f"checkpoint of member {member} diverged; nothing was written.")
    idx = frame_indices(len(episode.reward))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    used = _draw(renderer, env, env_params, name, episode, idx, out, fps)
    return {"out": out, "steps": int(len(episode.reward)), "return": float(episode.reward.sum()),
            "terminated": episode.terminated, "renderer": used, "member": member,
            "iteration": int(one.iteration), "env_id": config.env_id}


def _has_pygame() -> bool:
    import importlib.util

    return importlib.util.find_spec("pygame") is not None


def _check_renderer(renderer, env, name) -> None:
    if renderer == "gymnax" and name not in GYMNAX_DRAWN:
        raise UsageError(f"gymnax has no renderer for {name}; use --renderer plain (or auto).")
    if renderer == "brax" and not hasattr(env, "brax_env"):
        raise UsageError(f"{name} is not a Brax env; use --renderer plain (or auto).")
    if renderer == "gymnax" and not name.endswith("MinAtar") and not _has_pygame():
        raise UsageError("gymnax draws classic control with pygame, which is not installed; "
                         "pip install 'jaxmbrl[render]' (or use --renderer plain).")


def _draw(renderer, env, env_params, name, episode, idx, out, fps) -> str:
    drawn_by_gymnax = name in GYMNAX_DRAWN
    is_brax = hasattr(env, "brax_env")
    tmp = out + ".part.gif"  # written beside and renamed: never a half-written GIF at `out`
    if renderer in ("auto", "gymnax") and drawn_by_gymnax and name.endswith("MinAtar"):
        _gymnax_gif(env, env_params, episode, idx, tmp)
        used = "gymnax"
    elif renderer in ("auto", "gymnax") and drawn_by_gymnax and _has_pygame():
        _write_gif(_classic_frames(env, env_params, episode, idx), tmp, fps)
        used = "gymnax"
    elif renderer in ("auto", "brax") and is_brax:
        try:
            frames = _brax_frames(env, episode, idx)
        except Exception as err:  # noqa: BLE001 - no OpenGL here: MuJoCo raises its own types
            if renderer == "brax":
                raise UsageError(f"Brax's renderer failed ({str(err).splitlines()[0][:120]}); it needs an "
                                 f"OpenGL context (MUJOCO_GL=egl or osmesa); or use --renderer plain.") from None
            frames, used = _plain_frames(name, episode, idx), "plain"
        else:
            used = "brax"
        _write_gif(frames, tmp, fps)
    else:
        _write_gif(_plain_frames(name, episode, idx), tmp, fps)
        used = "plain"
    os.replace(tmp, out)
    return used
