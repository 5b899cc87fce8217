import importlib

import pytest

import jaxmbrl

SUBPACKAGES = [
    "envs", "buffers", "models", "planning", "agents", "agents.dqn", "agents.sac", "algorithms",
    "algorithms.pets", "algorithms.dyna", "algorithms.mbpo", "algorithms.dreamer", "agents.actor_critic",
    "agents.returns", "testing", "run", "exploration", "algorithms.muzero", "algorithms.tdmpc2",
]


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_exported_name_exists(name):
    module = importlib.import_module(f"jaxmbrl.{name}")
    assert module.__all__, name
    for attr in module.__all__:
        assert hasattr(module, attr), f"jaxmbrl.{name}.{attr}"


def test_top_level_surface():
    assert isinstance(jaxmbrl.__version__, str)
    for attr in jaxmbrl.__all__:
        assert hasattr(jaxmbrl, attr)
    # The names DESIGN.md promises.
    assert callable(jaxmbrl.envs.make) and callable(jaxmbrl.envs.true_model)
    assert callable(jaxmbrl.models.make_ensemble) and callable(jaxmbrl.models.fit)
    assert callable(jaxmbrl.planning.cem) and callable(jaxmbrl.algorithms.pets.make_train)


def test_envs_surface():
    # The entry points algorithms and users share (issue "Open the house").
    for name in ["make", "resolve", "freeze_kwargs", "true_model", "example_transition", "known_termination",
                 "known_reward", "never_terminates", "register", "registered_ids", "reset", "batch_reset"]:
        assert name in jaxmbrl.envs.__all__ and callable(getattr(jaxmbrl.envs, name)), name


def test_lazy_top_level_names():
    assert set(jaxmbrl.__all__) <= set(dir(jaxmbrl))
    assert jaxmbrl.types.Transition is jaxmbrl.Transition
    with pytest.raises(AttributeError, match="no_such_name"):
        jaxmbrl.no_such_name  # noqa: B018
