"""What the benchmark measures of a running system: CPU seconds, peak RSS, consumer-group lag.

`TreeSampler` follows a process and all its descendants (a Faust worker is one process, PyFlink is
a Python driver plus the JVM it starts) and samples them every 0.2 s: CPU is user+system time
summed over every process ever seen (the last sample of each: a child's last 0.2 s before it
exits can be missed), peak RSS is the largest sum of resident memory seen at once, and each
process's VmHWM is kept as a cross-check. `LagProbe` reads a consumer group's committed offsets
against the topic's end offsets: "lag 0" is the moment every record is processed *and*
committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

SAMPLE_SECONDS = 0.2


@dataclass
class Usage:
    """CPU and memory of one process tree over one measured interval."""

    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    peak_hwm_bytes: int = 0  # the largest single process's VmHWM (kernel's own peak)
    processes: int = 0
    rss_bytes: int = 0  # at the latest sample


@dataclass
class TreeSampler:
    """Samples the CPU time and RSS of process trees (one or more roots) in the background."""

    roots: list[int]
    _cpu: dict[int, float] = field(default_factory=dict)
    _start_cpu: dict[int, float] = field(default_factory=dict)  # of processes already running
    _first: bool = True
    _task: asyncio.Task[None] | None = None
    usage: Usage = field(default_factory=Usage)

    def start(self) -> None:
        self.sample()
        self._first = False
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> Usage:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()
        self.usage.cpu_seconds = self.cpu_seconds()
        self.usage.processes = len(self._cpu)
        return self.usage

    def cpu_seconds(self) -> float:
        """CPU time of the tree so far (as of the latest sample)."""
        return sum(self._cpu.values()) - sum(self._start_cpu.values())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            self.sample()

    def sample(self) -> None:
        rss = 0
        for proc in self._tree():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_info()
                    cpu = times.user + times.system
                    hwm = _vm_hwm(proc.pid)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            if self._first:
                self._start_cpu[proc.pid] = cpu
            self._cpu[proc.pid] = cpu
            rss += memory.rss
            self.usage.peak_hwm_bytes = max(self.usage.peak_hwm_bytes, hwm)
        self.usage.rss_bytes = rss
        self.usage.peak_rss_bytes = max(self.usage.peak_rss_bytes, rss)

    def _tree(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                found.append(root)
                found.extend(root.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        return found


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class LagProbe:
    """Lag of one consumer group on one topic whose end offsets no longer move."""

    def __init__(self, bootstrap: str, topic: str, ends: Mapping[int, int]) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.ends = dict(ends)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)

    async def __aenter__(self) -> LagProbe:
        await self._admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()

    @property
    def total(self) -> int:
        return sum(self.ends.values())

    async def committed(self, group: str) -> int:
        """Records of the topic the group has committed (0 before its first commit)."""
        try:
            offsets = await self._admin.list_consumer_group_offsets(group)
        except Exception:  # the group does not exist yet: aiokafka raises its own errors
            return 0
        done = 0
        for partition, end in self.ends.items():
            meta = offsets.get(TopicPartition(self.topic, partition))
            if meta is not None and meta.offset >= 0:
                done += min(meta.offset, end)
        return done


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        for _ in range(50):
            if partitions:
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
            partitions = consumer.partitions_for_topic(topic)
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions or ()])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


class Child:
    """A process the benchmark starts, in its own process group, with its output in a file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to its process group, SIGKILL after `timeout`."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            if not self.alive():
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(wait)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
