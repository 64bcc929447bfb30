"""A performance model of data-parallel training: compute plus gradient all-reduce.

Used by ``notebooks/05_performance_and_scaling.ipynb`` to reproduce the scaling
figures of Kurth et al. (SC18) and to predict how climviz training scales on a
given cluster. Synchronous data parallelism: every step each device computes the
gradient of its local batch (``t_compute``), then the gradients are summed over
all devices with an all-reduce (``t_allreduce``), part of which overlaps the
backward pass.

All-reduce cost (hierarchical, as in the paper's Horovod/NCCL set-up): gradients
are first reduced inside a node over NVLink, then across nodes with a
bandwidth-optimal ring whose latency term grows with ``log2`` of the node count
(tree/hierarchical rings), then broadcast back inside the node::

    t_intra = 2 (g - 1) / g * M / B_intra
    t_inter = 2 (n - 1) / n * M / B_inter + 2 log2(n) * alpha
    t_allreduce = t_intra + t_inter

with ``M`` the gradient bytes, ``g`` devices per node, ``n`` nodes, ``B`` the
bandwidths (bytes/s) and ``alpha`` the per-hop latency (s). The exposed
communication is ``max(0, t_allreduce - overlap * t_backward)`` with
``t_backward = 2/3 t_compute``; parallel efficiency at ``N`` devices is
``t_step(N=1) / t_step(N)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from climviz.errors import ConfigError

__all__ = ["Machine", "Workload", "step_time", "scaling_curve", "calibrate", "PAPER_RESULTS", "PAPER_NETWORKS",
           "published_samples_per_device", "SUMMIT", "PIZ_DAINT"]


@dataclass(frozen=True)
class Machine:
    """A GPU (or CPU) cluster.

    Parameters
    ----------
    name
        Label.
    devices_per_node
        Accelerators per node sharing the node's network links.
    peak_flops
        Peak FLOP/s of one device in the precision used.
    intra_bw
        Bytes/s of the intra-node reduction per device (NVLink; memory bandwidth on a CPU).
    inter_bw
        Bytes/s of one node's network injection (all NICs together).
    latency
        Seconds per hop of the inter-node all-reduce.
    """

    name: str
    devices_per_node: int
    peak_flops: float
    intra_bw: float
    inter_bw: float
    latency: float = 5e-6


@dataclass(frozen=True)
class Workload:
    """One training configuration.

    Parameters
    ----------
    name
        Label.
    flops_per_sample
        Training FLOPs per sample (forward + backward, ~3x forward).
    params
        Trainable parameters (all-reduced every step).
    bytes_per_param
        Bytes per gradient element on the wire (2 for fp16, 4 for fp32).
    local_batch
        Samples per device per step.
    achieved_fraction
        Fraction of device peak the single-device step achieves.
    overlap
        Fraction of the backward pass that can hide the all-reduce (0..1).
    """

    name: str
    flops_per_sample: float
    params: float
    bytes_per_param: int = 4
    local_batch: int = 2
    achieved_fraction: float = 0.5
    overlap: float = 0.5


def _allreduce_s(w: Workload, m: Machine, n_devices: int) -> float:
    if n_devices <= 1:
        return 0.0
    nbytes = w.params * w.bytes_per_param
    g = min(m.devices_per_node, n_devices)
    nodes = math.ceil(n_devices / m.devices_per_node)
    t = 2 * (g - 1) / g * nbytes / m.intra_bw if g > 1 else 0.0
    if nodes > 1:
        t += 2 * (nodes - 1) / nodes * nbytes / m.inter_bw + 2 * math.log2(nodes) * m.latency
    return t


def step_time(w: Workload, m: Machine, n_devices: int) -> dict[str, float]:
    """Time of one synchronous data-parallel step on ``n_devices`` devices.

    Returns
    -------
    dict
        ``compute_s``, ``allreduce_s``, ``exposed_s`` (communication not hidden by the
        backward pass), ``step_s``, ``samples_per_s``, ``flops_per_s`` (whole system).
    """
    if n_devices < 1:
        raise ConfigError(f"n_devices: expected >= 1, found {n_devices}")
    compute = w.flops_per_sample * w.local_batch / (m.peak_flops * w.achieved_fraction)
    ar = _allreduce_s(w, m, n_devices)
    exposed = max(0.0, ar - w.overlap * (2.0 / 3.0) * compute)
    step = compute + exposed
    samples = n_devices * w.local_batch / step
    return {"compute_s": compute, "allreduce_s": ar, "exposed_s": exposed, "step_s": step,
            "samples_per_s": samples, "flops_per_s": samples * w.flops_per_sample}


def scaling_curve(w: Workload, m: Machine, devices) -> pd.DataFrame:
    """Throughput and parallel efficiency for each device count in ``devices``."""
    base = step_time(w, m, 1)["step_s"]
    rows = []
    for n in np.atleast_1d(devices).astype(int):
        st = step_time(w, m, int(n))
        rows.append({"devices": int(n), **st, "efficiency": base / st["step_s"]})
    return pd.DataFrame(rows)


def calibrate(
    w: Workload, m: Machine, *, devices: int, efficiency: float, sustained_flops: float
) -> tuple[Workload, Machine]:
    """Fit the model's two unknowns to one published scaling point.

    ``achieved_fraction`` of the workload follows from the sustained system FLOP/s
    and the efficiency (single-device rate = sustained / (devices * efficiency)).
    The machine's *effective* inter-node bandwidth (what the all-reduce really
    achieves, below the wire speed: protocol overheads, contention, stragglers)
    is then solved so that the model's efficiency at ``devices`` equals
    ``efficiency``; ``w.overlap`` is kept as given.

    Returns
    -------
    (Workload, Machine)
        The calibrated pair.
    """
    per_device = sustained_flops / (devices * efficiency)
    w = replace(w, achieved_fraction=per_device / m.peak_flops)

    def gap(log_bw: float) -> float:
        mm = replace(m, inter_bw=float(np.exp(log_bw)))
        return scaling_curve(w, mm, [devices])["efficiency"].iloc[0] - efficiency

    lo, hi = np.log(1e3), np.log(1e15)
    if gap(hi) < 0:
        raise ConfigError(f"efficiency {efficiency} not reachable on {m.name}: latency alone costs more")
    if gap(lo) > 0:
        return w, replace(m, inter_bw=1e3)
    return w, replace(m, inter_bw=float(np.exp(brentq(gap, lo, hi, xtol=1e-9))))


#: Summit (OLCF): 6 V100 per node, NVLink 2 (50 GB/s per direction per GPU pair), dual-rail EDR
#: InfiniBand (2 x 12.5 GB/s per node). V100 peaks: 15.7 TF/s fp32, 125 TF/s fp16 tensor cores.
SUMMIT = Machine("Summit (V100)", devices_per_node=6, peak_flops=15.7e12, intra_bw=50e9, inter_bw=25e9,
                 latency=5e-6)
#: Piz Daint (CSCS): 1 P100 per node, Cray Aries (~10 GB/s injection). P100 fp32 peak 9.3 TF/s.
PIZ_DAINT = Machine("Piz Daint (P100)", devices_per_node=1, peak_flops=9.3e12, intra_bw=1e12, inter_bw=10e9,
                    latency=5e-6)

#: Published figures of Kurth et al., SC18 (abstract): system sustained FLOP/s and parallel efficiency.
PAPER_RESULTS = pd.DataFrame(
    [
        {"network": "tiramisu", "system": "Piz Daint", "precision": "fp32", "devices": 5300,
         "sustained_pflops": 21.0, "peak_pflops": None, "efficiency": 0.790},
        {"network": "deeplabv3plus", "system": "Summit", "precision": "fp32", "devices": 27360,
         "sustained_pflops": 325.8, "peak_pflops": None, "efficiency": 0.907},
        {"network": "deeplabv3plus", "system": "Summit", "precision": "fp16", "devices": 27360,
         "sustained_pflops": 999.0, "peak_pflops": 1130.0, "efficiency": None},
    ]
)

#: The paper's networks as Kurth et al. count them (SC18): training FLOPs per 768x1152 sample
#: (forward + backward; the DeepLabv3+ figure also counts the zero-padded inputs of the dilated
#: convolutions as TensorFlow 1 ran them) and parameters, next to the counts of climviz's
#: faithful ``paper`` presets (``climviz.models.train_flops_per_sample``, meta device).
PAPER_NETWORKS = pd.DataFrame(
    [
        {"network": "deeplabv3plus", "train_flops_per_sample": 14.41e12, "params": 43.7e6,
         "climviz_preset": "paper", "climviz_train_flops_per_sample": 12.99e12, "climviz_params": 43_714_787},
        {"network": "tiramisu", "train_flops_per_sample": 4.19e12, "params": 7.8e6,
         "climviz_preset": "paper", "climviz_train_flops_per_sample": 4.14e12, "climviz_params": 7_801_315},
    ]
)


def published_samples_per_device() -> pd.DataFrame:
    """Training samples per second per GPU implied by the paper's sustained FLOP/s.

    ``samples_per_s_per_device = sustained_pflops * 1e15 / (devices * train_flops_per_sample)``
    with the paper's own FLOPs per sample (:data:`PAPER_NETWORKS`), so the division undoes
    the paper's multiplication exactly: e.g. 325.8 PF/s / (27,360 x 14.41 TF) = 0.826
    samples/s per V100 in fp32, 2.53 in fp16.

    Returns
    -------
    pandas.DataFrame
        :data:`PAPER_RESULTS` with ``train_flops_per_sample`` and ``samples_per_s_per_device``.
    """
    out = PAPER_RESULTS.merge(PAPER_NETWORKS[["network", "train_flops_per_sample"]], on="network")
    out["samples_per_s_per_device"] = out["sustained_pflops"] * 1e15 / (out["devices"] * out["train_flops_per_sample"])
    return out
