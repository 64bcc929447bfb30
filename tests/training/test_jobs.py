"""Training as a Ray Job on a real cluster: submit, poll, stream logs, fetch the result,
re-attach by id; failed jobs report why.

The job goes to the dashboard (Job API) of the two-node cluster of ``ray_two_nodes``; its
driver is ``python -m climviz.training.cli`` on the cluster, which trains with 2 workers
(one per node).
"""

from __future__ import annotations

import io
import time

import pytest

from climviz.errors import ClusterError
from climviz.training.jobs import TERMINAL_STATES, TrainingJob, submit_training

pytestmark = pytest.mark.ray


def test_training_job_runs_streams_logs_and_returns_the_result(ray_two_nodes, small_run,
                                                               tmp_path, tiny_config):
    from climviz.training.checkpoint import load_checkpoint

    cfg = tiny_config(epochs=1, max_steps_per_epoch=2, deterministic=False)
    job = submit_training(cfg, small_run, address=ray_two_nodes["dashboard"], num_workers=2,
                          storage_path=tmp_path / "runs", name="job-run")
    assert job.run_path == tmp_path / "runs" / "job-run"
    assert (job.run_path / "_job" / "data.nc").is_file()       # the Dataset was shipped as a file
    assert job.status() in ("PENDING", "RUNNING", "SUCCEEDED")

    out = io.StringIO()
    assert job.stream_logs(out, timeout_s=500) == "SUCCEEDED"
    logs = out.getvalue()
    assert "[climviz] epoch 1/1" in logs and "mIoU" in logs     # the text progress of the job
    assert logs == job.logs()                                    # streamed everything

    res = job.result()
    assert res.metrics["epoch"].tolist() == [1]
    assert res.metrics["world_size"].tolist() == [2]
    assert res.checkpoint == job.run_path / "epoch_0001" / "checkpoint.pt"
    assert load_checkpoint(res.checkpoint)["epoch"] == 1

    again = TrainingJob.attach(job.job_id, ray_two_nodes["dashboard"])   # e.g. from a new kernel
    assert (again.name, again.run_path) == (job.name, job.run_path)
    assert again.status() == "SUCCEEDED"
    assert again.result().checkpoint == res.checkpoint


def test_a_failed_job_says_why(ray_two_nodes, small_run, tmp_path, tiny_config):
    """resume=True on a run without checkpoints fails inside the job, before training."""
    cfg = tiny_config(epochs=1)
    job = submit_training(cfg, small_run, address=ray_two_nodes["dashboard"],
                          storage_path=tmp_path, name="nothing-here", resume=True)
    assert job.wait(timeout_s=300) == "FAILED"
    assert job.wait() in TERMINAL_STATES
    with pytest.raises(ClusterError, match="(?s)FAILED.*no checkpoint to resume from"):
        job.result()


def test_unreachable_job_api_fails_fast(tiny_config, small_run, tmp_path):
    from climviz.training.cluster import free_port

    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="Cannot reach"):
        submit_training(tiny_config(), small_run, address=f"http://127.0.0.1:{free_port()}",
                        storage_path=tmp_path)
    assert time.monotonic() - t0 < 10
    with pytest.raises(ClusterError, match="dashboard URL"):
        submit_training(tiny_config(), small_run, address="ray://127.0.0.1:10001",
                        storage_path=tmp_path)
