"""Runs over several processes (docs/SCALING.md): the flags, and 2 processes on localhost."""
import json
import os
import shutil

import pytest

from jaxmbrl import cli
from jaxmbrl.run import UsageError, _distributed
from jaxmbrl.testing import launch_local, process_env

pytestmark = pytest.mark.xdist_group("distributed")

TRAIN = ["train", "pets", "--preset", "tiny", "--no-progress", "--seeds", "4",
         "--set", "steps_per_iteration=10"]


@pytest.mark.parametrize("flags, fragment", [
    (("nohost", 2, 0), "not HOST:PORT"),
    (("node0:1234", None, 0), "needs --num-processes"),
    (("node0:1234", 2, 2), "must be in [0, --num-processes 2)"),
    ((None, 2, 0), "need --coordinator"),
])
def test_bad_process_flags_are_one_line_errors(flags, fragment, monkeypatch):
    for name in (_distributed.ENV_COORDINATOR, _distributed.ENV_NUM_PROCESSES, _distributed.ENV_PROCESS_ID):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        _distributed.settings_from(*flags)


def test_the_environment_stands_in_for_the_flags(monkeypatch):
    monkeypatch.setenv(_distributed.ENV_COORDINATOR, "node0:1234")
    monkeypatch.setenv(_distributed.ENV_NUM_PROCESSES, "4")
    monkeypatch.setenv(_distributed.ENV_PROCESS_ID, "3")
    assert _distributed.settings_from(None, None, None) == ("node0:1234", 4, 3)
    assert _distributed.settings_from(None, None, 1) == ("node0:1234", 4, 1)  # a flag wins
    monkeypatch.delenv(_distributed.ENV_COORDINATOR)
    monkeypatch.delenv(_distributed.ENV_NUM_PROCESSES)
    monkeypatch.delenv(_distributed.ENV_PROCESS_ID)
    assert _distributed.settings_from(None, None, None) is None  # one process


def test_a_run_of_two_processes_resumes_only_with_two(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*TRAIN, "num_iterations=3", "--out", str(out)]) == 0
    meta = json.load(open(out / "config.json"))
    assert meta["processes"] == 1
    meta["processes"] = 2  # as if written by a 2-process run
    json.dump(meta, open(out / "config.json", "w"))
    capsys.readouterr()
    assert cli.main([*TRAIN, "num_iterations=3", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--num-processes 2" in err, err


def _single(out, devices=4):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "jaxmbrl", *TRAIN, "num_iterations=4", "--out", str(out)], env=process_env(devices),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # ~60 s: three processes compile the same program
def test_two_processes_give_the_single_process_result_and_resume(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    results = launch_local([*TRAIN, "num_iterations=4", "--out", str(two)], 2, 2, timeout_s=240)
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
    # Process 0 alone writes the folder.
    assert "finished" in results[0].stdout and "run folder" not in results[1].stdout
    # Drop the last checkpoint: the resume restores the one before on both processes and
    # runs the last iteration again.
    newest = max(int(n) for n in os.listdir(two / "checkpoints") if n.isdigit())
    shutil.rmtree(two / "checkpoints" / str(newest))
    resumed = launch_local([*TRAIN, "num_iterations=4", "--out", str(two), "--resume"], 2, 2, timeout_s=240)
    assert [r.returncode for r in resumed] == [0, 0], [r.stderr[-2000:] for r in resumed]
    done = _single(one)
    assert done.returncode == 0, done.stderr[-2000:]
    # The same batch sharded over 2 x 2 devices or 4 devices of one process: the same run,
    # bit for bit (the resumed iteration included).
    assert open(two / "metrics.jsonl").read() == open(one / "metrics.jsonl").read()
    assert json.load(open(two / "summary.json"))["devices"] == 4


@pytest.mark.slow  # ~40 s plus the lost-peer timeout
def test_a_killed_process_stops_the_other_with_an_error_not_a_hang(tmp_path):
    out = tmp_path / "killed"
    long_run = [*TRAIN, "num_iterations=400", "--out", str(out)]
    # Kill process 1 once process 0 has logged its first iteration.
    results = launch_local(long_run, 2, 2, timeout_s=150, kill=(1, str(out / "metrics.jsonl")))
    first = results[0]
    assert first.returncode == cli.EXIT_PEER_LOST, (first.returncode, first.stderr[-2000:])
    errors = [line for line in first.stderr.splitlines() if line.startswith("jaxmbrl: error")]
    assert len(errors) == 1 and "lost another process" in errors[0] and "--resume" in errors[0], first.stderr[-2000:]
    assert os.path.exists(out / "config.json")
