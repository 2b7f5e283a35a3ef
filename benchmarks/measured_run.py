"""Run a command and measure it exactly: wall time, peak RSS, CPU, and its RSS while it runs.

Shared by the benchmarks that run `bedrock-sql collect` as a subprocess.

The peak RSS is not read with wait4/RUSAGE_CHILDREN on a child of the benchmark: subprocess
starts children with vfork, and Linux charges the parent's high-water RSS (a benchmark holding
moto's backends: ~200 MB) to the child's ru_maxrss when it execs. A small wrapper process
starts the command instead and reports the command's own rusage on stderr; a thread reads the
command's VmRSS (a curve, to show it stays flat) and VmHWM (a cross-check) while it runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_RUSAGE_WRAPPER = """
import os, sys
pid = os.posix_spawn(sys.executable, [sys.executable, *sys.argv[1:]], os.environ)
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\nBENCH_RUSAGE={usage.ru_maxrss} {usage.ru_utime} {usage.ru_stime}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""
_MARKER = re.compile(r"BENCH_RUSAGE=(\d+) ([\d.]+) ([\d.]+)")


@dataclass
class MeasuredRun:
    returncode: int
    stdout: str
    stderr: str  # what the command said, without the wrapper's marker
    seconds: float
    peak_mb: float  # ru_maxrss of the command itself
    user_s: float
    sys_s: float
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, VmRSS MB)
    peak_seen_mb: float = 0.0  # the largest VmHWM read while it ran

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def summary_line(self) -> str:
        return summary_line(self.stderr)

    def rss_curve(self) -> str:
        """Five points of the RSS while it ran, e.g. '92 MB at 5s, ...'."""
        if not self.samples:
            return "(no samples)"
        marks = [self.samples[min(len(self.samples) - 1, int(len(self.samples) * q))]
                 for q in (0.1, 0.25, 0.5, 0.75, 1.0)]
        return ", ".join(f"{mb:.0f} MB at {t:.0f}s" for t, mb in marks)


def summary_line(stderr: str) -> str:
    """A collect's summary (the line counting its API calls), else the last line it said."""
    lines = stderr.strip().splitlines()
    return next((line for line in reversed(lines) if "API calls)" in line), lines[-1] if lines else "")


def proc_status_mb(pid: int, field_name: str) -> float | None:
    """VmRSS (now) or VmHWM (peak so far) of a live process, in MB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_measured(python_args: list[str], *, cwd: Path, env: dict[str, str],
                 sample_seconds: float = 1.0) -> MeasuredRun:
    """Run ``python python_args...`` under the wrapper; SystemExit if it reported no rusage."""
    started = time.perf_counter()
    wrapper = subprocess.Popen(
        [sys.executable, "-c", _RUSAGE_WRAPPER, *python_args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    samples: list[tuple[float, float]] = []
    peak_seen = [0.0]
    stop = threading.Event()

    def sample() -> None:
        command_pid = None
        while not stop.wait(sample_seconds):
            if command_pid is None:
                try:
                    with open(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children") as children:
                        command_pid = int(children.read().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
            rss = proc_status_mb(command_pid, "VmRSS")
            hwm = proc_status_mb(command_pid, "VmHWM")
            if rss is not None:
                samples.append((time.perf_counter() - started, rss))
            if hwm is not None:
                peak_seen[0] = max(peak_seen[0], hwm)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = wrapper.communicate()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join(5)
    marker = _MARKER.search(stderr)
    if marker is None:
        raise SystemExit(f"the command reported no rusage (exit {wrapper.returncode}):\n{stderr[-4000:]}")
    return MeasuredRun(
        returncode=wrapper.returncode,
        stdout=stdout,
        stderr=stderr[: marker.start()].rstrip(),
        seconds=seconds,
        peak_mb=int(marker.group(1)) / 1024,  # Linux: kilobytes
        user_s=float(marker.group(2)),
        sys_s=float(marker.group(3)),
        samples=samples,
        peak_seen_mb=peak_seen[0],
    )
