"""Run-folder files that survive crashes: atomic writes, durable appends, one writer.

Every file the runner writes is either replaced whole (written beside, fsynced, then
`os.replace`d: a reader sees the old or the new file, never half of one, and a
symbolic link in its place is replaced, not followed) or appended to in one `write`
per chunk followed by `fsync`, so a crash tears at most the last line, which
`read_jsonl` drops with a warning.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import sys
from typing import Any, Dict, List

from jaxmbrl.run._config import UsageError

LOCK_NAME = ".lock"
# Names a run or sweep folder may hold: a folder holding anything else is not ours
# to write into (it may be a user's project folder).
RUN_FILES = frozenset({
    LOCK_NAME, "config.json", "metrics.jsonl", "metrics.csv", "summary.json", "learning_curve.png",
    "checkpoints", "checkpoints_rejected", "tensorboard", "wandb", "wandb_id.txt", "model_error.png", "model_error.json",
    "summary.csv", "summary.md", "sweep_summary.json", "sweep.png", "sweep.json",
    "metrics.jsonl.bak", "metrics.csv.bak",
})


def warn(message: str) -> None:
    print(f"jaxmbrl: warning: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    print(f"jaxmbrl: {message}", file=sys.stderr, flush=True)


def short(value: Any, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters: errors never echo a whole (huge) value."""
    text = value if isinstance(value, str) and value.startswith(("'", '"')) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def write_atomic(path: str, text: str) -> None:
    """Replaces `path` by `text` all at once (never a half-written file)."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(folder)


def write_json(path: str, value: Any) -> None:
    write_atomic(path, json.dumps(value, indent=2) + "\n")


def append_durably(path: str, text: str) -> None:
    """Appends `text` in one write, then fsyncs: a crash tears at most the last line."""
    if not text:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str) -> List[Dict[str, Any]]:
    """Rows of a metrics.jsonl; a torn last line (a crash mid-write) is dropped with a warning."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError
            rows.append(row)
        except ValueError:
            if all(not rest.strip() for rest in lines[i + 1:]):
                warn(f"dropped a torn last line of {path} (a crash mid-write).")
                break
            raise UsageError(f"{path} line {i + 1} is not a JSON row; the file is damaged.") from None
    return rows


def encode_value(value: float, measured_nan: bool) -> Any:
    """A metric for JSON: null is "not measured"; a non-finite value that was measured
    (a diverged member) is the string "nan", "inf" or "-inf"."""
    if math.isnan(value):
        return "nan" if measured_nan else None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer() and abs(value) < 2**31:
        return int(value)
    return value


def decode_value(value: Any) -> float:
    """A metric from JSON as a float (NaN for null)."""
    if value is None:
        return math.nan
    return float(value)


def read_meta(path: str) -> Dict[str, Any]:
    """A run's config.json, checked to be one jaxmbrl wrote (a mapping with a config)."""
    if os.path.islink(path):
        raise UsageError(f"{path} is a symbolic link; jaxmbrl neither follows nor replaces links in run folders.")
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"{path} is unreadable or corrupt ({type(err).__name__}).") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict) or "algorithm" not in meta:
        raise UsageError(f"{path} was not written by jaxmbrl (expected a mapping with 'algorithm' and 'config').")
    return meta


def check_out_dir(out_dir: str, extra_names=()) -> bool:
    """Checks that `out_dir` can be a run folder; returns whether it exists.

    Refuses a file, a path under a file, and an existing folder holding anything that
    jaxmbrl does not write (a user's folder is never written into).
    """
    if os.path.isfile(out_dir) or (os.path.exists(out_dir) and not os.path.isdir(out_dir)):
        raise UsageError(f"--out {out_dir} is a file, not a folder.")
    parent = os.path.dirname(os.path.abspath(out_dir))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise UsageError(f"--out {out_dir} is under {parent}, which is a file.")
    if not os.path.isdir(out_dir):
        return False
    config = os.path.join(out_dir, "config.json")
    if os.path.lexists(config):
        read_meta(config)
    names = set(os.listdir(out_dir))
    programs = {n for n in names if n.startswith("program_") and n[8:].isdigit()}
    if names & {"config.json", "metrics.jsonl", "checkpoints", "sweep_summary.json"} or programs:
        return True  # a run or sweep folder: files a user added beside ours (plots) are fine
    foreign = sorted(n for n in names if n not in RUN_FILES and n not in extra_names and not n.startswith("."))
    if foreign:
        raise UsageError(f"--out {out_dir} is a folder that is not a jaxmbrl run (it holds {short(foreign[0], 60)}); "
                         f"choose an empty or new folder.")
    return True


_HELD: Dict[str, Any] = {}  # realpath -> [file, depth]: a sweep and its run share a folder


class RunLock:
    """One writer per run folder: `flock` on OUT/.lock, which holds the writer's pid.

    The kernel drops the lock when its process dies (kill -9 included), so a stale
    lock file never blocks anyone; only a live writer does.
    """

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.key = os.path.realpath(out_dir)

    def __enter__(self):
        if self.key in _HELD:
            _HELD[self.key][1] += 1
            return self
        self.created = not os.path.exists(self.out_dir)
        try:
            os.makedirs(self.out_dir, exist_ok=True)
            fd = os.open(os.path.join(self.out_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UsageError(f"cannot write to --out {self.out_dir}: {err.strerror or err}.") from None
        f = os.fdopen(fd, "r+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = f.read().strip() or "unknown"
            f.close()
            raise UsageError(f"{self.out_dir} is in use by another jaxmbrl process (pid {holder[:20]}); "
                             f"wait for it or stop it first.") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        _HELD[self.key] = [f, 1]
        return self

    def __exit__(self, *exc):
        entry = _HELD.get(self.key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[self.key]
            if exc[0] is not None and self.created and os.listdir(self.out_dir) == [LOCK_NAME]:
                # A run refused before writing anything leaves no folder behind (we still
                # hold the lock, so no other writer has started in it).
                os.remove(os.path.join(self.out_dir, LOCK_NAME))
                os.rmdir(self.out_dir)
            entry[0].close()  # closing drops the flock; the file stays (removing it would race)


def read_json_dict(path: str) -> Dict[str, Any]:
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"{path} is unreadable or corrupt ({type(err).__name__}).") from None
    if not isinstance(value, dict):
        raise UsageError(f"{path} does not hold a mapping.")
    return value
