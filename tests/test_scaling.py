"""The data-parallel performance model against hand-computed cases and the paper's published point."""

from __future__ import annotations

import math

import pytest

from climviz.scaling import PAPER_RESULTS, SUMMIT, Machine, Workload, calibrate, scaling_curve, step_time

M = Machine("toy", devices_per_node=4, peak_flops=1e12, intra_bw=1e10, inter_bw=1e9, latency=1e-5)
W = Workload("toy", flops_per_sample=3e11, params=1e7, bytes_per_param=4, local_batch=2,
             achieved_fraction=0.5, overlap=0.0)


def test_single_device_is_pure_compute():
    st = step_time(W, M, 1)
    assert st["compute_s"] == pytest.approx(3e11 * 2 / (1e12 * 0.5))  # 1.2 s
    assert st["allreduce_s"] == 0 and st["step_s"] == st["compute_s"]


def test_allreduce_cost_matches_hand_count_for_two_nodes():
    nbytes = 1e7 * 4
    intra = 2 * 3 / 4 * nbytes / 1e10
    inter = 2 * 1 / 2 * nbytes / 1e9 + 2 * math.log2(2) * 1e-5
    assert step_time(W, M, 8)["allreduce_s"] == pytest.approx(intra + inter)


def test_overlap_hides_communication_and_efficiency_falls_with_scale():
    hidden = step_time(Workload(**{**W.__dict__, "overlap": 1.0}), M, 8)
    assert hidden["exposed_s"] == 0.0  # 0.052 s of all-reduce < 0.8 s backward
    curve = scaling_curve(W, M, [1, 4, 64, 4096])
    assert curve["efficiency"].iloc[0] == 1.0
    assert curve["efficiency"].is_monotonic_decreasing


def test_calibration_reproduces_the_published_deeplab_fp32_point():
    pub = PAPER_RESULTS.query("network == 'deeplabv3plus' and precision == 'fp32'").iloc[0]
    w = Workload("deeplab", flops_per_sample=14.41e12, params=43.7e6, bytes_per_param=4, local_batch=2)
    fitted, machine = calibrate(w, SUMMIT, devices=int(pub.devices), efficiency=pub.efficiency,
                                sustained_flops=pub.sustained_pflops * 1e15)
    row = scaling_curve(fitted, machine, [int(pub.devices)]).iloc[0]
    assert row["efficiency"] == pytest.approx(pub.efficiency, abs=1e-4)
    assert row["flops_per_s"] / 1e15 == pytest.approx(pub.sustained_pflops, rel=1e-3)
    # single-GPU rate = 325.8 PF/s / (27360 * 0.907) = 13.1 TF/s, 84% of the V100's 15.7 TF/s fp32 peak
    assert fitted.achieved_fraction == pytest.approx(325.8e15 / (27360 * 0.907) / 15.7e12, rel=1e-9)
    # the effective network is slower than EDR wire speed, but not absurdly so
    assert 1e8 < machine.inter_bw < SUMMIT.inter_bw


def test_published_samples_per_gpu_follow_from_the_papers_flop_counts():
    from climviz.scaling import published_samples_per_device

    table = published_samples_per_device().set_index(["network", "precision"])
    # by hand: 325.8e15 / (27360 * 14.41e12), 999e15 / (27360 * 14.41e12), 21.0e15 / (5300 * 4.19e12)
    assert table.loc[("deeplabv3plus", "fp32"), "samples_per_s_per_device"] == pytest.approx(0.82637, rel=1e-4)
    assert table.loc[("deeplabv3plus", "fp16"), "samples_per_s_per_device"] == pytest.approx(2.53389, rel=1e-4)
    assert table.loc[("tiramisu", "fp32"), "samples_per_s_per_device"] == pytest.approx(0.94565, rel=1e-4)


def test_paper_networks_table_matches_the_models():
    import torch

    from climviz.models import build, count_parameters
    from climviz.scaling import PAPER_NETWORKS

    for row in PAPER_NETWORKS.itertuples():
        with torch.device("meta"):
            net = build(row.network, row.climviz_preset)
        assert count_parameters(net) == row.climviz_params
        assert abs(row.climviz_params - row.params) / row.params < 0.005
        assert abs(row.climviz_train_flops_per_sample - row.train_flops_per_sample) / row.train_flops_per_sample < 0.1
