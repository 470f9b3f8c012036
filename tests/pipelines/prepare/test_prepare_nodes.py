"""The prepare node: one normalisation (and ZCA) for every stage, and its saved inverse."""

import torch

from galaxy_distillation.datasets import TensorDictDataset
from galaxy_distillation.params import TeacherParams
from galaxy_distillation.pipelines.prepare.nodes import display_images, prepare


def test_prepared_tensors_are_normalised_and_the_saved_transform_inverts_them(tiny_model_input, tmp_path):
    data, transform = prepare(tiny_model_input, TeacherParams(zca=False))
    assert data.train_x.dtype == torch.float32 and data.num_classes == 3 and data.zca is None
    assert abs(float(data.train_x.mean())) < 0.05
    ds = TensorDictDataset(str(tmp_path / "transform.safetensors"))
    ds.save(transform)
    back = display_images(data.test_x, ds.load())
    torch.testing.assert_close(back, tiny_model_input["test_x"].float() / 255, atol=1e-5, rtol=0)


def test_zca_state_is_saved_and_display_undoes_it(tiny_model_input, tmp_path):
    data, transform = prepare(tiny_model_input, TeacherParams(zca=True))
    assert data.zca is not None and transform["meta"]["zca"]
    plain, _ = prepare(tiny_model_input, TeacherParams(zca=False))
    assert not torch.allclose(data.train_x, plain.train_x)
    ds = TensorDictDataset(str(tmp_path / "transform.safetensors"))
    ds.save(transform)
    back = display_images(data.train_x, ds.load())
    torch.testing.assert_close(back, tiny_model_input["train_x"].float() / 255, atol=1e-3, rtol=0)
