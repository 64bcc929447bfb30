"""The kept worker group's lifetime rules, without Ray (a stand-in group records kills).

The group itself (real actors, reuse across ``train`` calls, same weights as in-process
training) is tested on a real local Ray in test_ray.py.
"""

from __future__ import annotations

import time

import pytest

from climviz.training import workers


class FakeGroup:
    def __init__(self, busy=False):
        self.busy = busy
        self.killed = 0

    def kill(self):
        self.killed += 1


@pytest.fixture
def kept():
    """Install a stand-in group as the one this process keeps; clean up afterwards."""
    group = FakeGroup()
    workers._STATE.update(group=group, timer=None)
    yield group
    timer = workers._STATE.get("timer")
    if timer is not None:
        timer.cancel()
    workers._STATE.update(group=None, timer=None)


def _wait(check, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_release_workers_kills_the_kept_group_once(kept):
    assert workers.current_group() is kept
    assert workers.release_workers() is True
    assert kept.killed == 1 and workers.current_group() is None
    assert workers.release_workers() is False and kept.killed == 1


def test_an_idle_group_is_released_after_keep_s(kept):
    workers.release_later(0.2)
    assert kept.killed == 0                       # not before keep_s
    assert _wait(lambda: kept.killed == 1)
    assert workers.current_group() is None


def test_keep_zero_releases_now(kept):
    workers.release_later(0)
    assert kept.killed == 1 and workers.current_group() is None


def test_a_busy_or_retaken_group_is_not_released_by_an_old_timer(kept):
    kept.busy = True                              # a run in progress
    workers.release_later(0.1)
    time.sleep(0.4)
    assert kept.killed == 0 and workers.current_group() is kept
    kept.busy = False
    workers.release_later(0.3)
    workers.release_later(5.0)                    # a newer call: the 0.3 s timer is void
    time.sleep(0.6)
    assert kept.killed == 0 and workers.current_group() is kept


def test_group_key_ignores_resource_order():
    a = workers.group_key(2, False, {"CPU": 1, "memory": 2e9})
    b = workers.group_key(2, False, {"memory": 2e9, "CPU": 1.0})
    assert a == b
    assert a != workers.group_key(1, False, {"CPU": 1, "memory": 2e9})
    assert a != workers.group_key(2, True, {"CPU": 1, "memory": 2e9})


def test_actor_options_follow_resources_per_worker():
    assert workers._actor_options(False, {}) == {"num_cpus": 1.0, "num_gpus": 0.0,
                                                 "max_restarts": 0, "max_concurrency": 2}
    opts = workers._actor_options(True, {"CPU": 4, "memory": 1e9, "accel": 1})
    assert (opts["num_cpus"], opts["num_gpus"], opts["memory"]) == (4.0, 1.0, 1e9)
    assert opts["resources"] == {"accel": 1}


def test_worker_env_is_set_for_one_run_and_restored(monkeypatch):
    monkeypatch.setenv("CLIMVIZ_TEST_STALE", "old")
    monkeypatch.delenv("CLIMVIZ_TEST_NEW", raising=False)
    import os

    with workers._Env({"CLIMVIZ_TEST_NEW": "1"}):
        assert os.environ["CLIMVIZ_TEST_NEW"] == "1"
        assert "CLIMVIZ_TEST_STALE" not in os.environ     # the driver's variables only
    assert "CLIMVIZ_TEST_NEW" not in os.environ and os.environ["CLIMVIZ_TEST_STALE"] == "old"


def test_a_group_running_another_call_is_neither_shared_nor_killed(kept):
    """Two train() calls at once in one process (threads): the second must not run on the
    actors (and process group) of the first, which would mix their collectives, nor kill
    them to start its own; it fails at once with a ClusterError saying what to do."""
    from climviz.errors import ClusterError

    kept.key = workers.group_key(2, False, {})
    kept.alive = lambda timeout_s=10.0: True
    kept.busy = True                                          # the first call is training
    for n in (2, 1):                                          # same size, and another size
        with pytest.raises(ClusterError, match=r"running another train\(\) call.*launcher='ray_train'"):
            workers.acquire_group(n, False, {})
        assert kept.killed == 0 and workers.current_group() is kept
    kept.busy = False                                         # finished: kept for the next call
    assert workers.acquire_group(2, False, {}) == (kept, True)


def test_other_ray_work_releases_an_idle_group_but_never_a_running_one(kept, monkeypatch):
    """connect() (prediction, labels, events on Ray) frees the CPUs of an *idle* kept group,
    as documented; a group training for another thread of this process is left alone
    (killing it would fail that training)."""
    from climviz.training import cluster

    monkeypatch.setattr(cluster, "_reuse", lambda ray, requested: "session")  # no Ray started
    kept.busy = True
    assert workers.release_workers(idle_only=True) is False
    assert cluster.connect() == "session"
    assert kept.killed == 0 and workers.current_group() is kept
    kept.busy = False
    assert cluster.connect() == "session"
    assert kept.killed == 1 and workers.current_group() is None


def test_a_ray_train_launch_leaves_a_running_group_alone(kept, monkeypatch):
    """train(launcher="ray_train") frees an idle kept group for its TorchTrainer, but not a
    group another thread's train() call is running on."""
    import ray

    from climviz.training import ray as ray_launch

    class Stop(Exception):
        pass

    def no_trainer(*args, **kwargs):
        raise Stop  # stop before anything is started on Ray

    monkeypatch.setattr(ray, "remote", no_trainer)
    kept.busy = True
    with pytest.raises(Stop):
        ray_launch._launch_ray_train({}, None, None, 1, False, {}, 0, None, {})
    assert kept.killed == 0 and workers.current_group() is kept
    kept.busy = False
    with pytest.raises(Stop):
        ray_launch._launch_ray_train({}, None, None, 1, False, {}, 0, None, {})
    assert kept.killed == 1 and workers.current_group() is None


def test_submitting_a_job_leaves_a_running_group_alone(kept, monkeypatch, tiny_config, small_run):
    """submit_training frees an idle kept group for the job's workers, but not a group
    another thread's train() call is running on."""
    from climviz.training import jobs

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop  # after the release, before anything is written or submitted

    monkeypatch.setattr(jobs, "_dashboard_address", lambda address: address)
    monkeypatch.setattr(jobs, "_client", lambda address: None)
    monkeypatch.setattr(jobs, "default_run_dir", stop)
    kept.busy = True
    with pytest.raises(Stop):
        jobs.submit_training(tiny_config(), small_run, address="http://127.0.0.1:8265")
    assert kept.killed == 0 and workers.current_group() is kept
    kept.busy = False
    with pytest.raises(Stop):
        jobs.submit_training(tiny_config(), small_run, address="http://127.0.0.1:8265")
    assert kept.killed == 1 and workers.current_group() is None
