"""Network initialisation from an explicit generator (issue 18): the same weights, bit for bit,
as the old path (torch's global generator seeded inside ``fork_rng``, then plain construction),
for every architecture; torch's global generator neither used nor changed."""

from __future__ import annotations

import pytest
import torch

from galaxy_distillation.engine import networks as N
from galaxy_distillation.engine.evaluation import init_network
from galaxy_distillation.engine.seeding import derive_seed, make_generator


def _old_init(spec: dict, channels: int, num_classes: int, im_size: tuple[int, int], seed: int) -> torch.nn.Module:
    """The initialisation before issue 18, written out: seed the global generator, construct."""
    spec = dict(spec)
    arch, width, depth = spec.pop("arch"), spec.get("width", 128), spec.get("depth", 3)
    norm, pooling, activation = spec.get("norm", "instancenorm"), spec.get("pooling", "avgpooling"), \
        spec.get("activation", "relu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if arch == "convnet":
            return N.ConvNet(channels, num_classes, im_size, width, depth, norm, pooling, activation)
        if arch == "mlp":
            return N.MLP(channels, num_classes, im_size, width, activation)
        if arch == "alexnet":
            return N.AlexNetSmall(channels, num_classes, im_size, "none" if norm == "instancenorm" else norm,
                                  activation)
        if arch == "vgg11":
            return N.VGG11Small(channels, num_classes, im_size, norm, activation)
        return N.ResNet18Small(channels, num_classes, im_size, norm)


CASES = [
    ({"arch": "convnet", "width": 128, "depth": 3}, 3, 9, (128, 128)),  # the paper's network (default run)
    ({"arch": "convnet", "width": 8, "depth": 2, "norm": "batchnorm", "pooling": "maxpooling"}, 1, 3, (8, 8)),
    ({"arch": "convnet", "width": 8, "depth": 2, "norm": "layernorm", "pooling": "none"}, 3, 4, (8, 8)),
    ({"arch": "convnet", "width": 8, "depth": 2, "norm": "groupnorm", "activation": "gelu"}, 3, 4, (8, 8)),
    ({"arch": "convnet", "width": 8, "depth": 1, "norm": "none", "activation": "sigmoid"}, 3, 4, (8, 8)),
    ({"arch": "mlp", "width": 16, "activation": "leakyrelu"}, 3, 4, (8, 8)),
    ({"arch": "alexnet"}, 3, 4, (32, 32)),
    ({"arch": "alexnet", "norm": "batchnorm"}, 1, 4, (32, 32)),
    ({"arch": "vgg11"}, 3, 4, (32, 32)),
    ({"arch": "resnet18"}, 3, 4, (16, 16)),
    ({"arch": "resnet18", "norm": "batchnorm"}, 3, 4, (16, 16)),
]


@pytest.mark.parametrize("spec,channels,num_classes,im_size", CASES, ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_every_architecture_starts_from_the_old_weights_bit_for_bit(spec, channels, num_classes, im_size):
    seed = derive_seed(7, 3, 0)  # a 63-bit seed, as the experts' and evaluation nets' are
    before = torch.random.get_rng_state()
    new = init_network(spec, channels, num_classes, im_size, seed)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator untouched
    old = _old_init(spec, channels, num_classes, im_size, seed)
    assert list(new.state_dict()) == list(old.state_dict())
    for name, value in old.state_dict().items():
        assert new.state_dict()[name].dtype == value.dtype and torch.equal(new.state_dict()[name], value), name
    assert [type(m) for m in new.modules()] == [type(m) for m in old.modules()]


def test_the_global_generator_plays_no_part():
    spec = {"arch": "convnet", "width": 8, "depth": 2}
    torch.manual_seed(1)
    a = init_network(spec, 3, 4, (8, 8), 5)
    torch.manual_seed(2)
    b = N.build_from_spec(spec, 3, 4, (8, 8), generator=make_generator(5))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = init_network(spec, 3, 4, (8, 8), 6)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_meta_networks_hold_no_data_and_draw_nothing():
    before = torch.random.get_rng_state()
    net = N.build_from_spec({"arch": "convnet", "norm": "batchnorm"}, 3, 9, (128, 128), device="meta")
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(p.is_meta for p in net.parameters()) and N.has_batchnorm(net)
    assert N.count_parameters(net) > 0
    with pytest.raises(N.NetworkConfigError, match="CPU"):
        N.build_from_spec({"arch": "mlp"}, 3, 2, (4, 4), device="cuda")


def test_a_layer_without_a_known_initialisation_is_refused():
    with pytest.raises(N.NetworkConfigError, match="PReLU"):
        N.init_parameters_(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.PReLU()), make_generator(0))


def test_evaluation_and_expert_training_leave_the_global_generator_alone():
    from galaxy_distillation.engine.evaluation import EvalConfig, evaluate_images
    from galaxy_distillation.engine.experts import ExpertConfig, train_expert

    g = make_generator(0)
    x, y = torch.randn(6, 3, 8, 8, generator=g), torch.tensor([0, 1, 2] * 2)
    arch = {"arch": "convnet", "width": 4, "depth": 1}
    before = torch.random.get_rng_state()
    cfg = EvalConfig(n_nets=2, epochs=1, batch_size=4, momentum=0.9, weight_decay=5e-4, lr_decay_at=0.5,
                     dsa_strategy="color_crop_cutout_flip_scale_rotate", arch=arch, use_vmap=True, vmap_on_cpu=True,
                     eval_batch_size=8, vmap_max_images=100, compile=False)
    evaluate_images(x, y, x, y, 3, 0.01, cfg, seed=1, device=torch.device("cpu"), progress=False)
    train_expert(x, y, x, y, 3, ExpertConfig(epochs=1, lr=0.01, batch_size=4, momentum=0.9, weight_decay=5e-4,
                                             dsa_strategy="flip", arch=arch, eval_batch_size=8,
                                             precision="fp32", compile=False),
                 seed=2, device=torch.device("cpu"), progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)
