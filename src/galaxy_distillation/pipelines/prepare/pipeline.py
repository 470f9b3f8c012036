"""The ``prepare`` pipeline: one node, included by every model stage (Kedro runs it once per run)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import prepare


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline([node(prepare, ["model_input", "params:teacher"], ["prepared_data", "data_transform"],
                          name="prepare")])
