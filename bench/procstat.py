"""CPU accounting for the benchmarks, read from Linux's /proc (no extra dependency).

A benchmark names groups of processes (the service under test, PostgreSQL's postmaster and
backends, Kafka...) and :class:`PhaseCpu` reports what each group used during a phase, in
CPU seconds and in % of one core, beside the whole machine's busy time: "other" is the
machine's work that is not this run's (other people's jobs on a shared box). Backends that
exit within a phase are missed, so PostgreSQL's figure is a lower bound.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (None when the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process so far."""
    parts = stat(pid)
    return (int(parts[11]) + int(parts[12])) / TICK if parts else None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies summed over all CPUs, from /proc/stat ((0, 0) where unavailable)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def all_pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """The direct children of a process (PostgreSQL's backends of its postmaster)."""
    return [p for p in all_pids() if (st := stat(p)) and st[1] == str(pid)]


def with_children(pid: int | None) -> list[int]:
    return [pid, *children(pid)] if pid else []


def pid_listening_on(port: int | None) -> int | None:
    """The process listening on a local TCP port (through /proc), e.g. the postmaster of a
    database server on this machine; None if it is not visible from here."""
    if not port:
        return None
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                for line in fh.readlines()[1:]:
                    f = line.split()
                    if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f[9])
        except (OSError, IndexError, ValueError):
            continue
    if not inodes:
        return None
    for pid in all_pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return pid
        except OSError:
            continue
    return None


def group_cpu(groups: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    return {name: {p: c for p in pids if (c := cpu_seconds(p)) is not None} for name, pids in groups.items()}


class PhaseCpu:
    """CPU of named process groups over one phase: ``start()``, then ``stop()`` for the figures.

    ``groups`` is called at both ends (PostgreSQL's backends come and go)."""

    def __init__(self, groups: Callable[[], dict[str, list[int]]]) -> None:
        self._groups = groups

    def start(self) -> None:
        self._before, self._t0, self._ticks0 = group_cpu(self._groups()), time.perf_counter(), machine_ticks()

    def stop(self) -> dict[str, Any]:
        after, wall, (busy1, total1) = group_cpu(self._groups()), time.perf_counter() - self._t0, machine_ticks()
        busy0, total0 = self._ticks0
        cpu_s = {g: sum(c - self._before.get(g, {}).get(p, 0.0) for p, c in after[g].items()) for g in after}
        out: dict[str, Any] = {
            "wall_s": wall,
            "cpu_s": {g: round(v, 2) for g, v in cpu_s.items()},
            "cpu_pct_of_one_core": {g: round(100 * v / wall, 1) for g, v in cpu_s.items()},
        }
        if total1 > total0:
            machine = 100 * (os.cpu_count() or 1) * (busy1 - busy0) / (total1 - total0)
            out["machine_busy_pct_of_one_core"] = round(machine, 1)
            out["other_pct_of_one_core"] = round(max(0.0, machine - sum(out["cpu_pct_of_one_core"].values())), 1)
        return out
