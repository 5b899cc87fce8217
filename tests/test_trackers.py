"""TensorBoard and Weights & Biases mirror metrics.jsonl: files read back, not mocked."""
import glob
import json
import os
import struct
import sys

import pytest

from jaxmbrl import cli

pytest.importorskip("tensorboardX", reason="the tracker tests need tensorboardX (in the test extras)")
pytest.importorskip("wandb", reason="the tracker tests need wandb (in the test extras)")

pytestmark = pytest.mark.xdist_group("trackers")

SETS = ["num_iterations=3", "steps_per_iteration=10"]


def _train(out, *extra):
    return cli.main(["train", "pets", "--preset", "tiny", "--no-progress", "--seeds", "2", "--set", *SETS,
                     "--out", str(out), *extra])


def _records(raw: bytes, start: int = 0):
    """TFRecord framing: u64 length, u32 crc, data, u32 crc."""
    pos = start
    while pos + 12 <= len(raw):
        (n,) = struct.unpack("<Q", raw[pos:pos + 8])
        yield raw[pos + 12:pos + 12 + n]
        pos += 16 + n


def read_tensorboard(folder):
    """{tag: {step: value}} over every event file in `folder`."""
    from tensorboardX.proto import event_pb2

    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for data in _records(open(path, "rb").read()):
            event = event_pb2.Event.FromString(data)
            for value in event.summary.value:
                out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


def _leveldb_records(raw: bytes):
    """W&B's run file: a 7-byte header, then LevelDB log blocks of 32 KiB."""
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        pos += 7
        if n == 0 and kind == 0:  # zero padding to the end of a block
            pos += left - 7
            continue
        pending += raw[pos:pos + n]
        pos += n
        if kind in (1, 4):  # a full record, or the last piece of one
            yield pending
            pending = b""


def read_wandb(run_dir):
    """(run id, {key: {step: value}}) from an offline run's `run-ID.wandb` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = glob.glob(os.path.join(run_dir, "run-*.wandb"))
    history = {}
    for data in _leveldb_records(open(path, "rb").read()):
        record = pb.Record.FromString(data)
        if record.WhichOneof("record_type") != "history":
            continue
        items = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
        step = items.pop("_step")
        for key, value in items.items():
            if not key.startswith("_"):
                history.setdefault(key, {})[step] = value
    return os.path.basename(path)[4:-6], history


def _metrics(out):
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    # Episodes of Pendulum outlast these iterations: the per-step reward is logged in every one.
    return {(f"step_reward/p{r['point']}_s{r['seed']}", r["iteration"]): r["step_reward"] for r in rows}


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        yield


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, offline):
    out = tmp_path_factory.mktemp("tracked") / "run"
    assert _train(out, "--tensorboard", "--wandb", "jaxmbrl-tests") == 0
    return out


def test_tensorboard_event_files_hold_every_logged_value(tracked):
    events = read_tensorboard(os.path.join(tracked, "tensorboard"))
    expected = _metrics(tracked)
    assert len(expected) == 6  # 2 seeds x 3 iterations
    for (tag, iteration), value in expected.items():
        assert events[tag][iteration] == pytest.approx(value, rel=1e-6)
    assert "env_steps/p0_s1" in events


def test_wandb_offline_run_holds_every_logged_value(tracked):
    (run_dir,) = glob.glob(os.path.join(tracked, "wandb", "offline-run-*"))
    run_id, history = read_wandb(run_dir)
    assert open(os.path.join(tracked, "wandb_id.txt")).read().strip() == run_id
    for (key, iteration), value in _metrics(tracked).items():
        assert history[key][iteration] == pytest.approx(value, rel=1e-6)


def test_a_resumed_run_continues_the_same_wandb_run_and_event_folder(tracked, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tracked, copy)
    run_id = open(copy / "wandb_id.txt").read().strip()
    # Stop after the first chunk of a longer run, then resume it to the end.
    out = tmp_path / "resumed"
    assert cli.main(["train", "pets", "--preset", "tiny", "--no-progress", "--set", "num_iterations=4",
                     "steps_per_iteration=10", "--out", str(out), "--tensorboard", "--wandb", "p",
                     "--checkpoint-every", "1"]) == 0
    first_id = open(out / "wandb_id.txt").read().strip()
    shutil.rmtree(out / "checkpoints" / "3")
    assert cli.main(["train", "pets", "--preset", "tiny", "--no-progress", "--set", "num_iterations=4",
                     "steps_per_iteration=10", "--out", str(out), "--tensorboard", "--wandb", "p", "--resume"]) == 0
    assert open(out / "wandb_id.txt").read().strip() == first_id
    events = read_tensorboard(os.path.join(out, "tensorboard"))
    assert sorted(events["step_reward/p0_s0"]) == [0, 1, 2, 3]
    assert run_id != first_id  # a new folder is a new W&B run


def test_a_resume_within_the_same_second_keeps_both_event_files(tmp_path, monkeypatch):
    import time

    from jaxmbrl.run import _trackers

    # tensorboardX names its file by the second it opens: pin the clock so both parts share it.
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    for iteration in (0, 1):
        writer = _trackers.TensorBoard(str(tmp_path))
        writer.log([{"iteration": iteration, "point": 0, "seed": 0, "step_reward": float(iteration)}])
        writer.close()
    events = read_tensorboard(os.path.join(tmp_path, "tensorboard"))
    assert events["step_reward/p0_s0"] == {0: 0.0, 1: 1.0}


@pytest.mark.parametrize("flag, fragment", [(["--wandb", "team/project"], "not a W&B project"),
                                            (["--wandb", "p"], "pip install 'jaxmbrl[wandb]'")])
def test_tracker_errors_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, flag, fragment):
    if "pip" in fragment:
        monkeypatch.setitem(sys.modules, "wandb", None)
    out = tmp_path / "bad"
    assert _train(out, *flag) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
    assert not out.exists()


def test_the_learning_curve_is_redrawn_while_the_run_goes(tmp_path, monkeypatch):
    from jaxmbrl.run import _plots

    drawn = []
    real = _plots.learning_curves

    def spy(runs, png, **kwargs):
        # What the file would show at this moment: the rows logged so far.
        drawn.append(sum(1 for _ in open(os.path.join(runs[0], "metrics.jsonl"))))
        return real(runs, png, **kwargs)

    monkeypatch.setattr(_plots, "learning_curves", spy)
    out = tmp_path / "curve"
    assert cli.main(["train", "pets", "--preset", "tiny", "--no-progress", "--set", "num_iterations=4",
                     "steps_per_iteration=10", "--out", str(out), "--plot-every", "0"]) == 0
    # After every chunk but the last, then once at the end: each time with more rows.
    assert len(drawn) >= 3 and drawn == sorted(drawn) and drawn[0] < drawn[-1], drawn
    assert os.path.exists(out / "learning_curve.png") and not os.path.exists(out / ".learning_curve.png")
