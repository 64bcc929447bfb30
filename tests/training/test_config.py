"""TrainConfig: round trips through YAML/JSON, and every bad key/value names the key."""

from __future__ import annotations

import json
import math

import pytest

from climviz.data.schema import CHANNELS
from climviz.errors import ConfigError
from climviz.training.config import TrainConfig, scale_lr


def test_defaults_are_the_paper_conventions():
    cfg = TrainConfig()
    assert cfg.channels == CHANNELS
    assert cfg.class_weights == "inverse"
    assert cfg.precision == "auto"
    assert cfg.effective_batch_size(world_size=8) == cfg.batch_size * 8


def test_yaml_and_json_round_trip(tmp_path):
    cfg = TrainConfig(model="tiramisu", preset="tiny", epochs=3, batch_size=2, crop=[64, 96],
                      optimizer="lamb", class_weights=[1, 10, 5], lr_milestones=[2],
                      schedule="step", data=tmp_path / "run.nc", model_overrides={"growth": 4})
    assert cfg.crop == (64, 96) and cfg.class_weights == (1.0, 10.0, 5.0)
    assert cfg.data == str(tmp_path / "run.nc")
    for name in ("cfg.yaml", "cfg.yml", "cfg.json"):
        path = cfg.save(tmp_path / name)
        assert TrainConfig.from_file(path) == cfg
    assert TrainConfig.from_yaml(cfg.to_yaml()) == cfg
    # the JSON on disk is plain JSON (lists, no Python objects)
    d = json.loads((tmp_path / "cfg.json").read_text())
    assert d["crop"] == [64, 96] and d["model"] == "tiramisu"


def test_yaml_written_by_hand(tmp_path):
    p = tmp_path / "train.yaml"
    p.write_text("model: DeepLabV3Plus\npreset: tiny\nepochs: 2\nlr: 1e-3\nbatch_size: 8\n"
                 "crop: [64, 64]\nchannels: [TMQ, U850, V850, PSL]\n")
    cfg = TrainConfig.from_file(p)
    assert cfg.model == "deeplabv3plus"       # case-insensitive choices
    assert cfg.lr == pytest.approx(1e-3)
    assert cfg.channels == ("TMQ", "U850", "V850", "PSL")


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"'learning_rate'"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    p = tmp_path / "c.yaml"
    p.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key.*'epoch'.*did you mean 'epochs'"):
        TrainConfig.from_file(p)


@pytest.mark.parametrize(
    "key, value",
    [
        ("model", "unet"),
        ("preset", "deepcam_xl"),
        ("epochs", 0),
        ("epochs", 2.5),
        ("batch_size", -4),
        ("batch_size", True),
        ("crop", [16, 16]),
        ("crop", [64]),
        ("optimizer", "adagrad"),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("lr", "fast"),
        ("lr", "inf"),
        ("lr_scaling", "cubic"),
        ("warmup_epochs", -1),
        ("warmup_epochs", 50),
        ("schedule", "exponential"),
        ("lr_milestones", [3, 2]),
        ("lr_gamma", 1.5),
        ("momentum", 1.0),
        ("betas", [0.9, 1.2]),
        ("weight_decay", -0.1),
        ("class_weights", "median"),
        ("class_weights", [1.0, 2.0]),
        ("class_weights", [1.0, 0.0, 2.0]),
        ("dice_weight", -1),
        ("overlap_loss", "tversky"),
        ("precision", "fp8"),
        ("grad_accum", 0),
        ("grad_clip", 0),
        ("seed", -1),
        ("val_fraction", 1.0),
        ("val_fraction", 0),
        ("checkpoint_every", 0),
        ("loader_workers", -1),
        ("target_miou", 1.5),
        ("channels", []),
        ("channels", ["TMQ", "TMQ"]),
        ("deterministic", "yes"),
        ("max_steps_per_epoch", 0),
    ],
)
def test_impossible_value_names_the_key(key, value):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"epochs": 10, key: value})
    assert f"TrainConfig.{key}" in str(info.value)


def test_step_schedule_needs_milestones():
    with pytest.raises(ConfigError, match="lr_milestones"):
        TrainConfig(schedule="step")


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.from_file(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        TrainConfig.from_file(lst)
    toml = tmp_path / "c.toml"
    toml.write_text("epochs = 2\n")
    with pytest.raises(ConfigError, match=r"\.toml"):
        TrainConfig.from_file(toml)


def test_replace_validates():
    cfg = TrainConfig(epochs=4)
    assert cfg.replace(epochs=5).epochs == 5
    with pytest.raises(ConfigError, match="TrainConfig.epochs"):
        cfg.replace(epochs=-5)
    with pytest.raises(ConfigError, match="nonsense"):
        cfg.replace(nonsense=1)


def test_training_data_prefers_the_argument_then_the_config_and_names_the_field_otherwise():
    assert TrainConfig(data="runs/*.nc").training_data() == "runs/*.nc"
    assert TrainConfig(data="runs/*.nc").training_data(["a.nc"]) == ["a.nc"]
    with pytest.raises(ConfigError, match=r"TrainConfig\.data: no training data given"):
        TrainConfig().training_data()


def test_lr_scaling_rules():
    assert scale_lr(0.1, 4, "linear") == pytest.approx(0.4)
    assert scale_lr(0.1, 4, "sqrt") == pytest.approx(0.2)
    assert scale_lr(0.1, 4, "none") == pytest.approx(0.1)
    assert TrainConfig(lr=0.01, lr_scaling="sqrt").scaled_lr(9) == pytest.approx(0.03)
    assert math.isclose(TrainConfig(lr=0.01, lr_scaling="linear").scaled_lr(1), 0.01)
    with pytest.raises(ConfigError, match="world_size"):
        scale_lr(0.1, 0)


def test_model_presets_agree_with_the_model_registry():
    from climviz.models.registry import PRESETS
    from climviz.training.config import MODEL_PRESETS

    assert {k: set(v) for k, v in MODEL_PRESETS.items()} == {k: set(v) for k, v in PRESETS.items()}
    assert TrainConfig(model="cgnet", preset="tiny", loss="jaccard").model == "cgnet"
