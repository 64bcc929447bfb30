"""Live training progress: an ipywidgets panel in Jupyter, plain text in a terminal.

:func:`climviz.train` on Ray feeds a progress object with small event dicts sent by
the rank-0 worker (through a Ray actor, see :mod:`climviz.training.ray`):

``{"type": "start", "run": str, "epochs": int, "num_workers": int, "log_dir": str}``
    once, from the driver.
``{"type": "step", "epoch": int, "step": int, "steps_per_epoch": int | None,
"global_step": int, "loss": float, "lr": float, "images_per_s": float}``
    at most a few times per second (throttled on the worker).
``{"type": "epoch", "epoch": int, "train_loss": ..., "val_loss": ..., "iou_background": ...,
"iou_tc": ..., "iou_ar": ..., "miou": ..., "images_per_s": ..., "lr": ...}``
    after every epoch: the metrics row of the run.
``{"type": "end", "status": "finished" | "failed" | "interrupted", "error": str | None}``
    once, from the driver.

``{"type": "workers_started", "resumed": bool}``
    from rank 0 each time the worker group starts; every start after the first is a
    restart from the latest checkpoint after a failure, counted in
    :attr:`Progress.restarts`.

Worker stdout/stderr is not forwarded into the notebook (Ray's ``log_to_driver`` is off
when climviz starts Ray); the panel shows where the worker logs are instead.
"""

from __future__ import annotations

import html
import math
import sys
import time
from typing import IO, Any

__all__ = [
    "EPOCH_COLUMNS",
    "NullProgress",
    "Progress",
    "TextProgress",
    "WidgetProgress",
    "in_notebook",
    "make_progress",
]

#: (metrics key, column title, format) shown for each epoch.
EPOCH_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("epoch", "epoch", "{:d}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("val_loss", "val loss", "{:.4f}"),
    ("iou_background", "IoU bg", "{:.3f}"),
    ("iou_tc", "IoU TC", "{:.3f}"),
    ("iou_ar", "IoU AR", "{:.3f}"),
    ("miou", "mIoU", "{:.3f}"),
    ("images_per_s", "images/s", "{:.1f}"),
    ("lr", "lr", "{:.2e}"),
)


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    try:
        if spec == "{:d}":
            return spec.format(int(value))
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(value):
        return "nan"
    return spec.format(value)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython ``ZMQInteractiveShell``) with ipywidgets."""
    ip_mod = sys.modules.get("IPython")
    if ip_mod is None:
        return False
    try:
        shell = ip_mod.get_ipython()
    except Exception:  # noqa: BLE001 -- any IPython failure means "not a notebook"
        return False
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class Progress:
    """State of a training run's progress, fed with event dicts (see module docstring).

    Subclasses render it; this base class only keeps the state, so tests and user
    code can read it.

    Attributes
    ----------
    total_epochs : int
        Epochs the run will reach.
    rows : list of dict
        Metrics rows received so far, one per epoch (latest wins on repeats).
    last_step : dict or None
        The latest step event.
    restarts : int
        How often the workers restarted from a checkpoint (fault tolerance).
    status : str
        ``"pending"``, ``"running"``, ``"finished"``, ``"failed"`` or ``"interrupted"``.
    """

    def __init__(self, total_epochs: int, *, title: str = "climviz training") -> None:
        self.total_epochs = int(total_epochs)
        self.title = title
        self.rows: list[dict[str, Any]] = []
        self.last_step: dict[str, Any] | None = None
        self.restarts = 0
        self.status = "pending"
        self.error: str | None = None
        self.info: dict[str, Any] = {}
        self.steps_per_epoch: int | None = None
        self._starts = 0

    # ------------------------------------------------------------------ events
    def update(self, event: dict[str, Any]) -> None:
        """Apply one event (``type``: start, step, epoch or end) and re-render."""
        kind = event.get("type")
        if kind == "start":
            self.info.update({k: v for k, v in event.items() if k != "type"})
            self.total_epochs = int(event.get("epochs", self.total_epochs))
            self.status = "running"
            self._on_start()
        elif kind == "workers_started":
            self._starts += 1
            self.restarts = max(self._starts - 1, 0)
            if self.restarts:
                self._on_restart()
        elif kind == "step":
            if event.get("steps_per_epoch"):
                self.steps_per_epoch = int(event["steps_per_epoch"])
            self.last_step = dict(event)
            self.status = "running"
            self._on_step(self.last_step)
        elif kind == "epoch":
            row = {k: v for k, v in event.items() if k != "type"}
            epoch = int(row.get("epoch", len(self.rows) + 1))
            self.rows = [r for r in self.rows if int(r.get("epoch", -1)) != epoch] + [row]
            self.rows.sort(key=lambda r: int(r.get("epoch", 0)))
            if self.steps_per_epoch is None and self.last_step is not None:
                self.steps_per_epoch = int(self.last_step.get("step", 0)) or None
            self._on_epoch(row)
        elif kind == "end":
            self.close(event.get("status", "finished"), event.get("error"))

    def close(self, status: str = "finished", error: str | None = None) -> None:
        """Mark the run as ended (``finished``, ``failed`` or ``interrupted``)."""
        if self.status in ("finished", "failed", "interrupted"):
            return
        self.status = status
        self.error = error
        self._on_end()

    @property
    def epochs_done(self) -> int:
        """Highest completed epoch received so far (0 before the first)."""
        return max((int(r.get("epoch", 0)) for r in self.rows), default=0)

    # ------------------------------------------------------------------ rendering hooks
    def _on_start(self) -> None: ...

    def _on_step(self, step: dict[str, Any]) -> None: ...

    def _on_epoch(self, row: dict[str, Any]) -> None: ...

    def _on_restart(self) -> None: ...

    def _on_end(self) -> None: ...

    # ------------------------------------------------------------------ text helpers
    def step_text(self) -> str:
        """One line about the latest step, e.g. ``epoch 2/4 step 7/20 loss 0.4312 ...``."""
        s = self.last_step
        if not s:
            return "waiting for the first training step ..."
        total = f"/{self.steps_per_epoch}" if self.steps_per_epoch else ""
        text = (f"epoch {int(s.get('epoch', 0))}/{self.total_epochs}  step "
                f"{int(s.get('step', 0))}{total}  loss {_fmt(s.get('loss'), '{:.4f}')}")
        if s.get("images_per_s") is not None:
            text += f"  {_fmt(s.get('images_per_s'), '{:.1f}')} images/s"
        if s.get("lr") is not None:
            text += f"  lr {_fmt(s.get('lr'), '{:.2e}')}"
        return text

    def epoch_text(self, row: dict[str, Any]) -> str:
        """One line about an epoch's metrics."""
        parts = [f"epoch {int(row.get('epoch', 0))}/{self.total_epochs}"]
        for key, title, spec in EPOCH_COLUMNS[1:]:
            if key in row:
                parts.append(f"{title} {_fmt(row[key], spec)}")
        return "  ".join(parts)


class NullProgress(Progress):
    """Keeps the state, shows nothing (``progress=False``)."""


class TextProgress(Progress):
    """Plain-text progress for terminals and logs.

    Parameters
    ----------
    total_epochs : int
        Epochs of the run.
    stream : file-like, optional
        Where to print (default ``sys.stdout``).
    step_interval_s : float
        Print a step line at most this often (seconds); epoch lines always print.
    """

    def __init__(self, total_epochs: int, *, title: str = "climviz training",
                 stream: IO[str] | None = None, step_interval_s: float = 10.0) -> None:
        super().__init__(total_epochs, title=title)
        self.stream = stream
        self.step_interval_s = float(step_interval_s)
        self._last_print = -math.inf

    def _print(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        print(f"[climviz] {text}", file=stream, flush=True)

    def _on_start(self) -> None:
        i = self.info
        where = f" on {i['num_workers']} worker(s)" if "num_workers" in i else ""
        self._print(f"{self.title}{where}: run {i.get('run', '?')}, {self.total_epochs} epoch(s)"
                    + (f"; worker logs in {i['log_dir']}" if i.get("log_dir") else ""))

    def _on_step(self, step: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self._last_print >= self.step_interval_s:
            self._last_print = now
            self._print(self.step_text())

    def _on_epoch(self, row: dict[str, Any]) -> None:
        self._print(self.epoch_text(row))

    def _on_restart(self) -> None:
        self._print(f"a worker failed: workers restarted from the latest checkpoint "
                    f"(restart {self.restarts})")

    def _on_end(self) -> None:
        text = f"{self.status} after {self.epochs_done}/{self.total_epochs} epoch(s)"
        if self.restarts:
            text += f", {self.restarts} restart(s) from checkpoint"
        if self.error:
            text += f": {self.error}"
        self._print(text)


class WidgetProgress(Progress):
    """An ipywidgets panel: header, epoch and step bars, a metrics table per epoch.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The panel (displayed by :meth:`display`; embed it elsewhere if you like).
    """

    def __init__(self, total_epochs: int, *, title: str = "climviz training") -> None:
        super().__init__(total_epochs, title=title)
        import ipywidgets as w

        self.header = w.HTML()
        self.epoch_bar = w.IntProgress(value=0, min=0, max=max(self.total_epochs, 1),
                                       description="epochs", bar_style="info")
        self.epoch_label = w.Label()
        self.step_bar = w.IntProgress(value=0, min=0, max=1, description="steps")
        self.step_label = w.Label()
        self.table = w.HTML()
        self.footer = w.HTML()
        self.widget = w.VBox([
            self.header,
            w.HBox([self.epoch_bar, self.epoch_label]),
            w.HBox([self.step_bar, self.step_label]),
            self.table,
            self.footer,
        ])
        self._render_all()

    def display(self) -> None:
        """Show the panel in the current notebook cell."""
        from IPython.display import display

        display(self.widget)

    def _ipython_display_(self) -> None:  # pragma: no cover - used by Jupyter
        self.display()

    # ------------------------------------------------------------------ rendering
    def _render_header(self) -> None:
        i = self.info
        bits = [f"<b>{html.escape(self.title)}</b>"]
        if i.get("run"):
            bits.append(f"run <code>{html.escape(str(i['run']))}</code>")
        if i.get("num_workers"):
            bits.append(f"{int(i['num_workers'])} worker(s)")
        bits.append(f"status: <b>{html.escape(self.status)}</b>")
        if self.restarts:
            bits.append(f"{self.restarts} restart(s) from checkpoint")
        self.header.value = " &middot; ".join(bits)
        foot = []
        if i.get("log_dir"):
            foot.append(f"worker logs: <code>{html.escape(str(i['log_dir']))}</code>")
        if self.error:
            foot.append(f"<span style='color:#b00'>error: {html.escape(self.error)}</span>")
        self.footer.value = "<br>".join(foot)

    def _render_table(self) -> None:
        if not self.rows:
            self.table.value = ""
            return
        head = "".join(f"<th style='padding:0 6px'>{html.escape(t)}</th>"
                       for _, t, _ in EPOCH_COLUMNS)
        body = []
        for r in self.rows:
            cells = "".join(f"<td style='padding:0 6px;text-align:right'>{_fmt(r.get(k), s)}</td>"
                            for k, _, s in EPOCH_COLUMNS)
            body.append(f"<tr>{cells}</tr>")
        self.table.value = (f"<table class='climviz-progress'><thead><tr>{head}</tr></thead>"
                            f"<tbody>{''.join(body)}</tbody></table>")

    def _render_bars(self) -> None:
        self.epoch_bar.max = max(self.total_epochs, 1)
        self.epoch_bar.value = min(self.epochs_done, self.epoch_bar.max)
        self.epoch_label.value = f"{self.epochs_done}/{self.total_epochs}"
        s = self.last_step or {}
        total = self.steps_per_epoch or max(int(s.get("step", 0)), 1)
        self.step_bar.max = max(total, 1)
        self.step_bar.value = min(int(s.get("step", 0)), self.step_bar.max)
        self.step_label.value = self.step_text()

    def _render_all(self) -> None:
        self._render_header()
        self._render_bars()
        self._render_table()

    def _on_start(self) -> None:
        self._render_all()

    def _on_step(self, step: dict[str, Any]) -> None:
        self._render_bars()

    def _on_restart(self) -> None:
        self._render_header()

    def _on_epoch(self, row: dict[str, Any]) -> None:
        self._render_bars()
        self._render_table()

    def _on_end(self) -> None:
        self.epoch_bar.bar_style = {"finished": "success", "failed": "danger"}.get(
            self.status, "warning")
        self._render_all()


def make_progress(progress: Any, total_epochs: int, *, title: str = "climviz training") -> Progress:
    """The progress display for ``train(progress=...)``.

    Parameters
    ----------
    progress : bool, str or Progress
        ``True``/``"auto"``: a widget panel in Jupyter, text elsewhere; ``"widget"`` or
        ``"text"`` to choose; ``False``/``None``: nothing shown; a :class:`Progress`
        instance is used as is.
    total_epochs : int
        Epochs of the run.
    """
    if isinstance(progress, Progress):
        return progress
    if progress is None or progress is False:
        return NullProgress(total_epochs, title=title)
    if progress is True or progress == "auto":
        progress = "widget" if in_notebook() else "text"
    if progress == "widget":
        p = WidgetProgress(total_epochs, title=title)
        p.display()
        return p
    if progress == "text":
        return TextProgress(total_epochs, title=title)
    from climviz.errors import ConfigError

    raise ConfigError(f"train: progress must be True, False, 'auto', 'widget', 'text' or a "
                      f"climviz.training.progress.Progress, found {progress!r}")
