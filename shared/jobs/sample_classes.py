"""The classes a sampling spec asks for (`classes`, `class_grid`), checked against the source
job's training spec when it is submitted: a model that is not conditional draws no class,
and a class past the model's `classes` (when its spec states them) does not exist. A model
whose classes are read from its data is checked by the worker (worker/gan/sample_classes.py).
"""

from __future__ import annotations

from typing import Any

from shared.specs import SampleSpec, SpecError


def check_sample_classes(spec: SampleSpec, trained: dict[str, Any]) -> None:
    """Raise SpecError naming `spec.classes`, `spec.class_grid` or
    `spec.interpolation.classes` when the generator the `trained` spec (a training spec as
    JSON) describes cannot draw the classes asked for."""
    if spec.asked_classes is None:
        return
    field, asked = spec.asked_classes
    model = trained.get("model")
    model = {"family": model} if isinstance(model, str) else model or {}
    if not model.get("conditional"):
        message = f"the model of job {spec.job_id} is not conditional: it draws no classes"
        raise SpecError([{"path": f"spec.{field}", "message": message}])
    classes = model.get("classes")
    listed = [asked] if isinstance(asked, int) else asked
    too_high = [number for number in listed if isinstance(classes, int) and number >= classes]
    if too_high and isinstance(classes, int):
        message = (
            f"class {too_high[0]} does not exist: the model of job {spec.job_id} has "
            f"{classes} classes, 0-{classes - 1}"
        )
        raise SpecError([{"path": f"spec.{field}", "message": message}])
