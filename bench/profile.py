"""Where the worker's time goes: py-spy samples of a running worker, summed by function.

`record` attaches py-spy to a worker process for a while (100 samples/s, stacks aggregated by
function) and keeps only the samples of the thread holding the GIL: those are the Python work,
the CPU that bounds a worker. (Without `--gil`, py-spy also counts the consumer thread's event
loop while it waits in epoll or for the GIL: a fifth of the samples, though /proc shows that
thread using under 2 % of the worker's CPU.) `summarize` turns the folded stacks into the top
functions by own time (the frame on top of the stack: work done in that function itself,
including the C extensions it calls with the GIL held, such as RocksDB and socket writes) and by
total time (the function or anything it calls).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
_SITE = re.compile(r"\(.*?site-packages/")
_STDLIB = re.compile(r"\(/[^()]*?/lib/python3\.\d+/")
_REPO = re.compile(r"\(" + re.escape(str(Path(__file__).resolve().parents[1])) + "/")


def record(pid: int, seconds: int, output: Path, rate: int = 100) -> subprocess.Popen[bytes]:
    """Start py-spy on `pid` for `seconds`; it writes folded stacks to `output` when done."""
    command = [
        str(PY_SPY),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--function",
        "--gil",
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    log = output.with_suffix(".log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


@dataclass(frozen=True)
class Entry:
    function: str
    own: float  # share of samples, 0..1
    total: float


@dataclass(frozen=True)
class Profile:
    samples: int
    by_own: list[Entry]
    by_total: list[Entry]
    by_package: list[tuple[str, float]]  # own time summed by package


# Own time of these frames is their event loop's C code (uvloop): callbacks, sockets.
_LOOP_FRAMES = {
    "Worker.execute_from_commandline (mode/worker.py": "event loop, main thread (uvloop, C)",
    "ServiceThread._start_thread (mode/threads.py": "event loop, consumer thread (uvloop, C)",
    "StreamWriter.write (asyncio/streams.py": "socket writes to the broker (uvloop, C)",
}


def package(frame: str) -> str:
    """What a frame's own time is spent in: our app, Faust, aiokafka, RocksDB, the loops..."""
    for prefix, name in _LOOP_FRAMES.items():
        if frame.startswith(prefix):
            return name
    match = re.search(r"\(([^/():]+)(/|\.py:|:)", frame)
    top = match.group(1) if match else "?"
    if "stores/rocksdb.py" in frame:
        return "faust RocksDB store (rocksdict, C)"
    return {
        "app": "app (our code)",
        "faust": "faust",
        "mode": "mode (faust's services)",
        "aiokafka": "aiokafka",
        "asyncio": "asyncio (Python part)",
        "orjson": "orjson",
    }.get(top, "other: " + top)


def _short(frame: str) -> str:
    frame = _REPO.sub("(", frame)
    frame = _SITE.sub("(", frame)
    return _STDLIB.sub("(", frame)


def summarize(folded: Path, top: int = 15) -> Profile:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if samples == 0:
        return Profile(0, [], [], [])

    def entry(name: str) -> Entry:
        return Entry(name, own[name] / samples, total[name] / samples)

    # The frames that start a thread (the CLI down to the main loop's run) say nothing.
    widest = max(total.values())
    informative = [name for name, count in total.most_common() if count < widest * 0.8]
    packages: Counter[str] = Counter()
    for name, count in own.items():
        packages[package(name)] += count
    for name, count in list(packages.items()):  # the long tail of small ones, as one line
        if name.startswith("other: ") and count < samples / 100:
            packages["other (each < 1 %)"] += packages.pop(name)
    return Profile(
        samples,
        [entry(name) for name, _ in own.most_common(top)],
        [entry(name) for name in informative[:top]],
        [(name, count / samples) for name, count in packages.most_common()],
    )


def render(profile: Profile, header: str) -> str:
    lines = [
        header.rstrip(),
        "",
        f"samples: {profile.samples} (100 per second while a thread holds the GIL)",
        "",
    ]
    lines.append(f"Top {len(profile.by_own)} functions by own time")
    lines.append(f"{'own':>6} {'total':>6}  function (file:first line)")
    lines += [f"{e.own:6.1%} {e.total:6.1%}  {e.function}" for e in profile.by_own]
    lines += ["", f"Top {len(profile.by_total)} functions by total time (callees included)"]
    lines.append(f"{'own':>6} {'total':>6}  function (file:first line)")
    lines += [f"{e.own:6.1%} {e.total:6.1%}  {e.function}" for e in profile.by_total]
    lines += ["", "Own time by package"]
    lines += [f"{share:6.1%}  {name}" for name, share in profile.by_package]
    return "\n".join(lines) + "\n"
