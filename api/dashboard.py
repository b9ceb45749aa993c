"""/ui/: the web dashboard, served by the API itself.

The pages are server-rendered shells (api/templates/ui/) with a little vanilla JavaScript
(api/static/ui/): no build step, no CDN, nothing fetched from outside, so it works offline.
The pages hold no data and need no session: the browser keeps the bearer token in
sessionStorage and every page's script calls the JSON API with `Authorization: Bearer`, so
what a person may see and do is exactly what the API lets their token do.

A Content-Security-Policy keeps every page to this origin: scripts and styles from
/ui/static only, images from here or the blob: URLs the scripts make of artifacts they
downloaded (an <img> cannot send the bearer header, so artifacts are fetched and shown as
object URLs).
"""

from __future__ import annotations

from typing import Any, get_args

from flask import Blueprint, Response, render_template

from shared.specs import JobKind, LossName, ModelFamily
from shared.specs.data import ToySource
from shared.specs.sample import InterpolationMethod
from shared.states import JobState

bp = Blueprint(
    "ui",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
# The data sources the submit form offers: the toy sets, and MNIST from a worker folder
# (other sources take uploads or store keys; "run again" keeps whatever the job had).
FORM_SOURCES = (*get_args(ToySource), "mnist")


@bp.after_request
def _confine(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _page(template: str, **context: Any) -> str:
    return render_template(f"ui/{template}", **context)


@bp.get("/")
def jobs_page() -> str:
    return _page(
        "jobs.html",
        page="jobs",
        title="Jobs",
        states=[state.value for state in JobState],
        kinds=get_args(JobKind),
    )


@bp.get("/login")
def login_page() -> str:
    return _page("login.html", page="login", title="Log in")


@bp.get("/jobs/<id:job_id>")
def job_page(job_id: str) -> str:
    return _page(
        "job.html",
        page="job",
        title="Job",
        job_id=job_id,
        interpolation_methods=get_args(InterpolationMethod),
    )


@bp.get("/compare")
def compare_page() -> str:
    """Runs side by side: ?tag= (repeatable) and/or ?ids=, and ?metric= for the curves."""
    return _page("compare.html", page="compare", title="Compare")


@bp.get("/pool")
def pool_page() -> str:
    return _page("pool.html", page="pool", title="Pool")


@bp.get("/submit")
def submit_page() -> str:
    return _page(
        "submit.html",
        page="submit",
        title="Submit",
        sources=FORM_SOURCES,
        families=get_args(ModelFamily),
        losses=get_args(LossName),
    )
