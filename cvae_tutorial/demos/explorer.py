"""Chapter 7's attribute explorer: samples of one model for ticked attributes at a chosen
temperature, and the controls (ipywidgets) that redraw them in JupyterLab. The built web page
has no Python behind it, so the chapter draws the explorer's starting grid once as a static
figure with the same function.
"""
from __future__ import annotations

import torch

START_TEMPERATURE = 0.7
SAMPLES = 16


def start(model_name: str, attribute_names, labels: torch.Tensor) -> dict:
    """The explorer's starting settings: ``model_name``, τ = 0.7 and each attribute ticked
    where it is the commoner value among ``labels`` (the training labels)."""
    typical = labels.mean(0) > 0.5
    return dict(model_name=model_name, temperature=START_TEMPERATURE,
                **{a: bool(v) for a, v in zip(attribute_names, typical)})


@torch.no_grad()
def samples(model, attribute_names, ticked: dict, temperature: float, seed: int,
            count: int = SAMPLES) -> torch.Tensor:
    """``count`` samples of ``model`` for the ticked attributes (the others 0), all with the
    noise of ``seed``, at ``temperature``."""
    device = next(model.parameters()).device
    y = torch.tensor([float(ticked.get(a, False)) for a in attribute_names])
    y = y.expand(count, -1).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    return model.sample(y, generator=generator, temperature=temperature)


def title(model_title: str, temperature: float, attribute_names, ticked: dict) -> str:
    """The grid's title: the model, τ and the attributes ticked ('none' if none)."""
    on = [a.replace("_", " ") for a in attribute_names if ticked.get(a, False)] or ["none"]
    return f"{model_title}, τ = {temperature:.2f}\nattributes on: {', '.join(on)}"


def controls(model_names, attribute_names, settings: dict) -> dict:
    """{setting: widget}: a model menu, a τ slider and one checkbox per attribute, at
    ``settings`` (as :func:`start` gives them)."""
    import ipywidgets as widgets

    found = {"model_name": widgets.Dropdown(options=list(model_names),
                                            value=settings["model_name"],
                                            description="model"),
             "temperature": widgets.FloatSlider(value=settings["temperature"], min=0.0,
                                                max=1.5, step=0.05, description="τ")}
    found.update({a: widgets.Checkbox(value=settings[a], description=a.replace("_", " "),
                                      indent=False) for a in attribute_names})
    return found


def explorer(draw, model_names, attribute_names, settings: dict):
    """The live explorer: :func:`controls` above an output area where ``draw(**settings)``
    redraws the grid whenever a control changes."""
    import ipywidgets as widgets

    found = controls(model_names, attribute_names, settings)
    grid = widgets.Output()

    def redraw(change):
        with grid:
            grid.clear_output(wait=True)
            draw(**{key: control.value for key, control in found.items()})

    for control in found.values():
        control.observe(redraw, names="value")
    boxes = widgets.GridBox([found[a] for a in attribute_names],
                            layout=widgets.Layout(grid_template_columns="repeat(5, 170px)"))
    return widgets.VBox([widgets.HBox([found["model_name"], found["temperature"]]), boxes,
                         widgets.Label("change a control to redraw the grid above here"),
                         grid])
