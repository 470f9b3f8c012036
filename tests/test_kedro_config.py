"""The Kedro configuration: every environment loads and validates; variants get their own files."""

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from galaxy_distillation.params import validate_parameters
from galaxy_distillation.settings import CONFIG_LOADER_ARGS

CONF = Path(__file__).resolve().parents[1] / "conf"


def _loader(env: str, **runtime) -> OmegaConfigLoader:
    args = {k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"}
    return OmegaConfigLoader(conf_source=str(CONF), default_run_env=env, runtime_params=runtime, **args)


@pytest.mark.parametrize("env", ["local", "paper", "cifar10"])
def test_every_environment_loads_and_validates(env):
    params = _loader(env)["parameters"]
    typed = validate_parameters(params)
    assert set(typed) >= {"project", "sky", "curation", "teacher", "distill", "evaluation", "model"}


def test_paper_environment_is_the_papers_configuration():
    p = _loader("paper")["parameters"]
    assert p["curation"]["image_size"] == 128
    assert (p["curation"]["k_per_class"], p["curation"]["n_train_per_class"]) == (600, 500)
    assert (p["teacher"]["n_experts"], p["teacher"]["epochs"]) == (100, 50)
    assert (p["model"]["width"], p["model"]["depth"]) == (128, 3)
    from galaxy_distillation.params import DistillParams

    d = DistillParams(**p["distill"]).engine_config("stm", 1, "real", dataset="gz2")  # 'preset' values from presets.py
    assert (d.syn_steps, d.lr_img, d.lr_init, d.lam) == (50, 10000, 1e-4, 5.0)
    assert (p["evaluation"]["n_nets"], p["evaluation"]["epochs"]) == (5, 1000)


def test_runtime_params_name_variant_files_and_default_is_cpu_sized():
    base = _loader("local")
    assert base["parameters"]["curation"]["image_size"] == 32
    default_path = base["catalog"]["distilled_set"]["dataset"]["filepath"]
    assert "mock_stm_ipc1_real_plain" in default_path
    other = _loader("local", ipc=10, method="mtt", init="noise", augmented="true")
    path = other["catalog"]["distilled_set"]["dataset"]["filepath"]
    assert "mock_mtt_ipc10_noise_aug" in path
    assert other["catalog"]["expert_trajectories"]["path"].endswith("experts/mock_aug")
    assert other["parameters"]["variant"] == "mock_mtt_ipc10_noise_aug"
    assert other["parameters"]["ipc"] == 10


@pytest.mark.parametrize(("env", "runtime", "label"), [
    ("local", {}, "mock"),                                           # the built-in mock sky
    ("local", {"storage_root": "s3://b/run"}, "mock"),               # the mock sky in a bucket
    ("local", {"votes_path": "/data/gz2/gz2_hart16.csv.gz"}, "gz2"),  # real GZ2 files
    ("paper", {}, "gz2"),                                            # the paper's real GZ2 paths
    ("local", {"dataset": "cifar10"}, "cifar10"),
])
def test_names_say_mock_sky_or_real_gz2(env, runtime, label):
    config = _loader(env, **runtime)
    params, catalog = config["parameters"], config["catalog"]
    assert params["data_label"] == label
    assert params["variant"] == f"{label}_stm_ipc1_real_plain"
    assert f"/evaluation_{label}_stm_ipc1_real_plain.json" in catalog["evaluation_results"]["dataset"]["filepath"]
    assert catalog["expert_trajectories"]["path"].endswith(f"experts/{label}_plain")
    assert catalog["full_baseline"]["dataset"]["filepath"].endswith(f"full_{label}_plain.json")
    assert catalog["compare_curves"]["filepath"].endswith(f"compare_{label}_ipc1_plain.csv")
    assert catalog["{table}.results_csv"]["filepath"].endswith(f"{{table}}_{label}.csv")


def test_catalog_entries_carry_kedro_viz_layers():
    catalog = _loader("local")["catalog"]
    layered = [name for name, entry in catalog.items()
               if isinstance(entry, dict) and "metadata" in entry and not name.startswith("_")]
    assert {"labelled_catalog", "model_input", "expert_trajectories", "distilled_set",
            "evaluation_results"} <= set(layered)
    for name in layered:
        assert catalog[name]["metadata"]["kedro-viz"]["layer"]


def test_two_image_folders_never_share_a_file_name():
    """Every file a run or a sweep writes names the image folder it came from (data_root), so a
    second folder's run never overwrites (or resumes, or skips on) the first one's."""
    from kedro.io import DataCatalog

    def paths(data_root):
        config = _loader("local", dataset="imagefolder", data_root=data_root)
        catalog = DataCatalog.from_config({k: v for k, v in config["catalog"].items() if not k.startswith("_")})
        names = ["expert_trajectories", "data_transform", "full_baseline", "distilled_set", "evaluation_results",
                 "plain.expert_trajectories", "plain.full_baseline", "stm_ipc1_real_plain.distilled_set",
                 "stm_ipc1_real_plain.evaluation_results", "table.results_markdown"]
        return [str(catalog.get(n)._describe()) for n in names], config["parameters"]["variant"]

    (a, variant_a), (b, variant_b) = paths("data/shapes"), paths("/elsewhere/shapes")
    assert not set(a) & set(b) and variant_a != variant_b
    from galaxy_distillation.names import source_name

    assert variant_a == f"{source_name('imagefolder', 'data/shapes')}_stm_ipc1_real_plain"
    assert source_name("imagefolder", "data/shapes").startswith("imagefolder-shapes-")
    assert source_name("gz2", "data/shapes") == "gz2" and source_name("cifar10", "/x") == "cifar10"
    assert paths("data/shapes") == (a, variant_a)  # the same folder: the same names
