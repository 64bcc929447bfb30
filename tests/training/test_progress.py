"""Progress displays: text lines in a terminal, an ipywidgets panel in Jupyter.

These feed the displays the same event dicts the rank-0 Ray worker sends; the real
end-to-end path (worker -> actor -> display) is covered in test_ray.py and in the
notebook test.
"""

from __future__ import annotations

import io

import pytest

from climviz.errors import ConfigError
from climviz.training.progress import (
    NullProgress,
    TextProgress,
    WidgetProgress,
    in_notebook,
    make_progress,
)

ROW1 = {"type": "epoch", "epoch": 1, "train_loss": 0.91234, "val_loss": 0.8, "iou_background": 0.9512,
        "iou_tc": 0.1049, "iou_ar": 0.25, "miou": 0.43537, "images_per_s": 12.345, "lr": 0.003}
ROW2 = dict(ROW1, epoch=2, train_loss=0.5, miou=0.61, iou_tc=0.33)


def step(epoch, s, gs, loss=0.7, rate=20.0, spe=4):
    return {"type": "step", "epoch": epoch, "step": s, "global_step": gs, "loss": loss,
            "lr": 1e-3, "images_per_s": rate, "steps_per_epoch": spe}


def test_text_progress_prints_one_line_per_epoch_with_rounded_metrics():
    out = io.StringIO()
    p = TextProgress(2, stream=out, step_interval_s=0.0)
    p.update({"type": "start", "run": "r1", "epochs": 2, "num_workers": 2, "log_dir": "/tmp/logs"})
    p.update(step(1, 1, 1, loss=0.123456))
    p.update(ROW1)
    p.update(ROW2)
    p.close("finished")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[climviz]") and "2 worker(s)" in lines[0] and "/tmp/logs" in lines[0]
    assert "epoch 1/2  step 1/4  loss 0.1235" in lines[1]
    # 0.43537 -> 0.435, 0.1049 -> 0.105 (3 decimals), 12.345 -> 12.3 images/s
    assert "mIoU 0.435" in lines[2] and "IoU TC 0.105" in lines[2] and "images/s 12.3" in lines[2]
    assert "epoch 2/2" in lines[3] and "mIoU 0.610" in lines[3]
    assert lines[-1] == "[climviz] finished after 2/2 epoch(s)"
    assert p.epochs_done == 2 and p.status == "finished"


def test_text_progress_throttles_step_lines():
    out = io.StringIO()
    p = TextProgress(3, stream=out, step_interval_s=3600.0)
    for i in range(1, 6):
        p.update(step(1, i, i))
    assert out.getvalue().count("step ") == 1          # only the first, then throttled
    assert p.last_step["step"] == 5                     # the state still follows every step


def test_each_restart_of_the_workers_is_counted():
    p = NullProgress(2)
    p.update({"type": "workers_started", "resumed": False})
    for gs in (1, 2, 3):
        p.update(step(1 + (gs > 2), gs - 2 * (gs > 2), gs))
    assert p.restarts == 0
    p.update({"type": "workers_started", "resumed": True})     # after a worker died
    p.update(step(2, 1, 3))
    assert p.restarts == 1
    p.update(ROW1)
    p.update(ROW1)                   # a repeated epoch row replaces the earlier one
    assert [r["epoch"] for r in p.rows] == [1]


def test_widget_panel_shows_bars_and_a_metrics_table():
    pytest.importorskip("ipywidgets")
    p = WidgetProgress(3)
    p.update({"type": "start", "run": "my-run", "epochs": 3, "num_workers": 2, "log_dir": "/x/logs"})
    p.update(step(1, 2, 2, loss=0.5))
    assert p.step_bar.max == 4 and p.step_bar.value == 2
    assert "loss 0.5000" in p.step_label.value
    p.update(ROW1)
    p.update(ROW2)
    assert p.epoch_bar.value == 2 and p.epoch_bar.max == 3
    assert p.epoch_label.value == "2/3"
    table = p.table.value
    assert table.count("<tr>") == 3                      # header + 2 epochs
    assert "0.435" in table and "0.610" in table and "12.3" in table
    assert "my-run" in p.header.value and "2 worker(s)" in p.header.value
    assert "/x/logs" in p.footer.value
    p.close("failed", "WorkerGroupError: boom <script>")
    assert p.epoch_bar.bar_style == "danger"
    assert "boom &lt;script&gt;" in p.footer.value         # HTML-escaped


def test_make_progress_choices():
    assert not in_notebook()                               # pytest is not a Jupyter kernel
    assert isinstance(make_progress(False, 2), NullProgress)
    assert isinstance(make_progress(None, 2), NullProgress)
    assert isinstance(make_progress(True, 2), TextProgress)
    mine = TextProgress(2, stream=io.StringIO())
    assert make_progress(mine, 2) is mine
    with pytest.raises(ConfigError, match="progress"):
        make_progress("fancy", 2)
