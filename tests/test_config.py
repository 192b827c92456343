"""TrainConfig: JSON round trip, precise validation errors, presets."""

import dataclasses
import json
import re

import pytest

from core.config import (
    MONITORS,
    AugmentConfig,
    ConfigError,
    TrainConfig,
    check_field,
    field_limits,
    metric_rises,
    preset_config,
)
from core.train import build_parser


def test_json_round_trip_keeps_every_field():
    config = TrainConfig(
        data="d",
        backbone="resnet50",
        dense_units=64,
        augment=AugmentConfig(rotation=10, horizontal_flip=True, fill_mode="wrap"),
    )
    again = TrainConfig.from_json(config.to_json())
    assert again == config
    assert isinstance(again.augment, AugmentConfig)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("backbone", "alexnet", "backbone: unknown value 'alexnet'"),
        ("image_size", 8, "image_size: must be between 32 and 1024"),
        ("image_size", 160.5, "image_size: must be a whole number"),
        ("dropout", 1.5, "dropout: must be between 0 and 0.95"),
        ("learning_rate", 0, "learning_rate: must be in (0, 1]"),
        ("optimizer", "adagrad", "optimizer: unknown value 'adagrad'"),
        ("val_split", 1.0, "val_split: must be in (0, 1)"),
        ("data", "", "data: choose a dataset folder"),
        ("weights", "imagenet21k", "weights: unknown value 'imagenet21k'"),
    ],
)
def test_validation_names_the_field(field, value, message):
    config = TrainConfig(data="some/folder")
    setattr(config, field, value)
    with pytest.raises(ConfigError) as error:
        config.validate()
    assert message in str(error.value)


def test_augment_fill_mode_is_checked():
    config = TrainConfig(data="d", augment=AugmentConfig(fill_mode="mirror"))
    with pytest.raises(ConfigError, match="augment.fill_mode"):
        config.validate()


def test_unknown_keys_are_rejected():
    with pytest.raises(ConfigError, match="unknown config field.*learnin_rate"):
        TrainConfig.from_dict({"data": "d", "learnin_rate": 0.1})
    with pytest.raises(ConfigError, match="augment.spin"):
        TrainConfig.from_dict({"data": "d", "augment": {"spin": 1}})


def test_invalid_json_is_a_config_error():
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.from_json("{oops")
    with pytest.raises(ConfigError, match="JSON object"):
        TrainConfig.from_json(json.dumps([1, 2]))


def test_seed_preset_is_the_reference_recipe():
    config = preset_config("seed", data="d")
    config.validate()
    assert (config.backbone, config.image_size, config.pooling, config.dense_units) == (
        "inception_v3",
        224,
        "flatten",
        1024,
    )
    assert (config.dropout, config.optimizer, config.learning_rate, config.batch_size) == (
        0.2,
        "rmsprop",
        1e-3,
        16,
    )
    assert (config.patience, config.monitor, config.epochs) == (5, "val_accuracy", 30)
    assert config.augment == AugmentConfig(
        rotation=40, width_shift=0.2, height_shift=0.2, shear=0.2, horizontal_flip=True, fill_mode="nearest"
    )


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        preset_config("nope")


KNOBS = [f.name for f in dataclasses.fields(TrainConfig) if "limits" in f.metadata]


def test_every_knob_except_data_and_augment_has_limits():
    assert set(f.name for f in dataclasses.fields(TrainConfig)) - set(KNOBS) == {"data", "augment"}
    assert all(field_limits(f"augment.{f.name}") for f in dataclasses.fields(AugmentConfig))


@pytest.mark.parametrize("name", KNOBS)
def test_validate_the_cli_and_check_field_read_one_table(name):
    """A value just outside a knob's range (or choices) is refused by check_field, validate()
    and the CLI alike; the range's edges are accepted."""
    limits = field_limits(name)
    flag = "--" + name.replace("_", "-")
    options = {a.dest: a for a in build_parser()._actions}
    if limits.choices:
        assert check_field(name, limits.choices[-1]) is None and check_field(name, "nope")
        if name != "weights":  # the CLI spells null as "none"
            assert tuple(options[name].choices) == limits.choices
        return
    if limits.low is None:
        return
    step = 1 if limits.kind is int else 1e-6
    for value, accepted in [
        (limits.low, not limits.low_open),
        (limits.high, not limits.high_open),
        (limits.low - step, False),
        (limits.high + step, False),
    ]:
        value = limits.kind(value)
        assert (check_field(name, value) is None) == accepted, (name, value)
        config = dataclasses.replace(TrainConfig(data="d"), **{name: value})
        if accepted:
            config.validate()
        else:
            with pytest.raises(ConfigError, match=f"^{name}: "):
                config.validate()
    if flag in options[name].option_strings:
        assert options[name].type is limits.kind and limits.interval in options[name].help


def test_total_epochs_counts_stage_two_only_when_there_is_one():
    assert TrainConfig(data="d", epochs=3, fine_tune_epochs=4).total_epochs == 3
    assert TrainConfig(data="d", epochs=3, fine_tune_epochs=4, fine_tune_layers=10).total_epochs == 7


@pytest.mark.parametrize("monitor", MONITORS)
def test_metric_rises_for_accuracy_and_f1_not_for_a_loss(monitor):
    assert metric_rises(monitor) == (monitor != "val_loss")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"learning_rate": "1e-3"}, "learning_rate: must be a number, got '1e-3'"),
        ({"class_weights": "false"}, "class_weights: must be true or false"),
        ({"augment": {"horizontal_flip": "no"}}, "augment.horizontal_flip: must be true or false"),
        ({"augment": [1, 2]}, "augment: must be an object"),
        ({"epochs": True}, "epochs: must be a whole number"),
        ({"dropout": None}, "dropout: must be a number"),
        ({"feature_layer": 5}, "feature_layer: must be text or null"),
        ({"seed": -1}, "seed: must be between 0"),
        ({"seed": 5_000_000_000}, "seed: must be between 0"),
    ],
)
def test_values_of_the_wrong_type_are_refused_in_one_line(fields, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig.from_dict({"data": "x", **fields}).validate()


def test_a_bad_seed_is_refused_before_the_run_folder_exists(tmp_path):
    from tests.helpers import run_cli

    result = run_cli(
        "core.train", "--data", str(tmp_path), "--runs-dir", str(tmp_path / "runs"), "--seed", "-1"
    )
    assert result.returncode == 2 and result.stderr.startswith("error: seed: must be between 0")
    assert not (tmp_path / "runs").exists()
