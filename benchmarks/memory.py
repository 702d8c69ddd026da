"""Peak memory of this process and all its descendants (Spark JVM, Python workers).

Every benchmark samples memory the same way, every 0.5 s in a background thread, from ``/proc``
(reading the proportional set size walks a process's page tables: every 50 ms it cost the
driver two minutes of system time during a 10^7-record run):
the resident memory of the Java process plus the proportional set size (PSS) of the Python
ones (driver, daemon, forked workers), reported split and summed.
"""

from __future__ import annotations

import os
import threading

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _rss(pid: int) -> int:
    """Resident set size (bytes)."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except OSError:
        return 0


def _pss(pid: int) -> int:
    """Proportional set size (bytes): pages a forked Python worker shares with its daemon are
    split between them instead of being counted in full by each. Falls back to RSS."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _rss(pid)


def _kind(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return "jvm" if handle.read().strip() == "java" else "python"
    except OSError:
        return "python"


class PeakMemory:
    """Context manager: peak memory of the process tree while active (JVM RSS + Python PSS).

    Attributes:
        peak: Peak total bytes. ``peak_by_kind``: peak bytes of the ``python`` processes (driver
            and workers), of the ``jvm`` and in ``total`` (each peak taken on its own).
    """

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.peak_by_kind = {"python": 0, "jvm": 0, "total": 0}
        self._stop = threading.Event()

    def _sample(self) -> None:
        usage = {"python": 0, "jvm": 0}
        for pid in _descendants(os.getpid()):
            kind = _kind(pid)
            # The JVM shares nothing with other processes, and reading its PSS (a walk over its
            # whole address space every sample) slowed the jobs by a fifth: RSS for it.
            usage[kind] += _rss(pid) if kind == "jvm" else _pss(pid)
        usage["total"] = usage["python"] + usage["jvm"]
        for key, value in usage.items():
            self.peak_by_kind[key] = max(self.peak_by_kind[key], value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self.peak_by_kind = {"python": 0, "jvm": 0, "total": 0}
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak(self) -> int:
        return self.peak_by_kind["total"]

    @property
    def peak_gb(self) -> float:
        return self.peak / 1e9
