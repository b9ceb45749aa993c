"""Which unfinished jobs name a code bundle: a deletion must not pull it from under them.

A spec names a bundle as `"code": "<sha256>"`: a training job's `spec.model.code` (a GAN
plugin) or a script job's `spec.code`. Both paths are searched in the stored spec JSON, so the
check holds whichever job kinds come to use them.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.models import Job
from shared.states import TERMINAL

# Where a job's spec names a bundle: spec.model.code (train), spec.code (script).
CODE_PATHS: tuple[tuple[str, ...], ...] = (("model", "code"), ("code",))


def jobs_using(
    session: Session, code_id: str, owner_ids: Collection[str] | None = None
) -> list[str]:
    """Ids of the unfinished jobs (of `owner_ids`, or anyone's when None) whose spec names
    bundle `code_id`, oldest first."""
    named = [Job.spec[path].as_string() == code_id for path in CODE_PATHS]
    query = select(Job.id).where(Job.state.not_in([state.value for state in TERMINAL]), or_(*named))
    if owner_ids is not None:
        query = query.where(Job.owner_id.in_(owner_ids))
    return list(session.scalars(query.order_by(Job.created_at, Job.id)))
