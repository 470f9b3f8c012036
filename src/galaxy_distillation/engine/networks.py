"""Networks used for expert training, distillation and evaluation.

The main architecture is the ``ConvNet`` family of the dataset-distillation literature
(DC / DSA / MTT, after Gidaris & Komodakis): ``depth`` blocks of
``conv3x3(width, padding=1) -> norm -> activation -> pool2x2`` followed by a linear head.
``instancenorm`` is ``GroupNorm(width, width, affine=True)`` as in that literature, so it
works per-sample and is safe under ``torch.func.vmap`` (batchnorm is not).

ConvNet depth 3, width 128, instancenorm, avgpooling on 3x128x128 with 9 classes has
exactly 594,441 parameters.

Smaller-input variants of other architectures (``mlp``, ``alexnet``, ``vgg11``,
``resnet18``) are provided for cross-architecture evaluation.

Initialisation never touches torch's global generator: a network is first built on the
``meta`` device (no memory, no random draws), then materialised on the CPU and its weights
drawn from an explicit ``torch.Generator`` by :func:`init_parameters_`, exactly as PyTorch's
default initialisation draws them (Kaiming-uniform weights with ``a=sqrt(5)``, biases uniform
in ``+-1/sqrt(fan_in)``, module by module in construction order). A generator seeded ``s``
therefore gives bit-for-bit the weights that ``torch.manual_seed(s)`` followed by plain
construction gave, and several threads can build networks at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .seeding import make_generator

__all__ = [
    "NetworkConfigError",
    "ARCHITECTURES",
    "ConvNet",
    "build_network",
    "build_from_spec",
    "count_parameters",
    "has_batchnorm",
    "init_parameters_",
]

ARCHITECTURES = ("convnet", "mlp", "alexnet", "vgg11", "resnet18")
NORMS = ("instancenorm", "batchnorm", "groupnorm", "layernorm", "none")
POOLINGS = ("avgpooling", "maxpooling", "none")
ACTIVATIONS = ("relu", "leakyrelu", "sigmoid", "gelu")


class NetworkConfigError(ValueError):
    """Raised when a network specification is invalid."""


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise NetworkConfigError(f"unknown {name} {value!r}; expected one of {list(choices)}")


def _norm_layer(norm: str, channels: int, h: int, w: int) -> nn.Module:
    """Normalisation layer for a feature map of shape (channels, h, w)."""
    if norm == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels, affine=True)
    if norm == "groupnorm":
        return nn.GroupNorm(min(4, channels), channels, affine=True)
    if norm == "layernorm":
        return nn.LayerNorm([channels, h, w], elementwise_affine=True)
    if norm == "none":
        return nn.Identity()
    raise NetworkConfigError(f"unknown norm {norm!r}; expected one of {list(NORMS)}")


def _activation(activation: str) -> nn.Module:
    if activation == "relu":
        return nn.ReLU(inplace=False)
    if activation == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.01)
    if activation == "sigmoid":
        return nn.Sigmoid()
    if activation == "gelu":
        return nn.GELU()
    raise NetworkConfigError(f"unknown activation {activation!r}; expected one of {list(ACTIVATIONS)}")


def _pooling(pooling: str) -> nn.Module:
    if pooling == "avgpooling":
        return nn.AvgPool2d(kernel_size=2, stride=2)
    if pooling == "maxpooling":
        return nn.MaxPool2d(kernel_size=2, stride=2)
    if pooling == "none":
        return nn.Identity()
    raise NetworkConfigError(f"unknown pooling {pooling!r}; expected one of {list(POOLINGS)}")


class ConvNet(nn.Module):
    """ConvNet of the dataset-distillation literature.

    Input ``(B, channels, H, W)`` -> logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        im_size: tuple[int, int],
        width: int = 128,
        depth: int = 3,
        norm: str = "instancenorm",
        pooling: str = "avgpooling",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        h, w = int(im_size[0]), int(im_size[1])
        layers: list[nn.Module] = []
        in_ch = channels
        for _ in range(depth):
            layers.append(nn.Conv2d(in_ch, width, kernel_size=3, padding=1))
            layers.append(_norm_layer(norm, width, h, w))
            layers.append(_activation(activation))
            if pooling != "none":
                layers.append(_pooling(pooling))
                h, w = h // 2, w // 2
            in_ch = width
        if h < 1 or w < 1:
            raise NetworkConfigError(f"image size {tuple(im_size)} too small for depth {depth} with pooling")
        self.features = nn.Sequential(*layers)
        self.num_feat = in_ch * h * w
        self.classifier = nn.Linear(self.num_feat, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W) -> logits (B, num_classes)."""
        out = self.features(x)
        return self.classifier(out.flatten(1))


class MLP(nn.Module):
    """Three-layer MLP (128-128 hidden units): (B, C, H, W) -> (B, num_classes)."""

    def __init__(self, channels: int, num_classes: int, im_size: tuple[int, int], width: int = 128,
                 activation: str = "relu") -> None:
        super().__init__()
        d = channels * int(im_size[0]) * int(im_size[1])
        self.net = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(d, width), _activation(activation),
            nn.Linear(width, width), _activation(activation),
            nn.Linear(width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W) -> logits (B, num_classes)."""
        return self.net(x)


class AlexNetSmall(nn.Module):
    """AlexNet-style network for small inputs (as in DC-bench), with optional norm layers."""

    def __init__(self, channels: int, num_classes: int, im_size: tuple[int, int], norm: str = "none",
                 activation: str = "relu") -> None:
        super().__init__()
        h, w = int(im_size[0]), int(im_size[1])
        spec = [(128, 5, 2, True), (192, 5, 2, True), (256, 3, 1, False), (192, 3, 1, False), (192, 3, 1, True)]
        layers: list[nn.Module] = []
        in_ch = channels
        first = True
        for out_ch, k, pad, pool in spec:
            pad_eff = 4 if (first and channels == 1) else pad
            layers.append(nn.Conv2d(in_ch, out_ch, kernel_size=k, stride=1, padding=pad_eff))
            h, w = h + 2 * pad_eff - k + 1, w + 2 * pad_eff - k + 1
            layers.append(_norm_layer(norm, out_ch, h, w))
            layers.append(_activation(activation))
            if pool:
                layers.append(nn.MaxPool2d(2, 2))
                h, w = h // 2, w // 2
            in_ch = out_ch
            first = False
        if h < 1 or w < 1:
            raise NetworkConfigError(f"image size {tuple(im_size)} too small for alexnet")
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(in_ch * h * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W) -> logits (B, num_classes)."""
        return self.fc(self.features(x).flatten(1))


class VGG11Small(nn.Module):
    """VGG-11 for small inputs: conv3x3 stacks with 2x2 max-pools and a single linear head."""

    CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")

    def __init__(self, channels: int, num_classes: int, im_size: tuple[int, int], norm: str = "instancenorm",
                 activation: str = "relu") -> None:
        super().__init__()
        h, w = int(im_size[0]), int(im_size[1])
        layers: list[nn.Module] = []
        in_ch = channels
        for item in self.CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                h, w = h // 2, w // 2
            else:
                out_ch = int(item)
                layers.append(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1))
                layers.append(_norm_layer(norm, out_ch, h, w))
                layers.append(_activation(activation))
                in_ch = out_ch
        if h < 1 or w < 1:
            raise NetworkConfigError(f"image size {tuple(im_size)} too small for vgg11 (needs >= 32)")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_ch * h * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W) -> logits (B, num_classes)."""
        return self.classifier(self.features(x).flatten(1))


class _BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str, h: int, w: int) -> None:
        super().__init__()
        ho, wo = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm_layer(norm, out_ch, ho, wo)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = _norm_layer(norm, out_ch, ho, wo)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), _norm_layer(norm, out_ch, ho, wo)
            )
        self.out_hw = (ho, wo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18Small(nn.Module):
    """ResNet-18 adapted to small inputs: conv1 3x3 stride 1, no max-pool, norm per argument."""

    def __init__(self, channels: int, num_classes: int, im_size: tuple[int, int], norm: str = "instancenorm") -> None:
        super().__init__()
        h, w = int(im_size[0]), int(im_size[1])
        self.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = _norm_layer(norm, 64, h, w)
        blocks: list[nn.Module] = []
        in_ch = 64
        for out_ch, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
            block = _BasicBlock(in_ch, out_ch, stride, norm, h, w)
            h, w = block.out_hw
            blocks.append(block)
            in_ch = out_ch
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W) -> logits (B, num_classes)."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.pool(self.layers(out))
        return self.fc(out.flatten(1))


def build_network(
    arch: str,
    channels: int,
    num_classes: int,
    im_size: tuple[int, int],
    width: int = 128,
    depth: int = 3,
    norm: str = "instancenorm",
    pooling: str = "avgpooling",
    activation: str = "relu",
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build a freshly initialised network, its weights drawn from ``generator`` (never from
    torch's global generator; see :func:`init_parameters_`).

    Args:
        arch: one of ``ARCHITECTURES`` (``"convnet"``, ``"mlp"``, ``"alexnet"``, ``"vgg11"``, ``"resnet18"``).
        channels: input channels C.
        num_classes: number of output logits.
        im_size: (H, W) of the inputs.
        width, depth, pooling: ConvNet width/depth/pooling (``width`` is also the MLP hidden size).
        norm: ``"instancenorm"`` (GroupNorm(C, C)), ``"batchnorm"``, ``"groupnorm"``, ``"layernorm"`` or ``"none"``.
        activation: ``"relu"``, ``"leakyrelu"``, ``"sigmoid"`` or ``"gelu"``.
        generator: a CPU generator the weights are drawn from (``None``: a fresh one seeded 0).
        device: ``"cpu"``, or ``"meta"`` for the structure only (no memory, no draws; e.g. to
            inspect the layers).

    Returns:
        ``nn.Module`` mapping (B, C, H, W) to logits (B, num_classes).
    """
    _check_choice("arch", arch, ARCHITECTURES)
    _check_choice("norm", norm, NORMS)
    _check_choice("pooling", pooling, POOLINGS)
    _check_choice("activation", activation, ACTIVATIONS)
    if channels < 1 or num_classes < 1 or width < 1 or depth < 1:
        raise NetworkConfigError(
            f"channels, num_classes, width and depth must be >= 1 (got {channels}, {num_classes}, {width}, {depth})"
        )
    if len(im_size) != 2 or min(im_size) < 1:
        raise NetworkConfigError(f"im_size must be (H, W) with positive sizes, got {im_size!r}")
    im = (int(im_size[0]), int(im_size[1]))
    with torch.device("meta"):  # construction draws nothing (meta tensors hold no data)
        net = _construct(arch, channels, num_classes, im, width, depth, norm, pooling, activation)
    if torch.device(device).type == "meta":
        return net
    if torch.device(device).type != "cpu":
        raise NetworkConfigError(f"networks are built on the CPU (or 'meta'), got device {device!r}")
    net = net.to_empty(device="cpu")
    return init_parameters_(net, generator if generator is not None else make_generator(0))


def _construct(arch: str, channels: int, num_classes: int, im: tuple[int, int], width: int, depth: int, norm: str,
               pooling: str, activation: str) -> nn.Module:
    if arch == "convnet":
        return ConvNet(channels, num_classes, im, width, depth, norm, pooling, activation)
    if arch == "mlp":
        return MLP(channels, num_classes, im, width, activation)
    if arch == "alexnet":
        return AlexNetSmall(channels, num_classes, im, "none" if norm == "instancenorm" else norm, activation)
    if arch == "vgg11":
        return VGG11Small(channels, num_classes, im, norm, activation)
    return ResNet18Small(channels, num_classes, im, norm)


def build_from_spec(spec: Mapping[str, Any], channels: int, num_classes: int, im_size: tuple[int, int], *,
                    generator: torch.Generator | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Build a network from an architecture dict such as ``{"arch": "convnet", "width": 128, "depth": 3}``.

    Keys other than ``arch`` are passed to :func:`build_network` (with ``generator`` and
    ``device``); unknown keys raise ``NetworkConfigError``.
    """
    spec = dict(spec)
    arch = str(spec.pop("arch", "convnet"))
    allowed = {"width", "depth", "norm", "pooling", "activation"}
    unknown = set(spec) - allowed
    if unknown:
        raise NetworkConfigError(f"unknown architecture keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    return build_network(arch, channels, num_classes, im_size, **spec, generator=generator, device=device)


def init_parameters_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """(Re-)initialise ``module``'s parameters in place from ``generator``, as PyTorch's default
    ``reset_parameters`` would from the global generator in the same state: for every module in
    ``module.modules()`` order (construction order for the networks here), a convolution's or
    linear layer's weight Kaiming-uniform (``a=sqrt(5)``), then its bias uniform in
    ``+-1/sqrt(fan_in)``; normalisation layers get ones, zeros and fresh running statistics
    (no draw). Returns ``module``.

    Raises:
        NetworkConfigError: a layer with parameters this function does not know how to initialise.
    """
    for m in module.modules():
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            with torch.no_grad():
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
            m.reset_parameters()  # ones / zeros (and running statistics): no random draw
        elif any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)):
            raise NetworkConfigError(f"no generator-based initialisation for layer {type(m).__name__}")
    return module


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def has_batchnorm(module: nn.Module) -> bool:
    """True if ``module`` contains a batch-norm layer (not vmap-friendly; uses running buffers)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
