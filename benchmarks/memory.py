"""Peak memory of this process and all its children (Spark JVM, Python workers), from /proc."""

import os
import threading
import time


def _children(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/task/{current}/children") as handle:
                kids = [int(x) for x in handle.read().split()]
        except OSError:
            kids = []
        found.extend(kids)
        stack.extend(kids)
    return found


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class PeakMemory:
    """Samples the summed RSS of the process tree every ``interval`` seconds while active."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self):
        root = os.getpid()
        while not self._stop.is_set():
            total = sum(_rss_bytes(p) for p in [root, *_children(root)])
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()

    @property
    def peak_gb(self) -> float:
        return self.peak / 1e9
