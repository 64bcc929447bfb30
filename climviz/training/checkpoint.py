"""Checkpoints: one ``checkpoint.pt`` file inside a directory, written atomically.

A checkpoint holds everything needed to resume training or to predict: weights,
optimizer / LR-scheduler / grad-scaler state, the config, the input channels and
their normalization statistics, the grid it was trained on, the completed epoch
and the metrics history. It is read back with ``torch.load(weights_only=True)``,
so loading never executes pickled code; the payload therefore contains only
tensors and plain Python values (dict, list, str, int, float, bool, None).

Every function accepts the file or the directory holding it.

Normalization: since format version 2 the network applies the per-channel
normalization itself, as a frozen first operation whose statistics are buffers of
its state dict (``model_state["input_norm.mean"]``, ``input_norm.inv_std``,
``input_norm.fill``; see :mod:`climviz.models.normalization`), so prediction uses
exactly what training used. The ``normalizer`` entry (``Normalizer.to_dict()``)
is still written for reference. Version 1 checkpoints (statistics only in
``normalizer``) still load: :func:`load_model` rebuilds the normalization from
that entry and predicts as before.

Checks: a checkpoint whose weights hold NaN or infinite values is never written
(:func:`save_checkpoint` raises a :class:`~climviz.errors.CheckpointError` naming
the file and the tensors, see :func:`nonfinite_tensors`) and never loaded; a
checkpoint whose channel list does not fit its network (``model_kwargs
in_channels`` or the first convolution's input width) is a ``CheckpointError``
naming the file. A disk that fills up, or a read-only directory, while saving is
an :class:`~climviz.errors.OutputError` naming the file; an earlier checkpoint
at the same path stays intact, and temporaries of killed saves are removed by
the next save (:func:`climviz.utils.atomic.remove_stale_temps`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from climviz.errors import CheckpointError
from climviz.utils.atomic import atomic_path, remove_stale_temps
from climviz.utils.output import translate_write_errors

__all__ = [
    "CHECKPOINT_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "checkpoint_file",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "build_model",
    "clean_state_dict",
    "checkpoint_sha256",
    "find_latest_checkpoint",
    "nonfinite_tensors",
    "check_finite_weights",
    "remove_stale_checkpoint_temps",
]

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "climviz-checkpoint"
FORMAT_VERSION = 2  # 2: the model state carries the input normalization (input_norm.*)
_STATE_KEYS = ("model_state", "optimizer_state", "scheduler_state", "scaler_state")
REQUIRED_KEYS = ("format", "format_version", "model", "preset", "model_kwargs", "channels",
                 "model_state")


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The ``checkpoint.pt`` file for ``path`` (the file itself or its directory)."""
    p = Path(path)
    if p.suffix == ".pt" or p.is_file():
        return p
    return p / CHECKPOINT_FILE


def _plain(v: Any) -> Any:
    """Convert a payload to types ``torch.load(weights_only=True)`` accepts."""
    import numpy as np
    import torch

    if isinstance(v, torch.Tensor):
        return v.detach().cpu() if v.device.type != "cpu" else v.detach()
    if isinstance(v, Mapping):
        return {k if isinstance(k, (str, int)) else str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        out = [_plain(x) for x in v]
        return tuple(out) if isinstance(v, tuple) else out
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, torch.dtype):
        return str(v)
    raise CheckpointError(f"checkpoint payload: cannot store a value of type {type(v).__name__} "
                          f"({v!r:.80}); use tensors or plain Python values")


def nonfinite_tensors(state: Mapping[str, Any]) -> dict[str, int]:
    """Names of the floating-point tensors in ``state`` holding NaN/inf, with their counts.

    Parameters
    ----------
    state : Mapping
        A ``state_dict`` (name -> tensor); nested mappings are searched with dotted names,
        non-tensor values are ignored.

    Returns
    -------
    dict
        ``{name: number of non-finite values}`` (empty when all are finite), in state order.
    """
    import torch

    out: dict[str, int] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() or value.is_complex():
                bad = int((~torch.isfinite(value.detach())).sum().item())
                if bad:
                    out[prefix] = bad
        elif isinstance(value, Mapping):
            for k, v in value.items():
                visit(f"{prefix}.{k}" if prefix else str(k), v)

    visit("", state)
    return out


def check_finite_weights(state: Mapping[str, Any], where: str | os.PathLike = "model") -> None:
    """Raise a :class:`~climviz.errors.CheckpointError` if any weight in ``state`` is NaN/inf.

    This is the check :func:`save_checkpoint` and :func:`load_checkpoint` apply to
    ``model_state``; a training loop may call it on ``model.state_dict()`` to stop
    before saving.

    Parameters
    ----------
    state : Mapping
        ``model.state_dict()`` or a checkpoint's ``model_state``.
    where : str or os.PathLike
        The checkpoint file (or a description) named in the message.

    Raises
    ------
    CheckpointError
        Naming ``where``, the first tensors with non-finite values and their counts.
    """
    bad = nonfinite_tensors(state)
    if bad:
        total = sum(bad.values())
        shown = ", ".join(f"{k} ({n})" for k, n in list(bad.items())[:5])
        more = f" and {len(bad) - 5} more tensors" if len(bad) > 5 else ""
        raise CheckpointError(
            f"{where}: {total} non-finite (NaN/inf) weight value(s) in {len(bad)} tensor(s): "
            f"{shown}{more}; the training diverged (try a lower learning rate)"
        )


def _check_channels_fit(file: Path, payload: Mapping[str, Any]) -> None:
    """The channel list must match the network's input width (model_kwargs / first conv)."""
    channels = payload.get("channels")
    if not isinstance(channels, (list, tuple)) or not channels:
        raise CheckpointError(f"{file}: checkpoint channels: expected a non-empty list of "
                              f"variable names, found {channels!r}")
    n = len(channels)
    kwargs = payload.get("model_kwargs") or {}
    declared = kwargs.get("in_channels") if isinstance(kwargs, Mapping) else None
    if declared is not None and declared != n:
        raise CheckpointError(f"{file}: checkpoint lists {n} channels {list(channels)} but its "
                              f"network takes in_channels={declared}; the checkpoint is inconsistent")
    state = payload.get("model_state")
    if isinstance(state, Mapping):
        first = next((v for v in state.values() if getattr(v, "ndim", 0) == 4), None)
        width = int(first.shape[1]) if first is not None else None
        if declared is None and width is not None and width != n:
            raise CheckpointError(f"{file}: checkpoint lists {n} channels {list(channels)} but the "
                                  f"first convolution of its weights takes {width} input channels")


def remove_stale_checkpoint_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove temporaries of killed checkpoint saves under a run directory.

    Looks at ``directory/checkpoint.pt`` and ``directory/epoch_*/checkpoint.pt``
    (the names :func:`save_checkpoint` writes) and removes their
    ``.checkpoint.pt.<hex>.tmp`` siblings. Call it when a run resumes, before training.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    d = Path(directory)
    if not d.is_dir():
        return []
    removed = remove_stale_temps(d / CHECKPOINT_FILE)
    for sub in sorted(d.glob("epoch_*")):
        if sub.is_dir():
            removed += remove_stale_temps(sub / CHECKPOINT_FILE)
    return removed


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` (a directory or a ``.pt`` file) atomically.

    ``format``/``format_version``/``climviz_version`` are filled in when missing.
    Returns the checkpoint file path.

    Raises
    ------
    CheckpointError
        A required key is missing, a value cannot be stored, or ``model_state``
        holds NaN/inf values (nothing is written; the message names the file and
        the tensors).
    OutputError
        The file cannot be written (disk full, read-only or unwritable directory);
        a checkpoint that was at ``path`` before is left intact.

    Examples
    --------
    A tiny two-channel network, saved as the training loop saves it (a directory path
    gets ``checkpoint.pt``; the format keys are filled in):

    >>> net = cv.models.build("deeplabv3plus", "tiny", in_channels=2, seed=0)
    >>> payload = {"model": "deeplabv3plus", "preset": "tiny", "channels": ["TMQ", "U850"],
    ...            "model_kwargs": {"in_channels": 2, "num_classes": 3},
    ...            "model_state": net.state_dict(), "epoch": 3}
    >>> cv.training.save_checkpoint("run/epoch_0003", payload).as_posix()
    'run/epoch_0003/checkpoint.pt'
    >>> cv.training.load_checkpoint("run/epoch_0003")["format"]
    'climviz-checkpoint'
    >>> cv.training.save_checkpoint("bad", {"model": "deeplabv3plus"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    climviz.errors.CheckpointError: bad/checkpoint.pt: checkpoint payload lacks key(s) ['preset', ...]
    """
    import torch

    from climviz._version import __version__

    file = checkpoint_file(path)
    data = dict(payload)
    data.setdefault("format", FORMAT)
    data.setdefault("format_version", FORMAT_VERSION)
    data.setdefault("climviz_version", __version__)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{file}: checkpoint payload lacks key(s) {missing}")
    if isinstance(data["model_state"], Mapping):
        check_finite_weights(data["model_state"], file)
    data = _plain(data)
    _check_channels_fit(file, data)
    with translate_write_errors(file, what="checkpoint"), atomic_path(file) as tmp:
        with open(tmp, "wb") as fh:  # a Python file: a full disk surfaces as OSError(ENOSPC)
            torch.save(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
    return file


def load_checkpoint(
    path: str | os.PathLike,
    *,
    map_location: Any = "cpu",
    expect_model: str | tuple[str, str] | None = None,
    expect_channels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) and check what it is.

    Parameters
    ----------
    path
        The ``checkpoint.pt`` file or its directory.
    map_location
        Passed to ``torch.load``.
    expect_model
        Model name (``"tiramisu"``) or ``(name, preset)``; a different model is an error.
    expect_channels
        Input channels in order; a different set or order is an error naming the channels.

    Raises
    ------
    CheckpointError
        File missing, not a climviz checkpoint, corrupt, newer format, weights with
        NaN/inf values, a channel list that does not fit the network, or mismatched
        with ``expect_model``/``expect_channels``; the message names the file.

    Examples
    --------
    >>> net = cv.models.build("deeplabv3plus", "tiny", in_channels=2, seed=0)
    >>> _ = cv.training.save_checkpoint("run/epoch_0003", {
    ...     "model": "deeplabv3plus", "preset": "tiny", "channels": ["TMQ", "U850"],
    ...     "model_kwargs": {"in_channels": 2, "num_classes": 3},
    ...     "model_state": net.state_dict(), "epoch": 3})
    >>> ckpt = cv.training.load_checkpoint("run/epoch_0003", expect_model=("deeplabv3plus", "tiny"))
    >>> ckpt["channels"], ckpt["epoch"], ckpt["format_version"]
    (['TMQ', 'U850'], 3, 2)
    >>> cv.training.load_checkpoint("run/epoch_0003", expect_channels=["TMQ", "V850"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    climviz.errors.CheckpointError: run/epoch_0003/checkpoint.pt: checkpoint was trained on channels ['TMQ', 'U850']...
    """
    import torch

    file = checkpoint_file(path)
    if not file.exists():
        where = f" (directory {Path(path)} has no {CHECKPOINT_FILE})" if Path(path).is_dir() else ""
        raise CheckpointError(f"{file}: checkpoint not found{where}")
    try:
        payload = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt, truncated, or contains non-weights objects
        raise CheckpointError(f"{file}: cannot read checkpoint (corrupt, truncated, or not a "
                              f"weights-only torch file): {type(e).__name__}: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{file}: not a climviz checkpoint (expected format={FORMAT!r}, "
                              f"found {found!r})")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{file}: checkpoint format_version {version!r} is not supported "
                              f"by this climviz (reads <= {FORMAT_VERSION}); upgrade climviz")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{file}: checkpoint lacks key(s) {missing}")
    if not isinstance(payload["model_state"], Mapping):
        raise CheckpointError(f"{file}: checkpoint model_state: expected a state dict, found "
                              f"{type(payload['model_state']).__name__}")
    check_finite_weights(payload["model_state"], file)
    _check_channels_fit(file, payload)
    if expect_model is not None:
        name, preset = (expect_model, None) if isinstance(expect_model, str) else expect_model
        if payload["model"] != name or (preset is not None and payload["preset"] != preset):
            want = name if preset is None else f"{name}/{preset}"
            raise CheckpointError(f"{file}: checkpoint holds model {payload['model']}/"
                                  f"{payload['preset']}, expected {want}")
    if expect_channels is not None:
        want_ch = list(expect_channels)
        have_ch = list(payload["channels"])
        if want_ch != have_ch:
            missing_ch = [c for c in want_ch if c not in have_ch]
            extra_ch = [c for c in have_ch if c not in want_ch]
            detail = []
            if missing_ch:
                detail.append(f"channels not in checkpoint: {missing_ch}")
            if extra_ch:
                detail.append(f"checkpoint channels not expected: {extra_ch}")
            if not detail:
                detail.append("same channels in a different order")
            raise CheckpointError(f"{file}: checkpoint was trained on channels {have_ch}, "
                                  f"expected {want_ch} ({'; '.join(detail)})")
    return payload


def clean_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """A state dict with DDP (``module.``) and torch.compile (``_orig_mod.``) key prefixes stripped.

    Examples
    --------
    >>> list(cv.training.checkpoint.clean_state_dict({"module._orig_mod.conv.weight": 0}))
    ['conv.weight']
    """
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def build_model(payload: Mapping[str, Any], *, where: str = "checkpoint") -> Any:
    """The network a checkpoint payload describes, with its weights and input normalization.

    ``payload["model_kwargs"]`` may hold ``in_channels``, ``num_classes``, ``overrides``
    and other build options, or be what ``net.build_kwargs()`` returns (its ``name`` and
    ``preset`` must then agree with the payload's ``model`` and ``preset``).

    Parameters
    ----------
    payload
        A checkpoint's content (:func:`load_checkpoint`): ``model``, ``preset``,
        ``model_kwargs``, ``channels``, ``model_state``, optionally ``normalizer``.
    where
        The file, for error messages.

    Returns
    -------
    torch.nn.Module
        The :class:`~climviz.models.base.SegmentationNet`, on the CPU, in training mode.

    Raises
    ------
    CheckpointError
        The network cannot be built from the payload, or its weights do not fit.

    Examples
    --------
    >>> net = cv.models.build("deeplabv3plus", "tiny", in_channels=2, seed=0)
    >>> payload = {"model": "deeplabv3plus", "preset": "tiny", "channels": ["TMQ", "U850"],
    ...            "model_kwargs": net.build_kwargs(), "model_state": net.state_dict()}
    >>> type(cv.training.checkpoint.build_model(payload)).__name__
    'DeepLabV3Plus'
    """
    from climviz import models
    from climviz.models.normalization import load_weights

    kwargs = dict(payload.get("model_kwargs") or {})
    for key, payload_key in (("name", "model"), ("preset", "preset")):
        if key in kwargs and kwargs.pop(key) != payload[payload_key]:
            raise CheckpointError(f"{where}: model_kwargs[{key!r}] does not match the checkpoint's "
                                  f"{payload_key} {payload[payload_key]!r}")
    overrides = dict(kwargs.pop("overrides", None) or {})
    in_channels = kwargs.pop("in_channels", len(payload["channels"]))
    num_classes = kwargs.pop("num_classes", 3)
    try:
        model = models.build(payload["model"], preset=payload["preset"], in_channels=in_channels,
                             num_classes=num_classes, **overrides, **kwargs)
    except Exception as e:
        raise CheckpointError(f"{where}: cannot build model {payload['model']}/{payload['preset']} "
                              f"with {kwargs | overrides}: {e}") from e
    try:
        load_weights(model, clean_state_dict(payload["model_state"]), payload.get("normalizer"),
                     payload["channels"], where=where)
    except CheckpointError as e:
        raise CheckpointError(f"{e} (model {payload['model']}/{payload['preset']})") from e
    return model


def load_model(path: str | os.PathLike, device: Any = "cpu"):
    """Rebuild the model of a checkpoint with its weights, in eval mode.

    The model takes raw fields (canonical units, NaN where masked) and normalizes them
    itself: with the ``input_norm`` buffers of its state dict, or, for a checkpoint
    written before they existed, with the stored ``normalizer`` statistics.

    Returns
    -------
    (model, meta)
        ``meta`` is the checkpoint payload without the state dicts (model, preset,
        model_kwargs, channels, normalizer, config, grid, epoch, metrics, ...) plus
        ``sha256`` and ``path``.

    Examples
    --------
    >>> import torch
    >>> net = cv.models.build("deeplabv3plus", "tiny", in_channels=2, seed=0)
    >>> _ = cv.training.save_checkpoint("run/epoch_0003", {
    ...     "model": "deeplabv3plus", "preset": "tiny", "channels": ["TMQ", "U850"],
    ...     "model_kwargs": {"in_channels": 2, "num_classes": 3},
    ...     "model_state": net.state_dict(), "epoch": 3})
    >>> model, meta = cv.training.load_model("run/epoch_0003")
    >>> type(model).__name__, model.training, meta["epoch"], len(meta["sha256"])
    ('DeepLabV3Plus', False, 3, 64)
    >>> all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values()))
    True
    >>> with torch.no_grad():
    ...     tuple(model(torch.zeros(1, 2, 32, 48)).shape)  # (N, classes, lat, lon) logits
    (1, 3, 32, 48)
    """
    import torch

    file = checkpoint_file(path)
    payload = load_checkpoint(file, map_location="cpu")
    model = build_model(payload, where=str(file))
    model.to(torch.device(device) if isinstance(device, str) else device)
    model.eval()
    meta = {k: v for k, v in payload.items() if k not in _STATE_KEYS}
    meta["sha256"] = checkpoint_sha256(file)
    meta["path"] = str(file)
    return model, meta


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the checkpoint file (recorded in predicted mask files).

    Examples
    --------
    >>> import hashlib
    >>> net = cv.models.build("deeplabv3plus", "tiny", in_channels=2, seed=0)
    >>> file = cv.training.save_checkpoint("run", {
    ...     "model": "deeplabv3plus", "preset": "tiny", "channels": ["TMQ", "U850"],
    ...     "model_kwargs": {"in_channels": 2, "num_classes": 3}, "model_state": net.state_dict()})
    >>> digest = cv.training.checkpoint_sha256("run")
    >>> len(digest), digest == hashlib.sha256(file.read_bytes()).hexdigest()
    (64, True)
    """
    file = checkpoint_file(path)
    if not file.exists():
        raise CheckpointError(f"{file}: checkpoint not found")
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """Newest ``epoch_XXXX/checkpoint.pt`` under ``directory`` (None if there is none).

    "Newest" is the highest epoch number, not the latest modification time.

    Examples
    --------
    >>> net = cv.models.build("deeplabv3plus", "tiny", in_channels=2, seed=0)
    >>> payload = {"model": "deeplabv3plus", "preset": "tiny", "channels": ["TMQ", "U850"],
    ...            "model_kwargs": {"in_channels": 2, "num_classes": 3}, "model_state": net.state_dict()}
    >>> for epoch in (10, 3):
    ...     _ = cv.training.save_checkpoint(f"run/epoch_{epoch:04d}", payload)
    >>> cv.training.find_latest_checkpoint("run").as_posix()
    'run/epoch_0010/checkpoint.pt'
    >>> cv.training.find_latest_checkpoint("no_such_run") is None
    True
    """
    d = Path(directory)
    if not d.is_dir():
        return None
    found = []
    for sub in d.glob("epoch_*"):
        f = sub / CHECKPOINT_FILE
        if f.is_file():
            try:
                found.append((int(sub.name.split("_", 1)[1]), f))
            except ValueError:
                continue
    return max(found)[1] if found else None
