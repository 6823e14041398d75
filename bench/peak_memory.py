"""Peak resident memory of a piece of work, for the benchmarks' memory subprocesses (Linux; ``ru_maxrss`` elsewhere).

``reset_peak()`` clears the kernel's high-water mark of this process (``VmHWM``, by writing 5 to
``/proc/self/clear_refs``, Linux >= 4.0), so a process can measure one step after building its model: baseline =
``VmRSS`` after ``trim()``, peak = ``VmHWM`` after the step. Run such children with ``MALLOC_ENV``: glibc's dynamic
mmap threshold off, so freed blocks go back to the OS at once and the resident set follows the live tensors (with
glibc's defaults the same measurement varied by ~50 MiB from run to run).
"""

from __future__ import annotations

import ctypes
import gc
import resource
import sys

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}


def status_mib(field: str) -> float:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def maxrss_mib() -> float:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB on Linux


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap pages back, so the baseline is live memory
    except (OSError, AttributeError):
        pass


def can_reset_peak() -> bool:
    return sys.platform.startswith("linux") and reset_peak()
