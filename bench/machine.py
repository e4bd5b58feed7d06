"""Describe the machine and the software versions a benchmark ran on, as markdown list items."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _first(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":" if ":" in line else "=", 1)[1].strip().strip('"')
    except OSError:
        return None
    return None


def _output(argv: list[str]) -> str | None:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None


def describe(mlm: list[str], rscript: str | None, peers_python: str | None) -> list[str]:
    """Lines for RESULTS.md: CPU, cores, memory, load, OS, and each tool's version."""
    mem = _first("/proc/meminfo", "MemTotal")
    mem_gb = f"{int(mem.split()[0]) / 1024 ** 2:.1f} GiB" if mem else "unknown"
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    lines = [
        f"CPU: {_first('/proc/cpuinfo', 'model name') or platform.processor() or 'unknown'}",
        f"cores available: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}",
        f"memory: {mem_gb}",
        f"load average at start (1/5/15 min): {' / '.join(f'{x:.2f}' for x in load)}" if load else "load: unknown",
        f"OS: {_first('/etc/os-release', 'PRETTY_NAME') or platform.system()}, kernel {platform.release()}",
        f"runner: Python {platform.python_version()}",
        f"mlm: `{' '.join(mlm)}` -> {_output([*mlm, '--version']) or 'version unknown'}",
    ]
    if rscript:
        r = _output([rscript, "-e", 'cat(R.version.string, "; lme4", format(packageVersion("lme4")), '
                                    '"; lmerTest", format(packageVersion("lmerTest")), "; BLAS", '
                                    'basename(extSoftVersion()[["BLAS"]]))'])
        lines.append(f"R: {r or 'version unknown'}")
    if peers_python:
        code = ("import importlib.metadata as m, platform; "
                "print('Python', platform.python_version(), end='');"
                "[print(f'; {p}', m.version(p), end='') for p in ('lme-python', 'mixedlm-rs', 'polars', 'pandas')"
                " if __import__('importlib.util').util.find_spec(p.replace('-', '_'))]")
        lines.append(f"peers (`{peers_python}`): {_output([peers_python, '-c', code]) or 'unknown'}")
    return lines
