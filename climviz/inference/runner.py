"""The model side of prediction: a checkpoint's network, channels and normalization.

:class:`MaskPredictor` is built from a checkpoint payload (a plain dict of tensors
and Python values, so it can travel through Ray's object store to remote
actors). It takes blocks of raw fields (canonical units, NaN where masked): the
network normalizes them itself, as the frozen first operation its checkpoint carries
(the ``input_norm`` buffers; for checkpoints written before those existed, rebuilt
from the stored statistics), so prediction normalizes exactly as training did. It
runs the network in inference mode (fp16 autocast on CUDA) and returns the arg-max
classes and, if asked, the class probabilities.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from climviz.errors import CheckpointError

__all__ = ["ModelSpec", "MaskPredictor", "load_spec", "resolve_device"]

_KEEP = ("model", "preset", "model_kwargs", "channels", "normalizer", "grid", "epoch",
         "model_state", "climviz_version")


@dataclass
class ModelSpec:
    """What prediction needs from a checkpoint (weights included), picklable.

    Attributes
    ----------
    payload
        Checkpoint entries: model, preset, model_kwargs, channels, normalizer,
        grid, epoch, model_state.
    channels
        Input variables in the order the network expects.
    mean, std
        Per-channel normalization statistics (float32, ``(C,)``), in the units of
        each channel; ``x_norm = (x - mean) / std``. For reference: the network
        applies the normalization itself (see :class:`MaskPredictor`).
    sha256
        SHA-256 of the checkpoint file.
    path
        The checkpoint file.
    """

    payload: dict[str, Any]
    channels: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    sha256: str
    path: str

    @property
    def model_name(self) -> str:
        """Registry name of the checkpoint's network."""
        return str(self.payload["model"])

    @property
    def preset(self) -> str:
        """Registry preset of the checkpoint's network."""
        return str(self.payload["preset"])


def _normalizer_stats(norm: Any, channels: Sequence[str], file: str,
                      state: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std for ``channels``: the model's ``input_norm`` buffers, else the stored normalizer."""
    from climviz.models.normalization import PREFIX, has_normalization

    if state is not None and has_normalization(state):
        mean = np.asarray(state[f"{PREFIX}.mean"], dtype=np.float32).reshape(-1)
        inv = np.asarray(state[f"{PREFIX}.inv_std"], dtype=np.float64).reshape(-1)
        if mean.size != len(channels) or inv.size != len(channels):
            raise CheckpointError(f"{file}: model_state {PREFIX}: {mean.size} statistics for "
                                  f"{len(channels)} channels {list(channels)}")
        return mean, (1.0 / inv).astype(np.float32)
    if not isinstance(norm, Mapping):
        raise CheckpointError(
            f"{file}: checkpoint has no normalization statistics (key 'normalizer' is "
            f"{type(norm).__name__}); it cannot be used for prediction"
        )
    from climviz.data.normalize import Normalizer

    try:
        n = Normalizer.from_dict(dict(norm))
        names, mean, std = tuple(n.channels), np.asarray(n.mean), np.asarray(n.std)
    except Exception as e:
        raise CheckpointError(f"{file}: normalization statistics unreadable: {e}") from e
    missing = [c for c in channels if c not in names]
    if missing:
        raise CheckpointError(
            f"{file}: normalization statistics lack channel(s) {missing} the model uses "
            f"(statistics for {list(names)})"
        )
    idx = [names.index(c) for c in channels]
    mean = mean.astype(np.float32).reshape(-1)[idx]
    std = std.astype(np.float32).reshape(-1)[idx]
    std = np.where(np.isfinite(std) & (std > 0), std, np.float32(1.0)).astype(np.float32)
    return mean, std


def load_spec(checkpoint: str | os.PathLike) -> ModelSpec:
    """Read a checkpoint (weights only) into a :class:`ModelSpec`.

    Raises
    ------
    CheckpointError
        Missing, corrupt or foreign file, or a checkpoint without normalization stats.

    Examples
    --------
    A checkpoint of a network that normalizes its input (``normalizer=``) carries the
    statistics the spec exposes:

    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> norm = cv.Normalizer.fit(ds, channels=["TMQ", "PSL"])
    >>> net = cv.models.build("cgnet", "tiny", in_channels=2, seed=0, normalizer=norm)
    >>> _ = cv.training.save_checkpoint("run", {
    ...     "model": "cgnet", "preset": "tiny", "channels": ["TMQ", "PSL"],
    ...     "model_kwargs": {"in_channels": 2, "num_classes": 3}, "model_state": net.state_dict()})
    >>> spec = cv.inference.load_spec("run")
    >>> spec.model_name, spec.preset, spec.channels, bool(np.allclose(spec.mean, norm.mean))
    ('cgnet', 'tiny', ('TMQ', 'PSL'), True)
    >>> cv.inference.load_spec("nowhere")
    Traceback (most recent call last):
    ...
    climviz.errors.CheckpointError: nowhere/checkpoint.pt: checkpoint not found
    """
    from climviz.training.checkpoint import checkpoint_file, checkpoint_sha256, load_checkpoint

    if checkpoint is None or not isinstance(checkpoint, (str, os.PathLike)):
        raise CheckpointError(
            f"checkpoint: expected a path to a checkpoint.pt file or its directory, "
            f"found {type(checkpoint).__name__}"
        )
    file = checkpoint_file(checkpoint)
    payload = load_checkpoint(file, map_location="cpu")
    channels = tuple(str(c) for c in payload["channels"])
    from climviz.training.checkpoint import clean_state_dict

    mean, std = _normalizer_stats(payload.get("normalizer"), channels, str(file),
                                  clean_state_dict(payload["model_state"]))
    kept = {k: payload[k] for k in _KEEP if k in payload}
    return ModelSpec(kept, channels, mean, std, checkpoint_sha256(file), str(Path(file)))


def resolve_device(device: Any = None) -> Any:
    """``None``/"auto" -> "cuda" when a GPU is visible, else "cpu"; others unchanged."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from climviz.errors import ConfigError

        raise ConfigError(f"device: {device!r} asked for, but torch sees no CUDA device")
    return dev


class MaskPredictor:
    """A checkpoint's network ready for prediction on blocks of raw fields.

    The network normalizes its input itself (see the module notes), so blocks are
    passed as read (:func:`climviz.inference.source.read_block` without statistics).

    Parameters
    ----------
    spec
        From :func:`load_spec`.
    device
        torch device (``None`` = CUDA if available).
    probabilities
        ``False``, or the dtype of class probabilities to return (``"float16"`` or
        ``"float32"``; ``True`` means float16).
    tile, tile_overlap
        Optional tile size ``(lat, lon)`` in cells for very large grids and the
        overlap margin (see :mod:`climviz.inference.tiling`).
    threads
        torch intra-op threads (``None`` keeps torch's default). torch has one setting per
        process, so this sets it for the whole process (``torch.set_num_threads``).

    Examples
    --------
    A tiny CGNet on two fields that normalizes its input itself, saved and loaded back
    for prediction on a raw ``(time, channel, lat, lon)`` block:

    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> norm = cv.Normalizer.fit(ds, channels=["TMQ", "PSL"])
    >>> net = cv.models.build("cgnet", "tiny", in_channels=2, seed=0, normalizer=norm)
    >>> _ = cv.training.save_checkpoint("run", {
    ...     "model": "cgnet", "preset": "tiny", "channels": ["TMQ", "PSL"],
    ...     "model_kwargs": {"in_channels": 2, "num_classes": 3}, "model_state": net.state_dict()})
    >>> spec = cv.inference.load_spec("run")
    >>> spec.channels, spec.model_name
    (('TMQ', 'PSL'), 'cgnet')
    >>> predictor = cv.inference.MaskPredictor(spec, "cpu", probabilities="float32")
    >>> x = np.stack([ds["TMQ"].values, ds["PSL"].values], axis=1)  # kg m-2, Pa: as read
    >>> classes, prob = predictor(x)
    >>> classes.shape, classes.dtype.name, prob.shape  # prob: (class, time, lat, lon)
    ((4, 32, 48), 'uint8', (3, 4, 32, 48))
    >>> bool(np.allclose(prob.sum(axis=0), 1, atol=1e-5)), bool((prob.argmax(axis=0) == classes).all())
    (True, True)
    """

    def __init__(
        self,
        spec: ModelSpec,
        device: Any = None,
        *,
        probabilities: bool | str = False,
        tile: Sequence[int] | None = None,
        tile_overlap: int = 16,
        threads: int | None = None,
    ) -> None:
        import torch

        from climviz.training.checkpoint import build_model

        if threads:
            torch.set_num_threads(int(threads))
        self.spec = spec
        self.device = resolve_device(device)
        self.prob_dtype = probability_dtype(probabilities)
        self.tile = tuple(tile) if tile is not None else None
        self.tile_overlap = int(tile_overlap)
        p = spec.payload
        model = build_model(p, where=spec.path)
        num_classes = int(model.num_classes)
        self.model = model.to(self.device).eval()
        self.num_classes = int(num_classes)
        self.autocast = self.device.type == "cuda"

    def logits(self, x: Any) -> Any:
        """Float32 logits ``(N, K, H, W)`` of a raw torch batch on the device."""
        import torch

        from climviz.inference.tiling import padded_logits, tiled_logits

        def fwd(t: torch.Tensor) -> torch.Tensor:
            return padded_logits(self.model, t)

        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.autocast):
            if self.tile is not None:
                y = tiled_logits(fwd, x, self.tile, self.tile_overlap)
            else:
                y = fwd(x)
        return y.float()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Classes (uint8 ``(N, H, W)``) and optional probabilities ``(K, N, H, W)``.

        ``x`` is a raw float32 block ``(N, C, H, W)`` in the checkpoint's channel order
        (see :func:`climviz.inference.source.read_block`); the network normalizes it.
        """
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x))
            if self.device.type == "cuda":
                t = t.pin_memory().to(self.device, non_blocking=True)
            y = self.logits(t)
            mask = y.argmax(dim=1).to(torch.uint8).cpu().numpy()
            prob = None
            if self.prob_dtype is not None:
                p = torch.softmax(y, dim=1).transpose(0, 1)
                prob = p.to(getattr(torch, self.prob_dtype)).cpu().numpy()
        return mask, prob


def probability_dtype(probabilities: bool | str | None) -> str | None:
    """Normalize the ``probabilities`` argument to None, "float16" or "float32"."""
    from climviz.errors import ConfigError

    if probabilities is None or probabilities is False:
        return None
    if probabilities is True:
        return "float16"
    if str(probabilities) in ("float16", "float32"):
        return str(probabilities)
    raise ConfigError(
        f"probabilities: expected False, True, 'float16' or 'float32', found {probabilities!r}"
    )
