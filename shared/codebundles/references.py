"""The check the API runs at submission on a spec that names a code bundle: the bundle is one
the submitter may use, and it holds every module the spec imports from it (read from the
module list made at upload, shared/codebundles/modules.py: no code runs to check it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NoReturn

from sqlalchemy.orm import Session

from shared.codebundles.bundles import BundleView, CodeBundleNotFoundError, get_bundle
from shared.codebundles.modules import is_module_path, module_of
from shared.models import User
from shared.specs import SpecError

CODE_ID = re.compile(r"^[0-9a-f]{64}$")


def is_code_id(value: object) -> bool:
    """Whether `value` has the shape of a bundle id (a SHA-256 in lowercase hex): checked
    before it reaches a query."""
    return isinstance(value, str) and bool(CODE_ID.fullmatch(value))


def check_code_reference(
    session: Session,
    owner: User,
    code_id: str,
    modules: Mapping[str, str] | Sequence[str],
    field_prefix: str,
) -> BundleView:
    """For a spec whose `<field_prefix>.code` names a bundle: the bundle must be one `owner`
    may use (theirs or shared with the lab; an admin's: any) and hold every module the spec
    imports from it; otherwise SpecError naming each field at fault (the API answers 422).

    `modules` maps each field (under `field_prefix`) to the module it names, `mygan.nets` or
    `mygan.nets:Generator` (what follows `:` is an attribute, which only running the code
    could check); a plain list is reported against `<field_prefix>.code`."""
    code_field = f"{field_prefix}.code"
    if not is_code_id(code_id):
        _refuse(
            code_field,
            "must be a code bundle id: the 64 hex characters `ganforge code push` prints",
        )
    try:
        view = get_bundle(session, owner, code_id)
    except CodeBundleNotFoundError:
        _refuse(code_field, f"no code bundle {code_id} among yours")
    named = modules.items() if isinstance(modules, Mapping) else ((None, m) for m in modules)
    present = set(view.archive.modules)
    problems = []
    for field, reference in named:
        path = f"{field_prefix}.{field}" if field else code_field
        module = module_of(reference)
        if not is_module_path(module):
            problems.append(
                {"path": path, "message": f"{reference!r} names no module (like mygan.nets)"}
            )
        elif module not in present:
            problems.append(
                {"path": path, "message": f"module {module} is not in bundle {code_id}"}
            )
    if problems:
        raise SpecError(problems)
    return view


def _refuse(path: str, message: str) -> NoReturn:
    raise SpecError([{"path": path, "message": message}])
