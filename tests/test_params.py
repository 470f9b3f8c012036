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


# ---- one source of truth: YAML keys, model fields and engine fields never drift apart ----

def _base_yaml_groups() -> dict:
    from pathlib import Path

    import yaml

    groups: dict = {}
    for path in sorted((Path(__file__).resolve().parents[1] / "conf" / "base").glob("parameters*.yml")):
        groups.update({k: v for k, v in yaml.safe_load(path.read_text()).items() if isinstance(v, dict)})
    return groups


def test_every_model_field_has_a_value_in_the_base_yaml_and_every_yaml_key_a_field():
    from galaxy_distillation.params import PARAMETER_GROUPS

    yaml_groups = _base_yaml_groups()
    assert set(PARAMETER_GROUPS) == set(yaml_groups)
    for group, model in PARAMETER_GROUPS.items():
        assert set(yaml_groups[group]) == set(model.model_fields), group


def test_every_engine_option_is_reachable_from_the_parameters():
    import dataclasses

    from galaxy_distillation.engine import DistillConfig, EvalConfig, ExpertConfig
    from galaxy_distillation.params import DistillParams, EvaluationParams, TeacherParams

    def fields(cls):
        return {f.name for f in dataclasses.fields(cls)}

    run_choices = {"method", "ipc", "init"}
    assert fields(DistillConfig) == (set(DistillParams.model_fields) - DistillParams.NODE_ONLY) | run_choices
    engine_only = {"dsa_params"}  # DSA strengths: the published values, not a setting
    assert fields(ExpertConfig) - engine_only <= set(TeacherParams.model_fields) | {"arch"}
    assert fields(EvalConfig) - engine_only - {"curve_every"} <= set(EvaluationParams.model_fields) | {
        "arch", "n_nets", "epochs"}


def test_engine_configs_have_no_defaults_of_their_own():
    import dataclasses

    from galaxy_distillation.engine import DistillConfig, EvalConfig, ExpertConfig

    for cls, allowed in ((DistillConfig, set()), (ExpertConfig, {"dsa_params"}),
                         (EvalConfig, {"dsa_params", "curve_every"})):
        defaulted = {f.name for f in dataclasses.fields(cls)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
        assert defaulted == allowed, cls.__name__


def test_engine_configs_are_built_from_the_models():
    from galaxy_distillation.params import ArchParams, DistillParams, EvaluationParams, TeacherParams

    d = DistillParams(iterations=7, checkpoint_every=3).engine_config("mtt", 2, "noise", lam=2.0)
    assert (d.method, d.ipc, d.init, d.iterations, d.checkpoint_every, d.lam) == ("mtt", 2, "noise", 7, 3, 2.0)
    model = ArchParams(width=16)
    assert TeacherParams(epochs=3).engine_config(model).arch["width"] == 16
    ev = EvaluationParams(epochs=300, quick_nets=2, quick_epochs_fraction=0.2)
    assert (ev.quick_config(model).n_nets, ev.quick_config(model).epochs) == (2, 60)


@pytest.mark.parametrize("text,value", [("true", True), ("False", False), ("1", True), ("no", False),
                                        (True, True), ("on", True)])
def test_one_flag_parser_names_variants(text, value):
    from galaxy_distillation.names import experts_key, variant_name
    from galaxy_distillation.params import parse_flag

    assert parse_flag(text) is value
    suffix = "aug" if value else "plain"
    assert variant_name("gz2", "stm", 1, "real", text) == f"gz2_stm_ipc1_real_{suffix}"
    assert experts_key("cifar10", text) == f"cifar10_{suffix}"
    with pytest.raises(ValueError):
        parse_flag("maybe")


def _bool_fields():
    """(group, model, field) of every field of the parameter models that takes a boolean."""
    import typing

    from galaxy_distillation.params import PARAMETER_GROUPS, ProjectParams

    for group, model in (("project", ProjectParams), *PARAMETER_GROUPS.items()):
        for name, info in model.model_fields.items():
            args = typing.get_args(info.annotation) or (info.annotation,)
            if info.annotation is bool or bool in args or any(typing.get_origin(a) is typing.Annotated
                                                              and typing.get_args(a)[0] is bool for a in args):
                yield group, model, name


def test_every_boolean_parameter_is_read_by_the_one_flag_parser():
    """``parse_flag`` is the only reader of a boolean word: every boolean field takes its words
    (any case) and refuses what it refuses, pydantic's own extra words (``t``, ``f``) and 1.0 too."""
    from pydantic import ValidationError

    from galaxy_distillation.params import parse_flag

    fields = list(_bool_fields())
    names = {f"{m.__name__}.{n}" for _, m, n in fields}
    assert {"ProjectParams.augmented", "TeacherParams.zca", "DistillParams.log_lr", "EvaluationParams.use_vmap",
            "InsightParams.statmorph", "CompareParams.eval_at_start"} <= names, sorted(names)
    yaml_groups = _base_yaml_groups()  # the base values: every required field set
    for group, model, name in fields:
        base = yaml_groups.get(group, {})
        for word in ("YES", "off", "1", "n", True):
            assert getattr(model(**{**base, name: word}), name) is parse_flag(word), (model.__name__, name, word)
        for word in ("t", "f", 1.0, "maybe"):
            with pytest.raises(ValidationError):
                model(**{**base, name: word})
            with pytest.raises(ValueError):
                parse_flag(word)


def test_stray_boolean_reads_go_through_the_one_flag_parser():
    from galaxy_distillation.pipelines.prepare.nodes import wants_zca
    from galaxy_distillation.pipelines.reporting.nodes import _row

    assert wants_zca("false", "cifar10") is False and wants_zca("auto", "cifar10") is True  # bool("false") was True
    assert wants_zca(None, "cifar10") is False
    with pytest.raises(ValueError):
        wants_zca("maybe", "gz2")
    assert _row({"augmented": "false"})["augmented"] is False and _row({})["augmented"] is False
