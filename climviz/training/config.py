"""Training configuration: one dataclass, loadable from and savable to YAML or JSON.

Every field is validated when the config is built; an unknown key or an
impossible value raises :class:`~climviz.errors.ConfigError` whose message
names the key, what was expected and what was found.

Example
-------
>>> cfg = TrainConfig(model="deeplabv3plus", preset="tiny", epochs=2, batch_size=4)
>>> TrainConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from climviz.data.schema import CHANNELS, NUM_CLASSES
from climviz.errors import ConfigError
from climviz.utils.atomic import atomic_path

__all__ = ["TrainConfig", "as_config", "MODEL_PRESETS", "OPTIMIZERS", "SCHEDULES", "PRECISIONS"]

#: Known model names and their presets (kept in sync with ``climviz.models``).
MODEL_PRESETS: dict[str, tuple[str, ...]] = {
    "deeplabv3plus": ("paper", "deepcam", "resnet50-os16", "tiny"),
    "tiramisu": ("paper", "fcdensenet-os32", "tiny"),
    "cgnet": ("paper", "tiny"),
}
OPTIMIZERS = ("adamw", "lamb", "larc", "sgd")
SCHEDULES = ("constant", "cosine", "step")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LR_SCALINGS = ("none", "linear", "sqrt")
CLASS_WEIGHTINGS = ("inverse", "inverse_sqrt", "none")
OVERLAP_LOSSES = ("dice", "jaccard")
LOSSES = ("weighted_ce", "jaccard")


@dataclass
class TrainConfig:
    """Everything one training run needs, apart from the data itself.

    Parameters
    ----------
    model, preset
        Model name (``"deeplabv3plus"`` or ``"tiramisu"``) and size preset
        (``"paper"`` = published sizes, ``"deepcam"``, ``"tiny"`` = for CPUs and teaching).
    model_overrides
        Extra keyword arguments for :func:`climviz.models.build` (e.g. ``{"width": 16}``).
    channels
        Input variables, in order; default the 16 ClimateNet/DeepCAM channels.
    num_classes
        Number of label classes (3: background, TC, AR).
    epochs
        Number of passes over the training time steps.
    batch_size
        Samples (time steps) per optimizer micro-step **per worker**; the effective
        batch is ``batch_size * grad_accum * num_workers``.
    val_batch_size
        Batch size for validation (default: ``batch_size``).
    crop
        ``[H, W]`` random crop of each training sample in grid cells (None = full grid).
        Validation always uses the full grid.
    random_roll
        Randomly roll training samples in longitude (the globe is periodic).
    optimizer
        ``"adamw"``, ``"lamb"`` (layer-wise adaptive Adam), ``"larc"`` (SGD with momentum
        wrapped in LARC, as in the paper's large-batch runs) or ``"sgd"``.
    lr
        Peak learning rate for ONE worker, before the ``lr_scaling`` rule.
    lr_scaling
        How the peak LR grows with the number of workers W: ``"none"``, ``"linear"`` (x W),
        ``"sqrt"`` (x sqrt(W)).
    warmup_epochs
        Linear warm-up from ``warmup_start_factor * lr`` to the peak over this many epochs
        (may be fractional).
    warmup_start_factor
        Fraction of the peak LR at step 0 of the warm-up.
    schedule
        Decay after warm-up: ``"constant"``, ``"cosine"`` (to ``min_lr_factor * lr`` at the last
        step) or ``"step"`` (multiply by ``lr_gamma`` at each epoch in ``lr_milestones``).
    min_lr_factor, lr_milestones, lr_gamma
        Schedule parameters (see ``schedule``).
    momentum, betas, eps
        SGD/LARC momentum; Adam/LAMB betas and epsilon.
    weight_decay
        Decoupled weight decay (AdamW/LAMB) or L2 weight decay (SGD/LARC).
    larc_trust_coefficient, larc_clip
        LARC's eta (local LR = eta * ||w|| / ||g||) and whether to clip the local LR to the
        global one (LARC "clip" mode) instead of scaling by it ("scale" mode).
    class_weights
        ``"inverse"`` (inverse class frequency on the training split, the paper's weighted loss),
        ``"inverse_sqrt"``, ``"none"``, or an explicit list of ``num_classes`` positive weights.
    dice_weight, overlap_loss
        Weight of an optional soft Dice/Jaccard term added to the cross entropy (0 = off).
    precision
        ``"auto"`` (CUDA: fp16 autocast + GradScaler, bf16 if supported; CPU: bf16 autocast only
        where the CPU has native bf16 matrix units, else fp32), ``"fp32"``, ``"bf16"``, ``"fp16"``.
    grad_accum
        Micro-batches accumulated before each optimizer step.
    grad_clip
        Clip the global gradient norm to this value (None = off).
    seed
        Seed of weights, sampling, crops and rolls.
    deterministic
        Ask torch for deterministic kernels (slower; used by the resume tests).
    data
        Path(s) or glob(s) of the run(s) to train on; may be given to ``train`` instead.
    val_fraction
        Fraction of time steps (the LAST contiguous block in time) held out for validation.
    checkpoint_every
        Write a checkpoint every this many epochs (the last epoch is always written).
    keep_checkpoints
        Keep only the newest this many epoch checkpoints (plus the best); None = keep all.
    loader_workers
        DataLoader worker processes per training process.
    target_miou
        Validation mean IoU whose first crossing is recorded as the time-to-target
        ("learning speed-up" in the DeepEx paper). None = not recorded.
    channels_last
        Use the channels-last memory format (faster convolutions on CPUs with oneDNN and
        on tensor cores).
    compile
        Wrap the model in ``torch.compile``.
    max_steps_per_epoch
        Stop each epoch after this many optimizer steps (None = whole split); for tests
        and benchmarks.
    log_every
        Print a progress line every this many optimizer steps (``train(progress=True)``).
    max_nonfinite_steps
        Stop with a :class:`~climviz.training.loop.DivergenceError` after this many
        consecutive optimizer steps with a non-finite loss (each one is skipped, as the
        GradScaler skips overflowing steps); None = never stop.
    loss
        ``"weighted_ce"``: class-weighted cross entropy (``class_weights``) plus
        ``dice_weight`` x the ``overlap_loss`` term; ``"jaccard"``: the ClimateNet CGNet
        recipe, softmax Jaccard (IoU) loss ``1 - mean_c |P_c T_c| / (|P_c + T_c| -
        |P_c T_c| + 1e-7)`` alone (Prabhat et al. 2021; use with ``optimizer="adam"``-like
        AdamW at ``lr=1e-3``, ``weight_decay=0``).
    """

    model: str = "deeplabv3plus"
    preset: str = "tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] = CHANNELS
    num_classes: int = NUM_CLASSES
    epochs: int = 10
    batch_size: int = 4
    val_batch_size: int | None = None
    crop: tuple[int, int] | None = None
    random_roll: bool = False
    optimizer: str = "adamw"
    lr: float = 1e-3
    lr_scaling: str = "linear"
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.1
    schedule: str = "cosine"
    min_lr_factor: float = 0.0
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-4
    larc_trust_coefficient: float = 1e-3
    larc_clip: bool = True
    class_weights: str | tuple[float, ...] = "inverse"
    dice_weight: float = 0.0
    overlap_loss: str = "dice"
    precision: str = "auto"
    grad_accum: int = 1
    grad_clip: float | None = None
    seed: int = 0
    deterministic: bool = False
    data: str | tuple[str, ...] | None = None
    val_fraction: float = 0.2
    checkpoint_every: int = 1
    keep_checkpoints: int | None = None
    loader_workers: int = 0
    target_miou: float | None = None
    channels_last: bool = False
    compile: bool = False
    max_steps_per_epoch: int | None = None
    log_every: int = 10
    max_nonfinite_steps: int | None = 5
    loss: str = "weighted_ce"

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        self._normalize_types()
        self._validate()

    def _normalize_types(self) -> None:
        if isinstance(self.channels, str):
            self.channels = (self.channels,)
        if isinstance(self.channels, Sequence):
            self.channels = tuple(self.channels)
        if isinstance(self.crop, Sequence) and not isinstance(self.crop, str):
            self.crop = tuple(self.crop)  # type: ignore[assignment]
        if isinstance(self.lr_milestones, Sequence) and not isinstance(self.lr_milestones, str):
            self.lr_milestones = tuple(self.lr_milestones)
        if isinstance(self.betas, Sequence) and not isinstance(self.betas, str):
            self.betas = tuple(self.betas)  # type: ignore[assignment]
        if isinstance(self.class_weights, Sequence) and not isinstance(self.class_weights, str):
            self.class_weights = tuple(self.class_weights)
        if isinstance(self.data, os.PathLike):
            self.data = os.fspath(self.data)
        elif isinstance(self.data, Sequence) and not isinstance(self.data, str):
            self.data = tuple(os.fspath(p) for p in self.data)
        if self.model_overrides is None:
            self.model_overrides = {}
        # ints given as floats in YAML (e.g. 1e3) are accepted when integral
        for name in ("epochs", "batch_size", "grad_accum", "seed", "checkpoint_every",
                     "loader_workers", "num_classes", "log_every", "max_nonfinite_steps"):
            v = getattr(self, name)
            if isinstance(v, float) and v.is_integer():
                setattr(self, name, int(v))
        for name in ("lr", "warmup_epochs", "warmup_start_factor", "min_lr_factor", "lr_gamma",
                     "momentum", "eps", "weight_decay", "larc_trust_coefficient", "dice_weight",
                     "val_fraction", "grad_clip", "target_miou"):
            v = getattr(self, name)
            if isinstance(v, int) and not isinstance(v, bool):
                setattr(self, name, float(v))
            elif isinstance(v, str):
                # PyYAML reads "1e-3" (no dot) as a string: accept numeric text
                try:
                    setattr(self, name, float(v))
                except ValueError:
                    pass

    def _validate(self) -> None:
        def bad(key: str, expected: str) -> ConfigError:
            return ConfigError(
                f"TrainConfig.{key}: expected {expected}, found {getattr(self, key)!r}"
            )

        def check_int(key: str, minimum: int, *, optional: bool = False) -> None:
            v = getattr(self, key)
            if optional and v is None:
                return
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                raise bad(key, f"an integer >= {minimum}" + (" or null" if optional else ""))

        def check_float(key: str, lo: float, hi: float = math.inf, *, lo_open: bool = False,
                        hi_open: bool = False, optional: bool = False) -> None:
            v = getattr(self, key)
            if optional and v is None:
                return
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if ok:
                ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
            if not ok:
                lo_s = f"> {lo}" if lo_open else f">= {lo}"
                hi_s = "" if hi == math.inf else (f" and < {hi}" if hi_open else f" and <= {hi}")
                raise bad(key, f"a finite number {lo_s}{hi_s}" + (" or null" if optional else ""))

        def check_choice(key: str, choices: Sequence[str]) -> None:
            v = getattr(self, key)
            if not isinstance(v, str) or v.lower() not in choices:
                raise bad(key, f"one of {list(choices)}")
            setattr(self, key, v.lower())

        def check_bool(key: str) -> None:
            if not isinstance(getattr(self, key), bool):
                raise bad(key, "true or false")

        if not isinstance(self.model, str) or self.model.lower() not in MODEL_PRESETS:
            raise bad("model", f"one of {list(MODEL_PRESETS)}")
        self.model = self.model.lower()
        presets = MODEL_PRESETS[self.model]
        if not isinstance(self.preset, str) or self.preset.lower() not in presets:
            raise bad("preset", f"one of {list(presets)} for model {self.model!r}")
        self.preset = self.preset.lower()
        if not isinstance(self.model_overrides, dict) or not all(
            isinstance(k, str) for k in self.model_overrides
        ):
            raise bad("model_overrides", "a mapping of keyword names to values")
        if (not isinstance(self.channels, tuple) or not self.channels
                or not all(isinstance(c, str) and c for c in self.channels)):
            raise bad("channels", "a non-empty list of variable names")
        dup = sorted({c for c in self.channels if self.channels.count(c) > 1})
        if dup:
            raise bad("channels", f"distinct variable names (duplicated: {dup})")
        check_int("num_classes", 2)
        check_int("epochs", 1)
        check_int("batch_size", 1)
        check_int("val_batch_size", 1, optional=True)
        if self.crop is not None:
            if (not isinstance(self.crop, tuple) or len(self.crop) != 2
                    or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 32
                               for n in self.crop)):
                raise bad("crop", "null or [height, width], two integers >= 32 grid cells")
        check_bool("random_roll")
        check_choice("optimizer", OPTIMIZERS)
        check_float("lr", 0.0, lo_open=True)
        check_choice("lr_scaling", LR_SCALINGS)
        check_float("warmup_epochs", 0.0)
        if self.warmup_epochs > self.epochs:
            raise bad("warmup_epochs", f"at most epochs={self.epochs}")
        check_float("warmup_start_factor", 0.0, 1.0)
        check_choice("schedule", SCHEDULES)
        check_float("min_lr_factor", 0.0, 1.0)
        if (not isinstance(self.lr_milestones, tuple)
                or not all(isinstance(m, int) and not isinstance(m, bool) and 1 <= m
                           for m in self.lr_milestones)
                or list(self.lr_milestones) != sorted(set(self.lr_milestones))):
            raise bad("lr_milestones", "an increasing list of epoch numbers >= 1")
        if self.schedule == "step" and not self.lr_milestones:
            raise ConfigError("TrainConfig.lr_milestones: schedule='step' needs at least one "
                              "milestone epoch, found []")
        check_float("lr_gamma", 0.0, 1.0, lo_open=True)
        check_float("momentum", 0.0, 1.0, hi_open=True)
        if (not isinstance(self.betas, tuple) or len(self.betas) != 2
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                           for b in self.betas)):
            raise bad("betas", "two numbers in [0, 1)")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        check_float("eps", 0.0, lo_open=True)
        check_float("weight_decay", 0.0)
        check_float("larc_trust_coefficient", 0.0, lo_open=True)
        check_bool("larc_clip")
        if isinstance(self.class_weights, str):
            check_choice("class_weights", CLASS_WEIGHTINGS)
        elif (not isinstance(self.class_weights, tuple)
              or len(self.class_weights) != self.num_classes
              or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                         and math.isfinite(w) and w > 0 for w in self.class_weights)):
            raise bad("class_weights", f"one of {list(CLASS_WEIGHTINGS)} or a list of "
                                       f"{self.num_classes} positive numbers")
        else:
            self.class_weights = tuple(float(w) for w in self.class_weights)
        check_float("dice_weight", 0.0)
        check_choice("overlap_loss", OVERLAP_LOSSES)
        check_choice("precision", PRECISIONS)
        check_int("grad_accum", 1)
        check_float("grad_clip", 0.0, lo_open=True, optional=True)
        check_int("seed", 0)
        check_bool("deterministic")
        if self.data is not None and not (
            isinstance(self.data, str) and self.data
            or isinstance(self.data, tuple) and self.data
            and all(isinstance(p, str) and p for p in self.data)
        ):
            raise bad("data", "null, a path/glob, or a list of paths")
        check_float("val_fraction", 0.0, 1.0, lo_open=True, hi_open=True)
        check_int("checkpoint_every", 1)
        check_int("keep_checkpoints", 1, optional=True)
        check_int("loader_workers", 0)
        check_float("target_miou", 0.0, 1.0, lo_open=True, optional=True)
        check_bool("channels_last")
        check_bool("compile")
        check_int("max_steps_per_epoch", 1, optional=True)
        check_int("log_every", 1)
        check_int("max_nonfinite_steps", 1, optional=True)
        check_choice("loss", LOSSES)

    # ------------------------------------------------------------------ derived values
    def scaled_lr(self, world_size: int) -> float:
        """Peak learning rate for ``world_size`` workers after the ``lr_scaling`` rule."""
        return scale_lr(self.lr, world_size, self.lr_scaling)

    def training_data(self, data: Any = None) -> Any:
        """``data`` when given, else :attr:`data`; neither is a :class:`ConfigError`.

        The training entry points (in-process, Ray, Ray Jobs) take their data this way.
        """
        if data is None:
            data = self.data
        if data is None:
            raise ConfigError("TrainConfig.data: no training data given (pass data=... or set "
                              "TrainConfig.data to a path or glob)")
        return data

    def effective_batch_size(self, world_size: int = 1) -> int:
        """Samples per optimizer step across all workers: batch_size * grad_accum * W."""
        return self.batch_size * self.grad_accum * world_size

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated)."""
        d = self.to_dict()
        unknown = sorted(set(changes) - set(d))
        if unknown:
            raise ConfigError(f"TrainConfig: unknown key(s) {unknown}; known keys: {sorted(d)}")
        d.update(changes)
        return TrainConfig.from_dict(d)

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-able dict (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Build from a mapping; unknown keys raise ConfigError naming them."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"TrainConfig: expected a mapping of keys to values, found "
                              f"{type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            hint = ""
            import difflib
            close = difflib.get_close_matches(str(unknown[0]), sorted(known), n=1)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
            raise ConfigError(f"TrainConfig: unknown key(s) {unknown}{hint}; "
                              f"known keys: {sorted(known)}")
        return cls(**dict(d))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """YAML text; also written (atomically) to ``path`` when given."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            with atomic_path(path) as tmp:
                Path(tmp).write_text(text)
        return text

    def save(self, path: str | os.PathLike) -> Path:
        """Write as YAML (``.yaml``/``.yml``) or JSON (``.json``), atomically."""
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            self.to_yaml(path)
        elif path.suffix.lower() == ".json":
            with atomic_path(path) as tmp:
                Path(tmp).write_text(self.to_json())
        else:
            raise ConfigError(f"{path}: config files end in .yaml, .yml or .json, "
                              f"found {path.suffix!r}")
        return path

    @classmethod
    def from_yaml(cls, text_or_path: str | os.PathLike) -> "TrainConfig":
        """Parse YAML text, or read a YAML file when given an existing path."""
        import yaml

        src = "<yaml text>"
        text = text_or_path
        if isinstance(text_or_path, os.PathLike) or (
            isinstance(text_or_path, str) and "\n" not in text_or_path
            and text_or_path.lower().endswith((".yaml", ".yml"))
        ):
            src = os.fspath(text_or_path)
            try:
                text = Path(src).read_text()
            except OSError as e:
                raise ConfigError(f"{src}: cannot read config file ({e})") from e
        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{src}: not valid YAML ({e})") from e
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ConfigError(f"{src}: expected a mapping of config keys, found "
                              f"{type(d).__name__}")
        return cls.from_dict(d)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "TrainConfig":
        """Read a ``.yaml``/``.yml`` or ``.json`` config file."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        if path.suffix.lower() == ".json":
            try:
                d = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: not valid JSON ({e})") from e
            return cls.from_dict(d)
        if path.suffix.lower() in (".yaml", ".yml"):
            return cls.from_yaml(path)
        raise ConfigError(f"{path}: config files end in .yaml, .yml or .json, "
                          f"found {path.suffix!r}")


def as_config(config: TrainConfig | Mapping[str, Any] | str | os.PathLike) -> TrainConfig:
    """A :class:`TrainConfig` from a config, a dict, or a YAML/JSON file path."""
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, Mapping):
        return TrainConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return TrainConfig.from_file(config)
    raise ConfigError(f"train: config must be a TrainConfig, a dict or a YAML/JSON path, found "
                      f"{type(config).__name__}")


def scale_lr(lr: float, world_size: int, rule: str = "linear") -> float:
    """Learning rate for ``world_size`` data-parallel workers.

    ``linear``: ``lr * W`` (Goyal et al. 2017); ``sqrt``: ``lr * sqrt(W)``
    (Krizhevsky 2014, often better with Adam/LAMB); ``none``: ``lr``.
    """
    if world_size < 1:
        raise ConfigError(f"world_size: expected an integer >= 1, found {world_size!r}")
    if rule == "linear":
        return lr * world_size
    if rule == "sqrt":
        return lr * math.sqrt(world_size)
    if rule == "none":
        return lr
    raise ConfigError(f"TrainConfig.lr_scaling: expected one of {list(LR_SCALINGS)}, found {rule!r}")


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return v
