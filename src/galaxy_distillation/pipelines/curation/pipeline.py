"""The ``curation`` pipeline: votes -> labels -> top-K selection -> images -> tensors."""

from kedro.pipeline import Pipeline, node, pipeline

from . import nodes as n


def create_pipeline(after_sky: bool = False, **kwargs) -> Pipeline:
    """Wire the curation nodes.

    Args:
        after_sky: order the first node after the mock sky (used by ``__default__``).
    """
    label = (
        node(n.label_catalogue_after_sky, ["vote_catalogue", "mock_sky_manifest"],
             ["labelled_catalog", "label_report"], name="label_catalogue")
        if after_sky
        else node(n.label_catalogue, "vote_catalogue", ["labelled_catalog", "label_report"], name="label_catalogue")
    )
    return pipeline(
        [
            label,
            node(n.select_galaxies, ["labelled_catalog", "params:curation"],
                 ["selected_train_galaxies", "selected_test_galaxies", "selection_report"], name="select_galaxies"),
            node(n.locate_images,
                 ["selected_train_galaxies", "selected_test_galaxies", "filename_mapping", "params:image_dir",
                  "params:curation"],
                 ["train_galaxy_paths", "test_galaxy_paths", "locate_report"], name="locate_images"),
            node(n.load_plain_images, ["train_galaxy_paths", "params:curation"],
                 ["gz2_train_images", "train_load_report"], name="load_train_images"),
            node(n.load_plain_images, ["test_galaxy_paths", "params:curation"],
                 ["gz2_test_images", "test_load_report"], name="load_test_images"),
            node(n.load_augmented_images, ["train_galaxy_paths", "params:curation"],
                 ["gz2_train_images_augmented", "augment_report"], name="augment_train_images"),
            node(n.package_model_input,
                 ["gz2_train_images", "gz2_train_images_augmented", "gz2_test_images", "params:curation"],
                 ["model_input", "model_input_meta"], name="package_model_input"),
            node(n.report_curation,
                 ["label_report", "selection_report", "locate_report", "train_load_report", "test_load_report",
                  "augment_report", "model_input_meta"],
                 "curation_report", name="report_curation"),
            node(n.montage, ["gz2_train_images", "params:curation", "params:votes_path"], "curation_montage", name="curation_montage"),
        ]
    )
