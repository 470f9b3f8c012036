"""Reporting: the grid maps the distilled images back to display colours with the saved transform."""

from matplotlib.figure import Figure

from galaxy_distillation.params import ReportingParams, TeacherParams
from galaxy_distillation.pipelines.prepare.nodes import prepare
from galaxy_distillation.pipelines.reporting.nodes import distilled_grid


def test_grid_has_one_row_per_class(tiny_model_input):
    data, transform = prepare(tiny_model_input, TeacherParams(zca=False))
    distilled = {"images": data.train_x[:6], "labels": data.train_y[:6] * 0 + data.train_y[[0, 8, 16, 1, 9, 17]],
                 "meta": {"variant": "v", "method": "stm", "ipc": 2, "class_names": data.class_names}}
    fig = distilled_grid(distilled, transform, ReportingParams(grid_max_per_class=2))
    assert isinstance(fig, Figure) and len(fig.axes) >= 3
