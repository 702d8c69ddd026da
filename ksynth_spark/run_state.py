"""Run state: one run at a time per ``output_dir``, a commit that survives kills, cleanup on signals.

The module's one job is the lifetime of a run around its stages (:class:`RunTransaction`):

1. **Checks** (:func:`check_output_dir`): ``output_dir`` must be a directory that can be
   created and written; a regular file in its place or on its path is refused before Spark
   runs anything.
2. **Lock** (:class:`RunLock`): ``output_dir/.ksynth.lock`` names the run that holds it (pid,
   host, start time, run id). On a local file system the lock is an ``flock`` held for the
   whole run, which the kernel releases when the process dies, so a lock left by a killed run
   is free and is taken over (with a log line); the file is removed when the run ends. On other
   file systems (HDFS, object stores, DBFS) the file is created if absent and a lock of a dead
   process of the same host is taken over; a lock of another host must be removed by hand once
   that run is known to be dead. A second run on a locked ``output_dir`` stops with exit 2.
3. **Recovery** (:func:`ksynth_spark.io.recover_interrupted`), under the lock: the staging
   directory of a killed run is removed, or, when that run had written its commit journal,
   its commit is completed (rolled forward), both with a log line.
4. **Stages** write into the run's staging directory (:class:`ksynth_spark.io.Staging`).
5. **Commit**: the journal is written (the commit point), then each staged entry replaces its
   committed namesake by one rename. A SIGKILL at any point leaves either the previous release
   plus a staging directory (removed by the next run) or a journal that the next run completes:
   never a mix of two runs.
6. **Signals**: while a run is active SIGTERM and SIGINT do what a failure does: running Spark
   jobs are cancelled, the staged outputs removed, the lock released, and
   :class:`~ksynth_spark.errors.RunInterrupted` raised (exit status 128 + signal). During the
   commit the signal is held until the commit is complete. The handler never interrupts the
   driver inside a py4j call (that would desynchronise the gateway): it cancels the Spark jobs
   from another thread, and the call returns with an error that the transaction turns into
   the interruption.

:func:`run_temp_dir` gives a CLI run that starts its own local Spark driver one temporary
directory (JVM ``java.io.tmpdir``, hence Spark's local dirs, and ``TMPDIR`` for the Python
workers), removed at exit; the directories of killed runs are removed by the next run.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, Literal

from ksynth_spark import io
from ksynth_spark.errors import OutputError, RunInterrupted

logger = logging.getLogger(__name__)

LOCK_NAME = ".ksynth.lock"
TEMP_PREFIX = "ksynth-run-"
_OWNER_FILE = "owner.json"
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


# ---------------------------------------------------------------------------------- processes
def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot, Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: int, started: int | None = None) -> bool:
    """Whether process ``pid`` of this host is running (and, when ``started`` is known, is the
    same process and not a later one with a reused pid)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but belongs to another user
    if started is not None:
        current = _process_start(pid)
        return current is None or current == started
    return True


@dataclass(frozen=True)
class Owner:
    """Who holds a lock or a temporary directory.

    Attributes:
        pid: Process id.
        host: Host name.
        started: Start time of the run (UTC, ISO 8601).
        run_id: The run id (also the name of its staging directory).
        process_start: Start time of the process in clock ticks (Linux), to detect pid reuse.
    """

    pid: int
    host: str
    started: str
    run_id: str
    process_start: int | None = None

    @classmethod
    def me(cls, run_id: str) -> Owner:
        """The owner record of this process."""
        return cls(os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), run_id,
                   _process_start(os.getpid()))

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """The owner recorded in ``text`` (None when unreadable)."""
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]), str(data.get("started", "?")), str(data.get("run_id", "?")),
                       data.get("process_start"))
        except (ValueError, KeyError, TypeError):
            return None

    def to_json(self) -> str:
        """The record as JSON text."""
        return json.dumps(asdict(self)) + "\n"

    def describe(self) -> str:
        """``pid 123 on host h, started 2026-...Z``."""
        return f"pid {self.pid} on host {self.host}, started {self.started}"

    def alive(self) -> bool:
        """Whether the owner is a running process of this host (unknown hosts count as alive)."""
        return self.host != socket.gethostname() or process_alive(self.pid, self.process_start)


# ---------------------------------------------------------------------------------- output dir
def _local_output_checks(path: str) -> None:
    """Raises OutputError when the local directory ``path`` cannot be used (not created here)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"output_dir {path} is a file, not a directory: point output_dir to a directory "
                          "(it is created when missing).")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise OutputError(f"output_dir {path} cannot be created: {parent} is a file, not a directory. "
                          "Choose another output_dir.")


def check_output_dir(spark, output_dir: str) -> None:
    """Checks that ``output_dir`` is (or can be made) a writable directory, and creates it.

    Raises:
        OutputError: A file in its place or on its path, or no permission to create or write it.
    """
    local = io.local_path(spark, output_dir)
    if local is not None:
        _local_output_checks(local)
        try:
            os.makedirs(local, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"output_dir {output_dir} cannot be created ({exc.strerror or type(exc).__name__}): "
                              "choose a directory you can write to.") from None
        if not os.access(local, os.W_OK | os.X_OK):
            raise OutputError(f"output_dir {output_dir} is not writable: choose a directory you can write to, or fix "
                              "its permissions.")
        return
    info = io.status(spark, output_dir)
    if info is not None and not info.is_dir:
        raise OutputError(f"output_dir {output_dir} is a file, not a directory: point output_dir to a directory.")
    parent = output_dir.rstrip("/").rsplit("/", 1)[0]
    while info is None and parent and "/" in parent.split("://", 1)[-1]:
        info = io.status(spark, parent)
        if info is not None and not info.is_dir:
            raise OutputError(f"output_dir {output_dir} cannot be created: {parent} is a file, not a directory.")
        parent = parent.rsplit("/", 1)[0]
    try:
        io.mkdirs(spark, output_dir)
    except Exception as exc:
        raise OutputError(f"output_dir {output_dir} cannot be created ({io.java_error_name(exc)}): choose a "
                          "directory you can write to.") from None


def precheck_output_dir(output_dir: str) -> None:
    """Checks a local ``output_dir`` before any Spark session exists (nothing is created):
    a file in its place or on its path, or a live run holding its lock.

    Raises:
        OutputError: As :func:`check_output_dir`, or the directory is locked by a running process.
    """
    _local_output_checks(output_dir)
    lock_path = os.path.join(output_dir, LOCK_NAME)
    if not os.path.exists(lock_path):
        return
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return
    try:
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = Owner.parse(os.read(fd, 4096).decode("utf-8", "replace"))
            raise OutputError(_locked_message(output_dir, owner)) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _locked_message(output_dir: str, owner: Owner | None) -> str:
    who = owner.describe() if owner else "another process"
    return (f"Another ksynth run ({who}) is writing to {output_dir}: wait for it to finish, or use another "
            "output_dir.")


# ---------------------------------------------------------------------------------- lock
class RunLock:
    """The lock of one run on ``output_dir`` (see the module docstring)."""

    def __init__(self, spark, output_dir: str, run_id: str):
        self.spark = spark
        self.output_dir = output_dir.rstrip("/") or "/"
        self.owner = Owner.me(run_id)
        self.path = f"{self.output_dir}/{LOCK_NAME}"
        self._local = io.local_path(spark, self.output_dir) if spark is not None else self.output_dir
        self._fd: int | None = None
        self.held = False

    def acquire(self) -> None:
        """Takes the lock.

        Raises:
            OutputError: Another live run holds it, or the lock file cannot be written.
        """
        try:
            if self._local is not None:
                self._acquire_local(os.path.join(self._local, LOCK_NAME))
            else:
                self._acquire_remote()
        except OSError as exc:
            raise OutputError(f"Cannot write the lock file {self.path} ({exc.strerror or type(exc).__name__}): "
                              "output_dir must be writable.") from None
        self.held = True

    def _acquire_local(self, path: str) -> None:
        import fcntl

        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = Owner.parse(os.read(fd, 4096).decode("utf-8", "replace"))
                os.close(fd)
                raise OutputError(_locked_message(self.output_dir, owner)) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file between our open and flock: start again
        previous = Owner.parse(os.read(fd, 4096).decode("utf-8", "replace"))
        if previous is not None:
            logger.warning("Taking over the lock of an earlier run that is no longer running (%s) on %s",
                           previous.describe(), self.output_dir)
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, self.owner.to_json().encode("utf-8"))
        os.fsync(fd)
        self._fd = fd

    def _acquire_remote(self) -> None:
        spark = self.spark
        if io.exists(spark, self.path):
            owner = Owner.parse(io.read_text(spark, self.path))
            if owner is not None and owner.alive():
                raise OutputError(_locked_message(self.output_dir, owner) + (
                    f" If that run is known to be dead, delete {self.path}." if owner.host != self.owner.host else ""))
            logger.warning("Taking over the lock of an earlier run that is no longer running (%s) on %s",
                           owner.describe() if owner else "unreadable lock file", self.output_dir)
            io.delete(spark, self.path)
        fs, hpath = io._path(spark, self.path)
        try:
            stream = fs.create(hpath, False)
        except Exception:  # FileAlreadyExistsException: a concurrent run was faster
            owner = Owner.parse(io.read_text(spark, self.path)) if io.exists(spark, self.path) else None
            raise OutputError(_locked_message(self.output_dir, owner)) from None
        try:
            stream.write(bytearray(self.owner.to_json().encode("utf-8")))
        finally:
            stream.close()
        written = Owner.parse(io.read_text(spark, self.path))
        if written is None or written.run_id != self.owner.run_id:
            raise OutputError(_locked_message(self.output_dir, written))

    def release(self) -> None:
        """Removes the lock file and releases the lock (idempotent)."""
        if not self.held:
            return
        self.held = False
        try:
            if self._fd is not None:
                assert self._local is not None  # _fd is only set by _acquire_local
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self._local, LOCK_NAME))
                os.close(self._fd)
                self._fd = None
            else:
                owner = Owner.parse(io.read_text(self.spark, self.path)) if io.exists(self.spark, self.path) else None
                if owner is not None and owner.run_id == self.owner.run_id:
                    io.delete(self.spark, self.path)
        except Exception:  # a lock that cannot be removed is taken over by the next run
            logger.warning("Could not remove the lock file %s; the next run will take it over", self.path)
            logger.debug("lock release failed", exc_info=True)


# ---------------------------------------------------------------------------------- signals
class _Stop(KeyboardInterrupt):
    """Raised asynchronously in the driver thread after a signal (see :class:`RunTransaction`)."""


def _in_py4j(frame) -> bool:
    marker = f"{os.sep}py4j{os.sep}"
    while frame is not None:
        if marker in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _in_cleanup(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename == __file__ and frame.f_code.co_name in ("__exit__", "_cleanup"):
            return True
        frame = frame.f_back
    return False


class RunTransaction:
    """Lock, recovery, staging, signal handling and commit of one run (see the module docstring).

    Usage::

        with RunTransaction(spark, output_dir) as run:
            ... write into run.staging ...
            run.checkpoint()       # between stages: stop here after a signal
            run.commit()
    """

    def __init__(self, spark, output_dir: str):
        self.spark = spark
        self.output_dir = output_dir.rstrip("/") or "/"
        self.run_id = uuid.uuid4().hex[:12]
        self.staging = io.Staging(spark, self.output_dir, self.run_id)
        self.lock = RunLock(spark, self.output_dir, self.run_id)
        self.signum: int | None = None
        self.committed = False
        self._stopping = False      # the interruption was raised in (or injected into) the driver thread
        self._cleaning = False
        self._done = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    # ------------------------------------------------------------------ lifetime
    def __enter__(self) -> RunTransaction:
        check_output_dir(self.spark, self.output_dir)
        self.lock.acquire()
        try:
            io.recover_interrupted(self.spark, self.output_dir, keep=self.staging.root)
        except BaseException:
            self.lock.release()
            raise
        self._install()
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        self._cleaning = True
        try:
            if self.committed:
                if self.signum is not None:
                    logger.warning("%s arrived during the commit: the release was committed in full before stopping",
                                   signal.Signals(self.signum).name)
            else:
                self._cleanup(exc)
        finally:
            self._restore()
            self._done.set()
            self.lock.release()
        if self.signum is not None:
            raise RunInterrupted(self.signum) from None
        return False

    def _cleanup(self, exc: BaseException | None) -> None:
        if self.signum is not None:
            logger.warning("Run stopped by %s: removing its staged outputs; nothing was committed to %s",
                           signal.Signals(self.signum).name, self.output_dir)
            self._stop_jobs()
        elif exc is not None:
            logger.info("Run failed: removing its staged outputs; nothing was committed to %s", self.output_dir)
        try:
            self.staging.abort()
        except BaseException:  # the next run on this output_dir removes (or completes) it
            logger.warning("Could not remove the staging directory %s; the next run on %s will", self.staging.root,
                           self.output_dir)
            logger.debug("abort failed", exc_info=True)

    def checkpoint(self) -> None:
        """Raises the interruption when a signal has arrived (call between steps)."""
        if self.signum is not None:
            self._stopping = True
            raise _Stop()

    def commit(self, owned: Iterable[str] = ()) -> None:
        """Commits the staged outputs (signals wait until the commit is complete); ``owned`` as in
        :meth:`ksynth_spark.io.Staging.commit`."""
        self.checkpoint()
        self.staging.committing = True
        try:
            self.staging.commit(owned)
            self.committed = True
        finally:
            self.staging.committing = False

    # ------------------------------------------------------------------ signals
    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (e.g. not in a worker thread)
        for signum in _SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except (ValueError, OSError):
                pass

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
        if self.staging.committing or self.committed:
            logger.warning("%s received during the commit: completing the commit first", name)
            return
        if self._cleaning or self._stopping:
            logger.warning("%s received: already stopping", name)
            return
        logger.warning("%s received: stopping the run", name)
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._cancel_jobs_until_done, name="ksynth-stop", daemon=True)
            self._watchdog.start()
        if not _in_py4j(frame):
            self._stopping = True
            raise _Stop()

    def _cancel_jobs_until_done(self) -> None:
        """Cancels Spark jobs until the run has cleaned up, and interrupts the driver thread
        once it is outside py4j when the interruption has not reached it by itself."""
        main_ident = threading.main_thread().ident
        assert main_ident is not None  # the main thread has started
        while not self._done.is_set():
            if not self._cleaning:
                with contextlib.suppress(Exception):
                    self.spark.sparkContext.cancelAllJobs()
            if not self._stopping and not self._cleaning and not self.staging.committing and not self.committed:
                frame = sys._current_frames().get(main_ident)
                if frame is not None and not _in_py4j(frame) and not _in_cleanup(frame):
                    self._stopping = True
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(main_ident), ctypes.py_object(_Stop))
            self._done.wait(0.2)

    def _stop_jobs(self, timeout: float = 30.0) -> None:
        """Cancels the running Spark jobs and waits (up to ``timeout`` s) until none is active,
        so that no task writes into the staging directory after it is removed."""
        try:
            context = self.spark.sparkContext
            context.cancelAllJobs()
            deadline = time.monotonic() + timeout
            while context.statusTracker().getActiveJobsIds() and time.monotonic() < deadline:
                time.sleep(0.1)
        except Exception:  # the session may be gone: nothing left to stop
            logger.debug("could not cancel the Spark jobs", exc_info=True)


# ---------------------------------------------------------------------------------- temporary directories
def sweep_temp_dirs(base: str) -> int:
    """Removes the temporary directories of runs of this host whose process has ended.

    Returns:
        The number of directories removed.
    """
    removed = 0
    try:
        names = os.listdir(base)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(TEMP_PREFIX):
            continue
        path = os.path.join(base, name)
        try:
            with open(os.path.join(path, _OWNER_FILE), encoding="utf-8") as handle:
                owner = Owner.parse(handle.read())
        except OSError:
            owner = None
        if owner is None or owner.alive():
            continue  # a live run's, or one being created
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
        logger.info("Removed the temporary directory of an interrupted run (%s): %s", owner.describe(), path)
    return removed


@contextlib.contextmanager
def run_temp_dir(base: str | None = None) -> Iterator[str]:
    """A per-run temporary directory for a local Spark driver started by this process.

    Sets, for the JVM and the Python workers started inside the block, ``java.io.tmpdir``
    (through ``SPARK_SUBMIT_OPTS``; Spark's local dirs, its ``spark-*`` directories and the
    Python workers' spill files default to it unless ``spark.local.dir`` is set) and ``TMPDIR``;
    restores them and removes the directory at exit. Stop the Spark session
    before leaving the block. Directories of killed runs are removed first.

    Yields:
        The directory.
    """
    base = base or tempfile.gettempdir()
    sweep_temp_dirs(base)
    path = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=base)
    with open(os.path.join(path, _OWNER_FILE), "w", encoding="utf-8") as handle:
        handle.write(Owner.me(os.path.basename(path)).to_json())
    tmp = os.path.join(path, "tmp")
    os.makedirs(tmp)
    saved = {key: os.environ.get(key) for key in ("TMPDIR", "SPARK_SUBMIT_OPTS")}
    # Child processes only: this process keeps its temporary directory (gettempdir() is cached
    # above), so files meant to outlive the run (e.g. the JVM log of ksynth_spark.session) stay.
    os.environ["TMPDIR"] = tmp
    os.environ["SPARK_SUBMIT_OPTS"] = " ".join(filter(None, [saved["SPARK_SUBMIT_OPTS"], f"-Djava.io.tmpdir={tmp}"]))
    try:
        yield path
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(path, ignore_errors=True)
