"""Parameter validation: invalid run parameters fail with one line naming the parameter."""

import pytest

from galaxy_distillation.params import ParameterError, validate_parameters

BASE = {"dataset": "gz2", "method": "stm", "ipc": 1, "init": "real", "augmented": False, "device": "auto"}


@pytest.mark.parametrize(
    ("override", "name", "allowed"),
    [
        ({"ipc": 0}, "ipc", "positive integer"),
        ({"ipc": -1}, "ipc", "positive integer"),
        ({"ipc": "abc"}, "ipc", "positive integer"),
        ({"ipc": 1.5}, "ipc", "positive integer"),
        ({"ipc": True}, "ipc", "positive integer"),
        ({"method": "foo"}, "method", "stm, mtt"),
        ({"init": "bar"}, "init", "real, noise"),
        ({"dataset": "mnist"}, "dataset", "gz2, cifar10, cifar100, imagefolder"),
        ({"augmented": "maybe"}, "augmented", "true or false"),
        ({"device": "tpu"}, "device", "auto, cpu, cuda"),
    ],
)
def test_invalid_run_parameter_is_named_with_allowed_values(override, name, allowed):
    with pytest.raises(ParameterError) as info:
        validate_parameters({**BASE, **override})
    message = str(info.value)
    assert "\n" not in message
    assert f"'{name}'" in message
    assert allowed in message


def test_valid_parameters_pass_and_words_become_booleans():
    out = validate_parameters({**BASE, "ipc": 10, "augmented": "true"})
    assert out["project"].ipc == 10
    assert out["project"].augmented is True


def test_group_typo_and_bad_value_are_named():
    with pytest.raises(ParameterError, match=r"'distill.stop_rule'"):
        validate_parameters({**BASE, "distill": _distill(stop_rule="never")})
    with pytest.raises(ParameterError, match=r"'distill.syn_stepz'.*unknown parameter"):
        validate_parameters({**BASE, "distill": {**_distill(), "syn_stepz": 3}})
    with pytest.raises(ParameterError, match=r"'curation.n_train_per_class'"):
        validate_parameters({**BASE, "curation": {"k_per_class": 10, "n_train_per_class": 10, "image_size": 32}})


def _distill(**kw):
    base = dict(iterations=10, syn_steps=2, expert_epochs=1, max_start_epoch=2, lr_img=100, lr_lr=0.01,
                lr_init=0.01)
    return {**base, **kw}
