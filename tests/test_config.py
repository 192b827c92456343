"""TrainConfig: JSON round trip, precise validation errors, presets."""

import json
import re

import pytest

from core.config import AugmentConfig, ConfigError, TrainConfig, preset_config


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
        ("val_split", 1.0, "val_split: must be between 0 and 1"),
        ("data", "", "data: choose a dataset folder"),
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
