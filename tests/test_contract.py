"""The algorithm contract: user environments and models, sweepable planner floats,
range checks, the registry and the `fields` command."""
import dataclasses
import json
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import cli, envs, testing
from jaxmbrl.algorithms import _registry, dreamer, dyna, mbpo, muzero, pets, tdmpc2
from jaxmbrl.algorithms._contract import fields_of
from jaxmbrl.run import _checkpoint

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
sys.path.insert(0, os.path.abspath(EXAMPLES))
import my_env  # noqa: E402  (registers Heater-v0, as a user's module would)


def _finite(tree):
    return all(np.isfinite(np.asarray(x, np.float64)).all() for x in jax.tree.leaves(tree))


# --- user environments and models ------------------------------------------------------------


def test_unregistered_env_object_and_user_model_run_through_pets():
    env = my_env.Heater()
    spec = envs.resolve("Heater", {}, env=env)[2]
    model = testing.linear_model(spec, reward_fn=my_env.heater_reward)
    cfg = pets.Config.tiny(env_id="Heater", steps_per_iteration=10)
    with pytest.raises(ValueError, match="model= predicts its own"):
        pets.make_train(cfg, env=env, model=model, reward_fn=my_env.heater_reward)
    train = pets.make_train(cfg, env=env, model=model)
    assert train.spec.env_id == "Heater" and train.spec.obs_shape == (1,)
    state, metrics = jax.jit(train.run)(jax.random.PRNGKey(0), cfg.hparams())
    assert int(state.env_steps) == cfg.num_iterations * 10
    assert np.isfinite(np.asarray(metrics.planned_return[1:])).all()
    # The Heater is linear: the user's least-squares model, fitted by PETS, predicts it.
    data = jax.tree.map(lambda x: x[:30], state.buffer.data)
    predicted, _, _ = model.step(jax.random.PRNGKey(1), state.model, data.obs, data.action)
    np.testing.assert_allclose(predicted, data.next_obs, atol=1e-3)


def test_unregistered_env_pair_and_user_model_run_through_mbpo():
    env, params = my_env.Heater(), my_env.HeaterParams(max_steps_in_episode=8)
    spec = envs.resolve("", {}, env=(env, params))[2]
    assert spec.env_id == "Heater-v0" and spec.max_steps == 8
    cfg = mbpo.Config.tiny(env_id="")
    train = mbpo.make_train(cfg, env=(env, params), model=testing.linear_model(spec))
    state, metrics = jax.jit(train.run)(jax.random.PRNGKey(0), cfg.hparams())
    assert int(state.env_steps) == cfg.num_iterations * cfg.steps_per_iteration * cfg.num_envs
    assert int(metrics.model_buffer_size[-1]) > 0 and np.isfinite(np.asarray(metrics.eval_return[1:])).all()


# The env object path is the one PETS takes above; deep Dyna compiles a program of its own.
@pytest.mark.slow
def test_unregistered_env_object_runs_through_deep_dyna():
    from gymnax.environments.classic_control import CartPole

    cfg = dyna.Config.tiny(mode="deep", env_id="MyCartPole", env_kwargs={"max_steps_in_episode": 20})
    train = dyna.make_train(cfg, env=CartPole())
    assert train.spec.max_steps == 20
    state, metrics = jax.jit(train.run)(jax.random.PRNGKey(0), cfg.hparams())
    assert int(state.env_steps) == cfg.warmup_steps + cfg.num_iterations * cfg.steps_per_iteration
    # 20-step episodes: every iteration of 64 steps finishes some.
    assert (np.asarray(metrics.episodes) >= 3).all() and (np.asarray(metrics.episode_length) <= 20).all()


def test_non_string_env_id_names_the_fix():
    with pytest.raises(ValueError, match="env=obj"):
        pets.make_train(pets.Config.tiny(env_id=my_env.Heater()))


def test_env_kwargs_reach_the_env():
    cfg = pets.Config.tiny(env_kwargs={"max_steps_in_episode": 7})
    assert hash(cfg) == hash(pets.Config.tiny(env_kwargs={"max_steps_in_episode": 7}))
    assert pets.make_train(dataclasses.replace(cfg, steps_per_iteration=0)).spec.max_steps == 7


def test_bring_your_own_env_from_the_cli_with_env_kwargs(tmp_path, monkeypatch):
    monkeypatch.chdir(EXAMPLES)
    out = str(tmp_path / "heater")
    code = cli.main(["--import", "my_env", "train", "pets", "--env", "Heater-v0", "--preset", "tiny",
                     "--set", "num_iterations=2", "steps_per_iteration=10", 'env_kwargs={"max_steps_in_episode": 5}',
                     "--no-progress", "--out", out])
    assert code == 0
    meta = json.load(open(os.path.join(out, "config.json")))
    assert meta["config"]["env_kwargs"] == {"max_steps_in_episode": 5} and meta["config"]["env_id"] == "Heater-v0"
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert rows[-1]["env_steps"] == 20
    assert rows[-1]["episodes"] == 2  # two 5-step episodes in 10 steps: the kwargs reached the env
    assert cli.main(["--import", "no_such_module_xyz", "envs"]) == 2


# --- planner floats sweep in one program -------------------------------------------------------

# Each float of every planner, with the planner that reads it.
PLANNER_FLOATS = {
    "icem": ("planner_alpha", "planner_beta", "planner_gamma", "planner_keep_fraction", "discount"),
    "mppi": ("planner_temperature", "planner_noise_scale"),
}
SWEEP_VALUES = {
    "planner_alpha": (0.0, 0.3, 0.6), "planner_beta": (0.0, 1.0, 3.0), "planner_gamma": (1.0, 1.5, 4.0),
    "planner_keep_fraction": (0.0, 0.5, 1.0), "discount": (0.5, 0.9, 1.0),
    "planner_temperature": (0.1, 1.0, 10.0), "planner_noise_scale": (0.05, 0.25, 0.5),
}


def _sweep_each_field(train, hp, fields, result):
    """vmap(step) over 3 values of each field in turn: one compile, 3 distinct results each."""
    keys = jnp.stack([jax.random.PRNGKey(0)] * 3)
    init = jax.jit(jax.vmap(train.init))
    step = jax.jit(jax.vmap(train.step))
    for field in fields:
        batch = jax.tree.map(lambda x: jnp.full((3,), x, jnp.float32), hp)
        batch = batch._replace(**{field: jnp.asarray(SWEEP_VALUES[field], jnp.float32)})
        _, metrics = step(init(keys, batch))
        values = np.asarray(result(metrics))
        assert len(set(values.round(6).tolist())) == 3, (field, values)
    assert step._cache_size() == 1 and init._cache_size() == 1


# Every planner's floats sweep at the planner level (tests/test_planning.py); through PETS,
# mppi's case runs by default and iCEM's (a PETS program of its own) in the slow run.
@pytest.mark.parametrize("planner", [pytest.param("icem", marks=pytest.mark.slow), "mppi"])
def test_every_pets_planner_float_sweeps_in_one_program(planner):
    cfg = pets.Config.tiny(planner=planner, steps_per_iteration=5, planner_iterations=3, planner_samples=32)
    _sweep_each_field(pets.make_train(cfg), cfg.hparams(), PLANNER_FLOATS[planner],
                      lambda m: m.planned_return)


# Each case compiles a Dreamer; iCEM's fields also sweep through PETS above, so its Dreamer
# case is `slow` and mppi's keeps Dreamer's planner wiring in the default run.
@pytest.mark.parametrize("planner", [pytest.param("icem", marks=pytest.mark.slow), "mppi"])
def test_every_dreamer_planner_float_sweeps_in_one_program(planner):
    cfg = dreamer.Config.tiny(env_id="Pendulum-v1", controller=planner, steps_per_iteration=8, num_eval_episodes=1,
                              planner_iterations=3, planner_samples=16, planner_elites=4)
    fields = [f for f in PLANNER_FLOATS[planner] if f != "discount"]  # discount also moves the critic
    _sweep_each_field(dreamer.make_train(cfg), cfg.hparams(), fields, lambda m: m.episode_return)


# --- ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo, field, value", [
    (pets, "planner_alpha", 1.5), (pets, "model_learning_rate", float("nan")), (pets, "holdout_ratio", -1.0),
    (mbpo, "discount", 2.0), (mbpo, "model_weight_decay", float("inf")), (mbpo, "alpha_learning_rate", -1e-4),
    (dyna, "epsilon", -0.1),
    (dreamer, "planner_temperature", 0.0), (dreamer, "target_tau", 0.0),
])
def test_out_of_range_floats_are_refused_with_the_field_named(algo, field, value):
    cfg = algo.Config()
    with pytest.raises(ValueError, match=f"HParams.{field}="):
        cfg.validate_hparams(cfg.hparams()._replace(**{field: value}))
    batch = cfg.hparams()._replace(**{field: np.asarray([cfg.hparams()._asdict()[field], value])})
    with pytest.raises(ValueError, match=field):
        cfg.validate_hparams(batch)
    cfg.validate_hparams(cfg.hparams())  # the defaults are in range


def test_out_of_range_at_the_cli_is_one_line_exit_2(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert cli.main(["train", "pets", "--preset", "tiny", "--set", "planner_alpha=1.5", "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert "planner_alpha=1.5" in err and "[0, 1)" in err and len(err.splitlines()) == 1
    assert not os.path.exists(out)
    assert cli.main(["train", "pets", "--set", "random_iterations=2", "--out", out]) == 2
    assert "use warmup_iterations" in capsys.readouterr().err


# --- restore compiles nothing new -------------------------------------------------------------------


def test_a_restored_state_compiles_nothing_new(tmp_path):
    cfg = pets.Config.tiny(steps_per_iteration=5)
    train = pets.make_train(cfg)
    state = jax.jit(train.init)(jax.random.PRNGKey(0), cfg.hparams())
    assert not any(getattr(x, "weak_type", False) for x in jax.tree.leaves(state))
    step = jax.jit(train.step)
    state, _ = step(state)
    _checkpoint.save(str(tmp_path), 1, state)
    _, restored = _checkpoint.restore(str(tmp_path), jax.eval_shape(train.init, jax.random.PRNGKey(0), cfg.hparams()))
    after, _ = step(restored)
    after, _ = step(after)
    assert step._cache_size() == 1


# --- the registry and the fields command ------------------------------------------------------------


def test_fields_lists_static_and_sweepable(capsys):
    assert cli.main(["fields", "pets"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert lines["planner_horizon"][1:3] == ["static", "15"]
    assert lines["planner_alpha"][1:] == ["sweepable", "0.1", "[0,", "1)"]
    assert lines["model_learning_rate"][1:] == ["sweepable", "0.001", "(0,", "inf)"]
    for algo in (pets, mbpo, dyna, dreamer, muzero, tdmpc2):
        infos = fields_of(algo)
        swept = {f.name for f in infos if f.kind == "sweepable"}
        assert swept == set(algo.Config().hparams()._fields)
        assert all(f.range is not None for f in infos if f.kind == "sweepable"), algo.__name__


def test_the_registry_drives_envs_and_help(capsys):
    fake = types.ModuleType("fake_algo_for_test")
    fake.supports = lambda spec: "only Pendulum" if spec.env_id == "Pendulum-v1" else None
    sys.modules["fake_algo_for_test"] = fake
    _registry.register_algorithm("fakealgo", "fake_algo_for_test", "a test entry")
    try:
        assert cli.fitting_algorithms(envs.make("Pendulum-v1")[2])[-1] == ("fakealgo", "only Pendulum")
        assert all(name != "fakealgo" for name, _ in cli.fitting_algorithms(envs.make("CartPole-v1")[2]))
        assert "fakealgo" in cli.build_parser().format_help() or "fakealgo" in cli._algorithm_help()
    finally:
        _registry._REGISTRY.pop("fakealgo")
        sys.modules.pop("fake_algo_for_test")
    fits = dict(cli.fitting_algorithms(envs.make("CartPole-v1")[2]))
    assert set(fits) == {"pets", "dyna", "dreamer", "muzero"} and fits["dyna"] == ""
    assert dict(cli.fitting_algorithms(envs.make("FrozenLake-misc")[2]))["dyna"] == "mode=tabular"
