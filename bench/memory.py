"""Resident memory of this process and all its descendants, sampled in a thread.

Peaks are what matter at scale (a dbt subprocess or DuckDB's buffer pool can spike between two
measurements), so a background thread samples `/proc` every `interval` seconds and each measured block
reads the maximum seen while it ran. Linux only (`/proc`); no psutil needed.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
GIB = 2**30


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name is in parentheses and may hold spaces: split after the last ')'.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _rss_bytes(pid: int) -> int:
    try:
        return int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(root: int | None = None) -> int:
    """RSS of `root` (default: this process) plus every descendant, in bytes."""
    root = root or os.getpid()
    children = _children_map()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _rss_bytes(pid)
        stack.extend(children.get(pid, ()))
    return total


class MemorySampler:
    """Samples the process tree's RSS in a daemon thread; `window(start, end)` gives the peak in a span."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), tree_rss_bytes()))
            self._stop.wait(self.interval)

    def peak(self, start: float, end: float) -> int:
        """Highest sampled RSS between two `time.time()` stamps (one fresh sample if none fell inside)."""
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside) if inside else tree_rss_bytes()

    def overall_peak(self) -> int:
        return max((rss for _, rss in self.samples), default=tree_rss_bytes())
