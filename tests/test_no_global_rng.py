"""No random draw in ``src/`` comes from a global generator (torch's, numpy's legacy one or
Python's ``random``): every stochastic step takes an explicit, seeded generator (issue 18).
Read from the source's syntax tree, so a call split over several lines is seen whole."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: torch functions (``torch.<name>``) and in-place tensor / ``nn.init`` methods (``..._``) that
#: draw random numbers: each call must pass ``generator=``
TORCH_DRAWS = {"rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "bernoulli",
               "multinomial", "normal", "poisson", "uniform_", "normal_", "random_", "bernoulli_", "exponential_",
               "geometric_", "log_normal_", "cauchy_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
               "xavier_normal_", "trunc_normal_", "orthogonal_", "sparse_"}
#: calls that use or change a global generator whatever their arguments
GLOBAL = {"manual_seed", "seed", "fork_rng", "set_rng_state", "get_rng_state", "dropout", "Dropout", "Dropout2d",
          "rrelu", "RReLU"}
#: numpy.random names that build an explicit generator (the rest is the legacy global one)
NUMPY_OK = {"default_rng", "SeedSequence", "Generator", "PCG64", "PCG64DXSM", "Philox", "SFC64", "BitGenerator"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if "random" in names:
                found.append(f"{path.name}:{node.lineno}: imports Python's random")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        keywords = {k.arg for k in node.keywords}
        if (name.startswith(("np.random.", "numpy.random.")) and last not in NUMPY_OK) or last in GLOBAL and (
                name.startswith(("torch.", "nn.", "F.", "np.", "random.")) or isinstance(node.func, ast.Name)):
            found.append(f"{path.name}:{node.lineno}: {name}(...) uses a global generator")
        elif last in TORCH_DRAWS and "generator" not in keywords and (
                last.endswith("_") or name.startswith("torch.")):  # rng.normal(...) is a numpy Generator's
            found.append(f"{path.name}:{node.lineno}: {name}(...) without generator=")
    return found


def test_no_global_random_generator_in_src():
    offences = [o for path in sorted(SRC.rglob("*.py")) for o in _offences(path)]
    assert offences == [], "\n".join(offences)


def test_the_check_sees_what_it_must(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import random\nimport numpy as np\nimport torch\nfrom torch import nn\n"
                   "torch.manual_seed(0)\nx = torch.rand(\n    3)\nnp.random.shuffle(x)\n"
                   "nn.init.uniform_(x, 0, 1)\nw = x.normal_()\nd = nn.Dropout(0.5)\n"
                   "ok = torch.randperm(3, generator=g)\nrng = np.random.default_rng(0)\n")
    lines = [o.split(":")[1] for o in _offences(bad)]
    assert lines == ["1", "5", "6", "8", "9", "10", "11"]
