"""Peak memory of the running process, for the bench scripts that import in child processes."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_kib() -> int:
    """This process's peak resident memory: VmHWM where Linux has it, else getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
