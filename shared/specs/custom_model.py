"""The fields of a `custom` model (`"model": {"family": "custom", ...}`): networks of the
user's own, from a code bundle they uploaded, trained by ganforge's engine.

- `code`: the bundle's id, the SHA-256 of its upload (64 lowercase hex characters);
- `generator`, `discriminator`: the classes to build, each `"dotted.module:ClassName"` inside
  the bundle (`"mygan.nets:Generator"`);
- `generator_args`, `discriminator_args`: JSON objects passed as keyword arguments to each
  constructor. Separate, not one shared object, so each constructor takes only its own
  options (a shared one would have to be accepted, all of it, by both classes).

What the classes must look like is the worker's contract (worker/gan/plugins.py). Here is
only what a spec can be checked for without the bundle: the shapes of the strings, and
bounds on the arguments (a spec travels in every checkpoint and job row). No torch here.
"""

from __future__ import annotations

import json
import keyword
import re
from typing import Any

# A bundle's id: the hex SHA-256 of its upload.
CODE_ID = re.compile(r"[0-9a-f]{64}")
# `module.path:ClassName`. Linear to match (each repetition starts with its own `.`, so there
# is one way to split a string), and only matched once the length is under the bound.
CLASS_PATH = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
)
MAX_CLASS_PATH_LENGTH = 200
# Constructor arguments: enough for any architecture's options, small next to a spec's
# other limits (the whole request body is capped by the API).
MAX_ARGS = 64
MAX_ARGS_JSON_BYTES = 16 * 1024
MAX_ARG_NAME_LENGTH = 64
# What ganforge passes to each constructor itself (worker/gan/plugins.py), so args may not.
RESERVED_ARGS: dict[str, tuple[str, ...]] = {
    "generator_args": ("latent_dim", "data_shape"),
    "discriminator_args": ("input_shape",),
}
# Options of the built-in families that mean nothing to a custom model, and the reverse.
BUILT_IN_ONLY = ("width", "depth", "generator_norm")
CUSTOM_ONLY = ("code", "generator", "discriminator", "generator_args", "discriminator_args")
CUSTOM_REQUIRED = ("code", "generator", "discriminator")


def check_code_id(value: str) -> str:
    """`value` when it is a bundle id; ValueError otherwise."""
    if len(value) != 64 or not CODE_ID.fullmatch(value):
        raise ValueError("must be a code bundle's id: 64 lowercase hex characters (its SHA-256)")
    return value


def check_class_path(value: str) -> str:
    """`value` when it names a class as `module.path:ClassName`; ValueError otherwise."""
    if len(value) > MAX_CLASS_PATH_LENGTH or not CLASS_PATH.fullmatch(value):
        raise ValueError(
            f"must name a class in the bundle as 'dotted.module:ClassName' (at most "
            f"{MAX_CLASS_PATH_LENGTH} characters), e.g. 'mygan.nets:Generator'"
        )
    return value


def check_args(args: dict[str, Any], field: str) -> dict[str, Any]:
    """`args` when they can be a constructor's keyword arguments within the bounds;
    ValueError otherwise, starting with the key it blames when it blames one."""
    if len(args) > MAX_ARGS:
        raise ValueError(f"at most {MAX_ARGS} arguments, got {len(args)}")
    for name in args:
        if len(name) > MAX_ARG_NAME_LENGTH or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(
                f"argument names must be Python identifiers of at most {MAX_ARG_NAME_LENGTH} "
                f"characters, got {name[:MAX_ARG_NAME_LENGTH]!r}"
            )
        if name in RESERVED_ARGS[field]:
            raise ValueError(f"{name}: ganforge passes it to the constructor itself")
    size = len(json.dumps(args, separators=(",", ":")).encode())
    if size > MAX_ARGS_JSON_BYTES:
        raise ValueError(f"at most {MAX_ARGS_JSON_BYTES} bytes as JSON, got {size}")
    return args


def family_field_problem(family: str, given: dict[str, bool]) -> str | None:
    """What is wrong with which fields a model of `family` was given (`given`: field name ->
    whether it was set), as a message starting with the field it blames; None when nothing."""
    if family == "custom":
        for name in BUILT_IN_ONLY:
            if given[name]:
                return (
                    f"{name}: a built-in family's option; a custom model is sized by its own "
                    "generator_args and discriminator_args"
                )
        for name in CUSTOM_REQUIRED:
            if not given[name]:
                return f"{name}: model family custom needs it ({_WHAT[name]})"
        return None
    for name in CUSTOM_ONLY:
        if given[name]:
            return f"{name}: only model family custom takes it, not {family}"
    return None


_WHAT = {
    "code": "the id of the code bundle with your networks",
    "generator": "the generator class in the bundle, 'module:ClassName'",
    "discriminator": "the discriminator class in the bundle, 'module:ClassName'",
}
