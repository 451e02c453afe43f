"""py-spy on the worker, and where the time goes: `python -m bench.profiling FILE`.

py-spy writes one line per distinct stack, `frame;frame;...;frame COUNT`, each frame
`function (path:line)`. This prints the top functions by self and by cumulative samples,
plus a few buckets named for what the worker does (parsing, SQLite, logging, AMQP...).
"""

import argparse
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the checkout: its paths are shown relative to it
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^:()]+)(?::\d+)?\)$")

# The first bucket with a frame anywhere in the stack wins (so SQLite called by a handler is
# SQLite, and py-amqp called by the publisher is publishing).
BUCKETS = (
    ("logging (canonical lines, structlog)", ("structlog/", "worker/logs.py", "orjson")),
    ("AMQP publish + confirm wait", ("publisher.py",)),
    ("metrics", ("metrics.py", "prometheus_client/")),
    (
        "store (SQLite / PostgreSQL, row mapping)",
        ("sqlite3", "psycopg", "worker/store/", "working_set.py", "sql.py"),
    ),
    ("pydantic (parse, build, dump)", ("pydantic/", "pydantic_core/", "events/")),
    ("domain rules (handlers/)", ("handlers/",)),
    ("AMQP consume (frames, py-amqp)", ("wire.py", "amqp/", "vine/")),
    ("worker runtime, other", ("worker/",)),
)
"""Paths are matched as py-spy writes them: relative to the checkout, sometimes the bare file name."""


def py_spy() -> str:
    """py-spy's path: on the PATH or beside this Python; not a dependency of the project."""
    return shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


def missing() -> str | None:
    """What to do if py-spy is not installed (None: it is)."""
    if Path(py_spy()).exists():
        return None
    return f"--profile needs py-spy, which is not installed: {pip()} install py-spy"


def pip() -> Path:
    return Path(sys.executable).parent / "pip"


class Profiler:
    """py-spy attached to the worker for the length of one timed run (raw collapsed stacks)."""

    def __init__(self, out: str, idle: bool) -> None:
        self.out = out
        self.idle = idle
        self.process: subprocess.Popen[bytes] | None = None

    def attach(self, worker: Any) -> None:
        command = [
            py_spy(),
            "record",
            "--pid",
            str(worker.pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            self.out,
        ]
        command += ["--idle"] if self.idle else []
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def detach(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(30)


def frames(stack: str) -> list[tuple[str, str]]:
    parsed = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame.strip())
        if match:
            path = match["path"]
            parsed.append((match["function"], _short(path)))
        else:
            parsed.append((frame.strip(), ""))
    return parsed


def _short(path: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def summarise(text: str, top: int = 25) -> str:
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        stack_frames = frames(stack)
        names = [f"{function} ({path})" for function, path in stack_frames]
        own[names[-1]] += count
        for name in set(names):
            cumulative[name] += count
        buckets[_bucket(stack_frames)] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "by bucket:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in buckets.most_common()]
    lines += ["", f"top {top} by self samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", f"top {top} by cumulative samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in cumulative.most_common(top)]
    return "\n".join(lines)


def _bucket(stack_frames: list[tuple[str, str]]) -> str:
    places = ["/" + path + " " + function for function, path in stack_frames]
    for name, markers in BUCKETS:
        if any(marker in place for marker in markers for place in places):
            return name
    return "other (interpreter, stdlib)"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    parser.add_argument("file", type=Path, help="py-spy output recorded with --format raw")
    parser.add_argument("--top", type=int, default=25)
    arguments = parser.parse_args()
    print(summarise(arguments.file.read_text(), arguments.top))


if __name__ == "__main__":
    main()
