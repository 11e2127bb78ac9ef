"""Memory of a running process, read from ``/proc/<pid>/status``, and a sampling thread.

``RssAnon`` (anonymous resident memory: heap, arrays, tensors) is what an out-of-core fit has
to keep small; ``VmRSS`` adds file-backed pages such as memory-mapped indexes and shared
libraries, which the kernel can drop under pressure.
"""

import os
import threading
import time

FIELDS = ("VmRSS", "RssAnon", "RssFile", "VmHWM")


def read_status(pid="self"):
    """Memory fields of ``/proc/<pid>/status`` in bytes.

    Parameters
    ----------
    pid : int or "self"

    Returns
    -------
    dict
        Keys from :data:`FIELDS` that the kernel reports; empty once the process is gone.
    """
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in FIELDS:
                    out[key] = int(rest.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def mem_available():
    """``MemAvailable`` of the machine in bytes (None where unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def disk_free(path):
    """Free bytes on the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class RssSampler(threading.Thread):
    """Poll a process's memory until it exits; optionally stop it when the machine runs low.

    Parameters
    ----------
    pid : int
        Process to watch.
    interval : float
        Seconds between samples.
    trace_every : float
        Seconds between points kept in :attr:`trace`.
    min_mem_available, min_disk_free : int, optional
        Bytes. When the machine's available memory or the free space under ``disk_path`` falls
        below these, ``on_exhausted(reason)`` is called once (the caller kills the process), so
        that one run cannot take the machine down with it.
    disk_path : str
    on_exhausted : callable, optional

    Attributes
    ----------
    peak : dict
        Highest value seen per field of :data:`FIELDS`, in bytes.
    trace : list of (seconds since start, RssAnon bytes, VmRSS bytes)
    exhausted : str or None
        Reason given to ``on_exhausted``, if it was called.
    """

    def __init__(
        self,
        pid,
        interval=0.1,
        trace_every=1.0,
        min_mem_available=None,
        min_disk_free=None,
        disk_path="/tmp",
        on_exhausted=None,
    ):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.trace_every = trace_every
        self.min_mem_available = min_mem_available
        self.min_disk_free = min_disk_free
        self.disk_path = disk_path
        self.on_exhausted = on_exhausted
        self.peak = {}
        self.trace = []
        self.exhausted = None
        self._stop_event = threading.Event()

    def stop(self):
        """Ask the thread to finish after its current sample."""
        self._stop_event.set()

    def run(self):
        start = time.monotonic()
        next_trace = 0.0
        next_guard = 0.0
        while not self._stop_event.is_set():
            status = read_status(self.pid)
            if not status:
                break
            for key, value in status.items():
                if value > self.peak.get(key, -1):
                    self.peak[key] = value
            now = time.monotonic() - start
            if now >= next_trace:
                self.trace.append((round(now, 2), status.get("RssAnon"), status.get("VmRSS")))
                next_trace = now + self.trace_every
            if now >= next_guard and self.exhausted is None:
                self._guard()
                next_guard = now + 1.0
            self._stop_event.wait(self.interval)

    def _guard(self):
        reason = None
        avail = mem_available()
        if self.min_mem_available and avail is not None and avail < self.min_mem_available:
            reason = f"machine memory nearly exhausted (MemAvailable {avail / 2**30:.2f} GiB)"
        if reason is None and self.min_disk_free:
            free = disk_free(self.disk_path)
            if free < self.min_disk_free:
                reason = f"disk nearly full ({free / 2**30:.2f} GiB free under {self.disk_path})"
        if reason is not None:
            self.exhausted = reason
            if self.on_exhausted is not None:
                self.on_exhausted(reason)
