"""The API reference builds without a warning and documents every public name."""
import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("mkdocs", reason="the docs test needs mkdocs (in the test extras)")
pytest.importorskip("mkdocstrings", reason="the docs test needs mkdocstrings (in the test extras)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.xdist_group("docs")


def _pages():
    """{API page: the modules it renders}, read from the pages' `::: module` lines."""
    folder = os.path.join(ROOT, "docs", "api")
    return {name: re.findall(r"^::: (\S+)", open(os.path.join(folder, name)).read(), re.M)
            for name in sorted(os.listdir(folder)) if name.endswith(".md")}


def _public_names(module_name):
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return  # a page may also render one object (`::: module.Name`)
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        # Modules get their own `:::` entry; constants and type aliases have no docstring of their own.
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield name, obj


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stderr


def test_the_reference_builds_without_warnings(site):
    _, log = site
    assert "WARNING" not in log, log


def test_every_public_module_has_a_page():
    rendered = {m for modules in _pages().values() for m in modules}
    for name in ("agents", "algorithms", "buffers", "envs", "exploration", "models", "planning", "run", "testing",
                 "types"):
        assert f"jaxmbrl.{name}" in rendered, name
    from jaxmbrl.algorithms import algorithm_names

    for algo in algorithm_names():
        assert f"jaxmbrl.algorithms.{algo}" in rendered, algo


def test_every_public_class_and_function_has_a_docstring_and_is_rendered(site):
    out, _ = site
    missing, unrendered = [], []
    for page, modules in _pages().items():
        html = open(os.path.join(out, "api", page[:-3], "index.html")).read()
        for module in modules:
            for name, obj in _public_names(module):
                doc = inspect.getdoc(obj) or ""
                # The docstrings namedtuple and dataclass generate ("Name(field, ...)") are no documentation.
                if not doc.strip() or inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
                    missing.append(f"{module}.{name}")
                elif f'id="{module}.{name}"' not in html and f'id="{obj.__module__}.{obj.__qualname__}"' not in html:
                    unrendered.append(f"{module}.{name}")
    assert not missing, f"public names without a docstring: {missing}"
    assert not unrendered, f"documented but not on their page: {unrendered}"
