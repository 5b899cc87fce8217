"""`import jaxmbrl` stays cheap: heavy dependencies load on first use, not at import.

Asserts the set of imported modules rather than wall time, so that it cannot flake on a
busy machine; scripts can time it with `python -X importtime -c "import jaxmbrl"`.
"""
import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("gymnax", "matplotlib", "seaborn", "scipy", "flax", "optax", "orbax", "jaxmbrl.algorithms")

_PROBE = textwrap.dedent(
    """
    import json, sys
    heavy = {heavy!r}
    loaded = lambda: sorted(m for m in heavy if m in sys.modules)
    out = {{}}
    import jaxmbrl
    out["jaxmbrl"] = loaded()
    out["jax_after_jaxmbrl"] = "jax" in sys.modules
    import jaxmbrl.envs
    out["envs"] = loaded()
    out["envs_names"] = all(hasattr(jaxmbrl.envs, n) for n in jaxmbrl.envs.__all__ if n != "DynaMaze")
    out["envs_names_loaded"] = loaded()
    env, _, spec = jaxmbrl.envs.make("DynaMaze")
    out["after_make"] = loaded()
    out["dyna_maze_lazy"] = isinstance(env, jaxmbrl.envs.DynaMaze) and spec.env_id == "DynaMaze"
    out["transition"] = jaxmbrl.Transition is jaxmbrl.types.Transition
    print(json.dumps(out))
    """
)


# The module fixture below is built once: `make test` (--dist loadgroup) keeps this
# file's tests on one worker.
pytestmark = pytest.mark.xdist_group("import_time")


@pytest.fixture(scope="module")
def probe():
    code = _PROBE.format(heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_jaxmbrl_loads_nothing_heavy(probe):
    assert probe["jaxmbrl"] == []
    # Not even jax: the command line's --help starts at once.
    assert probe["jax_after_jaxmbrl"] is False


def test_import_envs_does_not_load_gymnax(probe):
    assert probe["envs"] == []
    assert probe["envs_names"] and probe["envs_names_loaded"] == []


def test_first_make_loads_gymnax_and_the_lazy_names_work(probe):
    # Guards the assertions above: the probe does see gymnax once it is used.
    assert "gymnax" in probe["after_make"]
    assert probe["dyna_maze_lazy"] and probe["transition"]
