"""Shared pieces of the ``bench_*.py`` scripts: machine description, versions, result files.

Every benchmark saves ``benchmarks/results/<name>.json`` with the keys ``machine``
(CPU model, cores, memory), ``versions`` (Python and libraries), ``figures`` (raw
numbers), ``ratios`` (named ratios vs a baseline measured in the same run) and
``notes``. The scripts run as ``python benchmarks/bench_X.py``, which puts this
folder on ``sys.path``, so they import this module as ``_common``.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

from climviz.utils.atomic import atomic_path

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: Packages recorded by every benchmark; a script adds its own with ``versions(*extra)``.
BASE_PACKAGES = ("numpy", "climviz")


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``, else ``"unknown"``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> float:
    """1-minute load average (other jobs sharing the machine slow every timing down)."""
    return round(os.getloadavg()[0], 2)


def machine_info() -> dict[str, Any]:
    """The machine the numbers were measured on.

    Returns
    -------
    dict
        ``cpu_model``, ``cores`` (logical CPUs), ``memory_gb`` (GiB of RAM),
        ``platform`` and ``load_average_1min_at_start``.
    """
    import psutil

    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "load_average_1min_at_start": load_average(),
    }


def versions(*packages: str) -> dict[str, str | None]:
    """Python version plus the installed version of numpy, climviz and ``packages`` (None if absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in dict.fromkeys((*BASE_PACKAGES, *packages)):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


class PeakRSS:
    """Peak resident memory of this process while a ``with`` block runs (sampled in a thread).

    Attributes
    ----------
    base : int
        Resident set size at the start of the block (bytes); ``start`` is the same.
    peak : int
        Largest resident set size seen (bytes), sampled every ``interval`` seconds
        and once more at the end.
    """

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    @property
    def start(self) -> int:
        return self.base

    @property
    def above_start_mb(self) -> float:
        """``peak - base`` in MiB."""
        return (self.peak - self.base) / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.base = self.peak = self.proc.memory_info().rss
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def result_path(name: str, quick: bool = False) -> Path:
    """``benchmarks/results/<name>.json``, or ``<name>_quick.json`` for ``--quick`` runs."""
    return RESULTS_DIR / f"{name}{'_quick' if quick else ''}.json"


def _to_json(value: Any) -> Any:
    """numpy scalars and arrays (and Paths) as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"benchmark result value of type {type(value).__name__} is not JSON serializable")


def write_result(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically (temp file + rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=_to_json) + "\n")
    return path


def save_result(
    name: str,
    figures: dict[str, Any],
    ratios: dict[str, Any],
    notes: str,
    *,
    quick: bool = False,
    out: str | os.PathLike | None = None,
    machine: dict[str, Any] | None = None,
    packages: tuple[str, ...] = (),
    **extra: Any,
) -> Path:
    """Save one benchmark's result in the common form and print where.

    Parameters
    ----------
    name : str
        Benchmark name; the file is :func:`result_path` ``(name, quick)`` unless ``out`` is given.
    figures, ratios : dict
        Raw numbers and named ratios (each vs a baseline measured in the same run).
    notes : str
        How it was measured (load on the machine, what the baselines are).
    quick : bool
        A ``--quick`` run (small sizes): recorded in the file and in its name.
    out : path, optional
        Another destination.
    machine : dict, optional
        :func:`machine_info` taken at the start of the run (taken now if omitted);
        ``load_average_1min_at_end`` is added.
    packages : tuple of str
        Extra packages whose versions are recorded (see :func:`versions`).
    **extra
        More top-level keys (``config``, ``targets``, ...).
    """
    machine = dict(machine or machine_info())
    machine["load_average_1min_at_end"] = load_average()
    payload = {"name": name, "quick": quick, "machine": machine, "versions": versions(*packages),
               **extra, "figures": figures, "ratios": ratios, "notes": notes}
    path = write_result(out if out is not None else result_path(name, quick), payload)
    print(f"wrote {path}")
    return path


def timed(fn: Any, repeats: int = 5, warmup: int = 1) -> dict[str, Any]:
    """Wall times of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones.

    Returns
    -------
    dict
        ``median_s``, ``min_s``, ``max_s``, ``spread`` (``(max - min) / median``: how far
        one run can stray, large when the machine is shared), ``runs_s`` (every time),
        and the 1-minute load average before and after.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; found {repeats}")
    for _ in range(warmup):
        fn()
    load_before = load_average()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return summarize(runs, load_before, load_average())


def summarize(runs: list[float], load_before: float, load_after: float) -> dict[str, Any]:
    """``median_s``, ``min_s``, ``max_s``, ``spread`` and ``runs_s`` of wall times, with the load around them."""
    import statistics

    med = statistics.median(runs)
    return {"median_s": med, "min_s": min(runs), "max_s": max(runs),
            "spread": (max(runs) - min(runs)) / med if med > 0 else 0.0, "runs_s": list(runs),
            "load_before": load_before, "load_after": load_after}


def paired(first: Any, second: Any, rounds: int, repeats: int = 1,
           names: tuple[str, str] = ("current", "baseline")) -> dict[str, dict[str, Any]]:
    """:func:`timed` figures of two callables measured in alternating rounds, runs pooled per callable.

    Each round times ``repeats`` calls of each; who goes first alternates from round to round
    (one warm-up call each in the first round), so a load that drifts within seconds on a shared
    machine hits both alike. Returns ``{names[0]: figures, names[1]: figures}``, each with the
    lowest and highest load average seen during the rounds (``load_min``, ``load_max``).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1; found {rounds}")
    fns = dict(zip(names, (first, second)))
    timings: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            timings[name].append(timed(fns[name], repeats=repeats, warmup=1 if r == 0 else 0))
    loads = [t[k] for ts in timings.values() for t in ts for k in ("load_before", "load_after")]
    out = {}
    for name, ts in timings.items():
        fig = summarize([x for t in ts for x in t["runs_s"]], ts[0]["load_before"], ts[-1]["load_after"])
        out[name] = {**fig, "load_min": min(loads), "load_max": max(loads)}
    return out


def baseline_module(rev: str, path: str, name: str, replace: dict[str, str] | None = None) -> types.ModuleType:
    """Module ``path`` as it was at git revision ``rev``, loaded under ``name`` (after text ``replace``).

    For timing a function against its own earlier version in one process; ``replace``
    rewrites imports of modules that have since moved.
    """
    src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=Path(__file__).resolve().parents[1],
                         check=True, capture_output=True, text=True).stdout
    for old, new in (replace or {}).items():
        src = src.replace(old, new)
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)
    return mod
