"""The ``sky`` pipeline: the mock GZ2 sky in the real file layout."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import render_mock_sky


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                render_mock_sky,
                inputs=["params:sky", "params:votes_path", "params:storage_root"],
                outputs=["mock_sky_manifest", "vote_catalogue"],
                name="render_mock_sky",
            )
        ]
    )
