"""Faults a run must survive or refuse in one line (issue 12, docs/RELIABILITY.md)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxmbrl import cli, run
from jaxmbrl.run import _files, _runner, _sweep

SETS = ["num_iterations=3", "steps_per_iteration=10"]


def _cli(*argv):
    return cli.main(list(argv))


def _train(out, *extra):
    return _cli("train", "pets", "--preset", "tiny", "--no-progress", "--set", *SETS, "--out", str(out), *extra)


def _one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("jaxmbrl: error")]
    assert len(err.splitlines()) == 1 and len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def _snapshot(folder):
    return {os.path.relpath(os.path.join(r, f), folder): open(os.path.join(r, f), "rb").read()
            for r, _, files in os.walk(folder) for f in files if f != _files.LOCK_NAME}


# The module fixture below is built once: `make test` (--dist loadgroup) keeps this
# file's tests on one worker.
pytestmark = pytest.mark.xdist_group("reliability")


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished tiny run (3 iterations: warm-up + 2 chunks, checkpoints 1 and 2)."""
    out = tmp_path_factory.mktemp("rel") / "done"
    assert _train(out) == 0
    return str(out)


@pytest.fixture
def copy(done, tmp_path):
    out = str(tmp_path / "copy")
    shutil.copytree(done, out)
    return out


def _xor(path, n=400):
    data = bytearray(open(path, "rb").read())
    start = len(data) // 3
    for i in range(start, min(len(data), start + n)):
        data[i] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_flipped_bytes_fall_back_to_the_previous_checkpoint(done, copy, capsys):
    latest = os.path.join(copy, "checkpoints", "2", "default")
    files = [os.path.join(r, f) for r, _, fs in os.walk(latest) for f in fs]
    _xor(max(files, key=os.path.getsize))  # the reproduction: the largest file
    data = [f for f in files if os.sep + "d" + os.sep in f and "ocdbt.process" not in f]
    for f in data:  # and the arrays themselves
        _xor(f)
    assert _train(copy, "--resume") == 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checkpoints/2 is corrupt" in err and "from step 1" in err, err
    # The step was redone from checkpoint 1: the same log as the run never interrupted.
    assert open(os.path.join(copy, "metrics.jsonl")).read() == open(os.path.join(done, "metrics.jsonl")).read()
    assert os.path.isdir(os.path.join(copy, "checkpoints_rejected", "2"))


def test_arrays_that_do_not_match_their_checksum_are_refused(copy, capsys):
    for step in ("1", "2"):
        path = os.path.join(copy, "checkpoints", step, "jaxmbrl_checksum.json")
        record = json.load(open(path))
        record["sha256"] = "0" * 64
        json.dump(record, open(path, "w"))
    before = _snapshot(copy)
    assert _train(copy, "--resume") == 2
    _one_line_error(capsys, "do not match their checksum", "no verified checkpoint is left")
    assert _snapshot(copy) == before


def _env():
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_recovered(tmp_path, capsys):
    out = str(tmp_path / "shared")
    argv = [sys.executable, "-m", "jaxmbrl", "train", "pets", "--preset", "tiny", "--no-progress",
            "--set", *SETS, "--out", out]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        lock = os.path.join(out, _files.LOCK_NAME)
        deadline = time.time() + 120
        while time.time() < deadline and not (os.path.exists(lock) and open(lock).read().strip()):
            assert first.poll() is None
            time.sleep(0.1)
        first.send_signal(signal.SIGSTOP)  # it holds the lock, frozen, for as long as we need
        second = subprocess.run(argv + ["--resume"], capture_output=True, text=True, env=_env(), timeout=120)
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip() == second.stderr.strip().splitlines()[0]
        assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr
    finally:
        first.kill()  # kill -9 mid-run: the kernel drops its lock
        first.wait()
    assert open(lock).read().strip() == str(first.pid)  # a stale lock file is left behind...
    assert _train(out, "--resume") == 0  # ...and does not block the next writer
    assert open(lock).read().strip() == str(os.getpid())
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["iteration"] for r in rows] == [0, 1, 2]


def test_divergence_stops_the_run_with_status_3(tmp_path, capsys):
    out = str(tmp_path / "nan")
    code = _cli("train", "pets", "--preset", "tiny", "--no-progress", "--set", "model_learning_rate=1e3",
                "num_iterations=4", "--out", out)
    err = _one_line_error(capsys, "diverged: seed 0, point 0, at iteration 1", "model_train_loss")
    assert code == 3, err
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["status"] == "diverged" and summary["completed"] is False and "model_train_loss" in summary["error"]
    assert not os.path.exists(os.path.join(out, "checkpoints"))  # the diverged state is never saved
    last = json.loads(open(os.path.join(out, "metrics.jsonl")).read().splitlines()[-1])
    assert last["model_train_loss"] in ("inf", "nan")  # measured, not null ("not measured")
    assert last["episode_return"] is None  # no episode ended: still "not measured"


def test_divergence_in_the_state_names_the_leaf():
    flags = np.zeros((3, 4), bool)
    flags[1, 2] = True
    metrics = {"iteration": np.array([[5, 5, 5, 5]]), "model_train_loss": np.array([[np.nan, 1.0, 2.0, 3.0]]),
               "episode_return": np.full((1, 4), np.nan)}
    members, first = _runner._divergence(flags, ["a", "model.params.w", "c"], metrics, batch=4)
    assert members == {2} and "model.params.w" in first[2]
    message = _runner._divergence_message(first, 2, ["lr=1", "lr=2"], 5, 0, 4)
    assert "seed 0, point 1 (lr=2), at iteration 5" in message and "checkpoints/4" in message
    members, first = _runner._divergence(np.zeros((3, 4), bool), ["a", "b", "c"], metrics, batch=4)
    assert first is None  # a NaN loss alone is "not fitted yet", not divergence


def test_a_torn_last_line_is_dropped_by_resume_and_plot(copy, capsys, tmp_path):
    jsonl = os.path.join(copy, "metrics.jsonl")
    intact = open(jsonl).read()
    with open(jsonl, "a") as f:
        f.write('{"point": 0, "seed": 0, "iterat')
    png = str(tmp_path / "c.png")
    assert _cli("plot", copy, "--out", png) == 0 and os.path.getsize(png) > 0
    assert "torn last line" in capsys.readouterr().err
    assert _train(copy, "--resume") == 0
    assert "torn last line" in capsys.readouterr().err
    assert open(jsonl).read() == intact
    with open(jsonl, "w") as f:
        f.write(intact.replace("\n", "\nnot json\n", 1))
    assert _cli("plot", copy, "--out", png) == 2
    _one_line_error(capsys, "line 2 is not a JSON row")


def test_a_folder_without_a_checkpoint_restarts_afresh(done, copy, capsys):
    shutil.rmtree(os.path.join(copy, "checkpoints"))
    assert _train(copy) == 2
    _one_line_error(capsys, "--resume starts it afresh")
    assert _train(copy, "--resume") == 0
    assert "no checkpoint yet: starting it afresh" in capsys.readouterr().err
    assert open(os.path.join(copy, "metrics.jsonl")).read() == open(os.path.join(done, "metrics.jsonl")).read()


def test_a_run_killed_during_its_first_checkpoint_restarts_afresh(done, copy, capsys):
    shutil.rmtree(os.path.join(copy, "checkpoints", "2"))
    os.remove(os.path.join(copy, "checkpoints", "1", "jaxmbrl_checksum.json"))  # killed before the checksum
    assert _train(copy, "--resume") == 0
    assert "starting it afresh" in capsys.readouterr().err
    assert open(os.path.join(copy, "metrics.jsonl")).read() == open(os.path.join(done, "metrics.jsonl")).read()
    assert os.listdir(os.path.join(copy, "checkpoints_rejected")) == ["1"]


def test_optional_dependencies_are_checked_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    out = tmp_path / "tb"
    assert _train(out, "--tensorboard") == 2
    _one_line_error(capsys, "tensorboardX")
    assert not out.exists()


def test_resuming_a_finished_run_keeps_its_timings(copy, capsys):
    before = json.load(open(os.path.join(copy, "summary.json")))
    assert _train(copy, "--resume") == 0
    after = json.load(open(os.path.join(copy, "summary.json")))
    assert {k: after[k] for k in before} == before and len(after["resumes"]) == 1


def test_resuming_after_metrics_were_deleted_is_refused(copy, capsys):
    os.remove(os.path.join(copy, "metrics.jsonl"))
    before = _snapshot(copy)
    assert _train(copy, "--resume") == 2
    _one_line_error(capsys, "metrics were lost")
    assert _snapshot(copy) == before


def test_user_files_are_never_overwritten(tmp_path, capsys):
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    assert _train(mine) == 2
    _one_line_error(capsys, "config.json was not written by jaxmbrl")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("mine")
    assert _train(notes) == 2
    _one_line_error(capsys, "not a jaxmbrl run", "thesis.tex")
    assert os.listdir(notes) == ["thesis.tex"]
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "config.json").symlink_to(mine / "config.json")
    assert _train(linked) == 2
    _one_line_error(capsys, "symbolic link")
    assert (mine / "config.json").read_text() == '{"mine": true}' and sorted(os.listdir(mine)) == ["config.json"]


def test_bad_input_is_one_line_and_exit_2(done, copy, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)))
    listed = tmp_path / "listed"
    shutil.copytree(done, listed)
    (listed / "config.json").write_text("[1, 2]")
    nulled = tmp_path / "nulled"
    shutil.copytree(done, nulled)
    meta = json.load(open(nulled / "config.json"))
    (nulled / "config.json").write_text(json.dumps({**meta, "config": None}))
    nan_field = tmp_path / "nan_field"
    shutil.copytree(done, nan_field)
    meta["hparams"]["model_learning_rate"] = float("nan")
    (nan_field / "config.json").write_text(json.dumps(meta))
    train = ["train", "pets", "--preset", "tiny", "--no-progress"]
    cases = [
        (train + ["--out", str(a_file)], "is a file"),
        (train + ["--out", str(a_file / "sub")], "which is a file"),
        (train + ["--config", str(tmp_path)], "is not a file"),
        (train + ["--config", str(binary)], "not UTF-8"),
        (train + ["--set", "num_iterations=10000000000000000000000"], "out of range"),
        (train + ["--set", "max_holdout=-5"], "max_holdout"),
        (train + ["--set", "planner_horizon=3", "planner_horizon=4"], "given twice"),
        (train + ["--set", "planner_horizon=" + "9" * 5000], "..."),
        (train + ["--set", *SETS, "--out", str(listed), "--resume"], "not written by jaxmbrl"),
        (train + ["--set", *SETS, "--out", str(nulled), "--resume"], "not written by jaxmbrl"),
        (train + ["--set", *SETS, "--out", str(nan_field), "--resume"], "model_learning_rate (nan -> 0.001"),
        (train + ["--out", str(tmp_path / "missing"), "--resume"], "does not exist"),
        (train + ["--seeds", "1000000000", "--out", str(tmp_path / "huge")], "GiB"),
        (["plot", done, "--out", str(tmp_path / "x.txt")], "cannot write .txt"),
        (["plot", done, "--metric", "bogus"], "model_train_loss"),
        (["sweep", "pets", "--preset", "tiny", "--grid", "planner_horizon=3,0", "--out", str(tmp_path / "s")],
         "planner_horizon"),
    ]
    for argv, fragment in cases:
        assert _cli(*argv) == 2, argv
        err = _one_line_error(capsys, fragment)
        assert len(err) < 600, err
    for never in ("missing", "huge", "s", "sub"):
        assert not (tmp_path / never).exists()


def test_plot_into_a_folder_says_where_and_names_mixed_algorithms(done, tmp_path, capsys):
    assert _cli("plot", done, "--out", str(tmp_path)) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'learning_curves.png'}"
    other = tmp_path / "other"
    shutil.copytree(done, other)
    meta = json.load(open(other / "config.json"))
    (other / "config.json").write_text(json.dumps({**meta, "algorithm": "mbpo"}))
    import matplotlib.pyplot as plt

    titles = []
    monkey = plt.Axes.set_title
    plt.Axes.set_title = lambda self, t, *a, **k: titles.append(t) or monkey(self, t, *a, **k)
    try:
        assert _cli("plot", done, str(other), "--out", str(tmp_path / "mixed.png"), "--metric", "step_reward") == 0
    finally:
        plt.Axes.set_title = monkey
    assert "mbpo vs pets" in titles[-1]


def test_a_stop_on_the_last_chunk_still_completes(copy, monkeypatch, capsys):
    original = _runner._StopFlag.__enter__

    def stopped(self):
        original(self)
        self.requested = "SIGTERM"  # as if it came during the chunk
        return self

    monkeypatch.setattr(_runner._StopFlag, "__enter__", stopped)
    shutil.rmtree(os.path.join(copy, "checkpoints", "2"))  # one chunk left: the last
    assert _train(copy, "--resume") == 0
    assert capsys.readouterr().out.startswith("finished")
    assert json.load(open(os.path.join(copy, "summary.json")))["status"] == "completed"


def test_an_interrupted_sweep_stops_every_program_and_resumes(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(algo, cfg, points, out, options, point_labels=None):
        calls.append((cfg.planner_horizon, options.resume))
        os.makedirs(out, exist_ok=True)
        stop = len(calls) == 1
        rows = [{"point": p, "seed": 0, "iteration": 0, "env_steps": 10, "episode_return": 1.0}
                for p in range(len(points))]
        summary = {"status": "interrupted" if stop else "completed", "iterations": 1}
        return run.RunResult(out, None, rows, summary, not stop)

    monkeypatch.setattr(_sweep._runner, "run", fake_run)
    monkeypatch.setattr(_sweep._plots, "learning_curves", lambda *a, **k: None)
    out = str(tmp_path / "sweep")
    argv = ["sweep", "pets", "--preset", "tiny", "--no-progress", "--grid", "planner_horizon=3,5", "--out", out]
    assert _cli(*argv) == 130
    assert calls == [(3, False)]  # the second program never started
    table = json.load(open(os.path.join(out, "sweep_summary.json")))
    assert [r["status"] for r in table] == ["interrupted", "not run"]
    assert _cli(*argv, "--resume") == 0
    assert calls[1:] == [(3, True), (5, False)]  # the stopped one resumes, the other starts
    assert _cli(*argv) == 2  # without --resume: "already holds a run"


def test_rows_keep_not_measured_apart_from_non_finite():
    assert _files.encode_value(float("nan"), False) is None
    assert _files.encode_value(float("nan"), True) == "nan"
    assert _files.encode_value(float("-inf"), False) == "-inf"
    assert _files.encode_value(3.0, False) == 3
    assert np.isnan(_files.decode_value(None)) and np.isinf(_files.decode_value("inf"))


def test_a_second_signal_forces_an_exit(capsys):
    with _runner._StopFlag() as stop:
        stop._handle(signal.SIGINT, None)
        assert stop.requested == "SIGINT"
        # The next one gets the default action: the process dies at once.
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_DFL
    assert "again to force" in capsys.readouterr().err
