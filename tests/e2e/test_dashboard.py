"""The dashboard in a real headless Chromium (Selenium and Debian's chromedriver) against the
real service: log in with a token, open every page, submit a ring8 job from the form, watch
it on its page, sample and interpolate from it, run it again with changes and cancel that.

Screenshots of each step go to a pytest temporary folder; the test prints where.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.conftest import Service
from tests.helpers import RING_SPEC

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Headless, no sandbox (CI runs as root), and nothing that reaches the network on its own.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1800",
)
# Seconds to wait for a page to show something the service does within a second or two; a
# job's run is waited for longer (see JOB_S).
PAGE_S = 30
JOB_S = 240
STEPS = 300
PROGRESS = re.compile(r"step (\d+) / (\d+)")


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dashboard-screenshots")
    print(f"dashboard screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(
            f"the dashboard test needs Chromium and its driver, missing: {', '.join(missing)}; "
            "install them with `apt-get install chromium chromium-driver` "
            "(`make test` does when it can)",
            pytrace=False,
        )
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver_log = profile.parent / "chromedriver.log"
    driver = webdriver.Chrome(
        service=ChromeService(executable_path=str(CHROMEDRIVER), log_output=str(driver_log)),
        options=options,
    )
    try:
        yield driver
    finally:
        driver.quit()


def _curves_read_smooth_and_zoom(dashboard: Dashboard) -> None:
    """The first chart: hovering shows the step and each curve's value there; smoothing
    redraws the curve; a drag zooms into steps and a double-click shows them all again."""
    chart = dashboard.browser.find_element(By.CSS_SELECTOR, "#curves .chart")
    figure = chart.find_element(By.CSS_SELECTOR, ".chart-figure")
    line = lambda: chart.find_element(By.CSS_SELECTOR, "svg polyline").get_attribute("points")  # noqa: E731
    first_label = lambda: chart.find_element(By.CSS_SELECTOR, "svg text:nth-of-type(4)").text  # noqa: E731
    ActionChains(dashboard.browser).move_to_element(figure).perform()
    tip = chart.find_element(By.CSS_SELECTOR, ".chart-tip")
    dashboard.wait("the hover values", lambda: tip.is_displayed() and "step" in tip.text)
    assert re.search(r"step [\d,]+\n.+: -?[\d.]", tip.text), tip.text
    raw, whole = line(), first_label()
    slider = chart.find_element(By.CSS_SELECTOR, ".chart-controls input[type=range]")
    dashboard.browser.execute_script(
        "arguments[0].value = '0.9'; arguments[0].dispatchEvent(new Event('input'))", slider
    )
    assert line() != raw, "smoothing redraws the curve"
    width = figure.size["width"]
    ActionChains(dashboard.browser).move_to_element_with_offset(figure, -width // 4, 0) \
        .click_and_hold().move_by_offset(width // 4, 0).release().perform()  # fmt: skip
    reset = chart.find_element(By.CSS_SELECTOR, ".chart-controls button")
    dashboard.wait("the zoom", lambda: reset.is_displayed() and first_label() != whole)
    ActionChains(dashboard.browser).double_click(figure).perform()
    dashboard.wait("all steps again", lambda: first_label() == whole and not reset.is_displayed())


@pytest.fixture(scope="module")
def dashboard(browser: WebDriver, service: Service, screenshots: Path) -> Dashboard:
    return Dashboard(browser, service, screenshots)


class Dashboard:
    """The browser on the service's dashboard, with waits that say what never happened."""

    def __init__(self, browser: WebDriver, service: Service, screenshots: Path) -> None:
        self.browser, self.service, self.screenshots = browser, service, screenshots
        self.shots = 0

    @property
    def token(self) -> str:
        return str(self.service.http.headers["Authorization"]).split(" ", 1)[1]

    def open(self, path: str) -> None:
        self.browser.get(self.service.url(path))

    def find(self, element_id: str) -> WebElement:
        return self.browser.find_element(By.ID, element_id)

    def wait(self, what: str, condition: Callable[[], Any], timeout_s: float = PAGE_S) -> Any:
        """Wait until `condition()` is truthy and return its value; on timeout, fail with a
        screenshot and what the page said."""
        try:
            return WebDriverWait(self.browser, timeout_s, poll_frequency=0.2).until(
                lambda _driver: condition()
            )
        except TimeoutException:
            shot = self.shot(f"never-{re.sub(r'[^a-z0-9]+', '-', what.lower())}")
            error = self.browser.find_elements(By.ID, "error")
            said = error[0].text if error else ""
            raise AssertionError(
                f"never saw {what} on {self.browser.current_url} (page error: {said!r}; "
                f"screenshot {shot})"
            ) from None

    def visible(self, element_id: str, timeout_s: float = PAGE_S) -> WebElement:
        return self.wait(  # type: ignore[no-any-return]
            f"#{element_id} shown",
            lambda: (e := self.find(element_id)).is_displayed() and e,
            timeout_s,
        )

    def shot(self, name: str) -> Path:
        self.shots += 1
        path = self.screenshots / f"{self.shots:02d}-{name}.png"
        self.browser.save_screenshot(str(path))
        return path

    def script(self, source: str, *args: Any) -> Any:
        return self.browser.execute_script(source, *args)

    def image_loaded(self, element_id: str) -> bool:
        return bool(
            self.script(
                "const i = document.getElementById(arguments[0]);"
                "return !i.hidden && i.complete && i.naturalWidth > 0"
                " && i.src.startsWith('blob:');",
                element_id,
            )
        )

    def fill(self, values: dict[str, Any]) -> None:
        for element_id, value in values.items():
            field = self.find(element_id)
            if field.tag_name == "select":
                Select(field).select_by_value(str(value))
            else:
                field.clear()
                field.send_keys(str(value))

    def progress(self) -> tuple[int, int] | None:
        found = PROGRESS.search(self.find("progress-text").text)
        return (int(found.group(1)), int(found.group(2))) if found else None

    def state(self) -> str:
        return str(self.find("job-state").text)

    def job_id(self) -> str:
        return str(
            self.wait("a job page", lambda: self.script("return document.body.dataset.jobId"))
        )


def log_in(dashboard: Dashboard) -> None:
    dashboard.open("/ui/")
    dashboard.wait("the login page", lambda: "/ui/login" in dashboard.browser.current_url)
    dashboard.fill({"token": "gf_not-a-token"})
    dashboard.find("login-button").click()
    refused = dashboard.visible("login-message")
    assert "Not logged in" in refused.text
    dashboard.fill({"token": dashboard.token})
    dashboard.find("login-button").click()
    dashboard.wait("the jobs page", lambda: dashboard.browser.current_url.endswith("/ui/"))


def test_logging_in_with_a_token_opens_every_page(dashboard: Dashboard) -> None:
    log_in(dashboard)
    dashboard.shot("jobs")
    dashboard.open("/ui/pool")
    node = dashboard.wait(
        "the worker's node",
        lambda: dashboard.browser.find_elements(By.CSS_SELECTOR, '[data-node="e2e-node"]'),
    )[0]
    assert "cpu slot" in node.text
    dashboard.shot("pool")
    dashboard.open("/ui/submit")
    preview = dashboard.wait("the request preview", lambda: dashboard.find("submit-preview").text)
    assert '"kind": "train"' in preview
    dashboard.shot("submit")
    dashboard.find("logout").click()
    dashboard.wait("the login page", lambda: "/ui/login" in dashboard.browser.current_url)
    log_in(dashboard)


def test_a_job_from_the_form_shows_progress_samples_curves_and_an_interpolation(
    dashboard: Dashboard,
) -> None:
    dashboard.open("/ui/submit")
    dashboard.fill(
        {
            "f-name": "dashboard-ring",
            "f-source": "toy:ring8",
            "f-family": "mlp",
            "f-width": RING_SPEC["model"]["width"],
            "f-latent": RING_SPEC["latent"]["dim"],
            "f-steps": STEPS,
            "f-batch": RING_SPEC["train"]["batch_size"],
            "f-lr": RING_SPEC["train"]["lr"],
            "f-seed": 1,
            "f-sample-every": 100,
            "f-checkpoint-every": 100,
        }
    )
    dashboard.find("submit-button").click()
    job_id = dashboard.wait("the new job's page", lambda: _job_page_id(dashboard))
    assert dashboard.service.job(job_id)["spec"]["train"]["steps"] == STEPS

    # Progress arrives over the event stream, then the job ends and its pictures show.
    dashboard.wait("progress", dashboard.progress, JOB_S)
    dashboard.shot("job-progress")
    dashboard.wait("the job succeeded", lambda: dashboard.state() == "succeeded", JOB_S)
    assert dashboard.wait("the last step", lambda: dashboard.progress() == (STEPS, STEPS))
    dashboard.wait("the sample grid", lambda: dashboard.image_loaded("grid-image"))
    assert "300" in dashboard.find("grid-step").text
    dashboard.wait("the timeline", lambda: dashboard.image_loaded("timeline-gif"))
    dashboard.wait("the evaluation picture", lambda: dashboard.image_loaded("evaluation-image"))
    assert "modes_covered" in dashboard.find("evaluation-figures").text
    dashboard.wait(
        "the curves",
        lambda: dashboard.browser.find_elements(By.CSS_SELECTOR, "#curves svg polyline"),
    )
    _curves_read_smooth_and_zoom(dashboard)
    # The events come over the stream (polled once a second); the state shown may come first
    # from a reload of the job, so the last event is waited for rather than read at once.
    dashboard.wait(
        "every state in the events",
        lambda: all(
            state in dashboard.find("events-body").text
            for state in ("queued", "running", "succeeded")
        ),
    )
    artifacts = dashboard.find("artifacts-body").text
    assert "checkpoints/step-000300.pt" in artifacts and "timeline.gif" in artifacts
    dashboard.shot("job-succeeded")

    # The scrubber walks the sample grids; the first is step 100.
    scrubber = dashboard.find("scrubber")
    scrubber.send_keys(Keys.HOME)
    dashboard.wait("the first grid", lambda: "step 100 " in dashboard.find("scrub-step").text)
    dashboard.wait("its picture", lambda: dashboard.image_loaded("scrub-image"))

    # The sample grid opens by itself (a new tab of the image's object URL).
    tabs = set(dashboard.browser.window_handles)
    dashboard.find("grid-open").click()
    opened = dashboard.wait("the grid's tab", lambda: set(dashboard.browser.window_handles) - tabs)
    here = dashboard.browser.current_window_handle
    dashboard.browser.switch_to.window(opened.pop())
    assert dashboard.browser.current_url.startswith("blob:")
    dashboard.shot("grid-opened")
    dashboard.browser.close()
    dashboard.browser.switch_to.window(here)

    # Sampling: seeds, then an interpolation of 16 images with a slider over them.
    dashboard.visible("sampling-section")
    dashboard.fill({"sample-seeds": "1 2 3 4"})
    dashboard.find("sample-button").click()
    dashboard.wait("the sampled grid", lambda: dashboard.image_loaded("sample-image"), JOB_S)
    dashboard.fill({"interp-from": 1, "interp-to": 2, "interp-steps": 16, "interp-method": "lerp"})
    dashboard.find("interpolate-button").click()
    dashboard.visible("interpolation-result-section", JOB_S)
    assert dashboard.find("interpolation-index").text == "1 of 16"
    first = _frame_pixels(dashboard)
    dashboard.find("interpolation-slider").send_keys(Keys.ARROW_RIGHT * 9)
    dashboard.wait(
        "the slider's tenth image", lambda: dashboard.find("interpolation-index").text == "10 of 16"
    )
    assert _frame_pixels(dashboard) != first
    dashboard.shot("interpolation")
    sampled = dashboard.service.http.get(
        dashboard.service.url("/api/v1/jobs?kind=sample"), timeout=30
    ).json()["jobs"]
    interpolation = next(j for j in sampled if j["spec"].get("interpolation"))
    asked = interpolation["spec"]["interpolation"]
    assert {k: asked[k] for k in ("from_seed", "to_seed", "steps", "method")} == {
        "from_seed": 1,
        "to_seed": 2,
        "steps": 16,
        "method": "lerp",
    }
    assert interpolation["spec"]["job_id"] == job_id
    # The sampling job's own page plays its interpolation too.
    dashboard.open(f"/ui/jobs/{interpolation['id']}")
    dashboard.visible("interpolation-result-section")
    assert dashboard.find("interpolation-index").text == "1 of 16"
    dashboard.wait("its grid", lambda: dashboard.image_loaded("grid-image"))

    # The jobs page lists it with its owner; the kind filter narrows the list.
    dashboard.open("/ui/")
    row = f'#jobs-body tr[data-job="{job_id}"]'
    listed = dashboard.wait(
        "the job in the list", lambda: dashboard.browser.find_elements(By.CSS_SELECTOR, row)
    )[0]
    assert "succeeded" in listed.text and "e2e-user" in listed.text
    Select(dashboard.find("filter-kind")).select_by_value("sample")
    dashboard.wait(
        "only sampling jobs",
        lambda: (
            not dashboard.browser.find_elements(By.CSS_SELECTOR, row)
            and dashboard.browser.find_elements(By.CSS_SELECTOR, "#jobs-body tr[data-job]")
        ),
    )
    dashboard.shot("jobs-filtered")


def test_run_again_with_changes_then_cancel_the_running_job(
    dashboard: Dashboard, request: pytest.FixtureRequest
) -> None:
    source = dashboard.service.submit(
        "train",
        {**RING_SPEC, "train": {**RING_SPEC["train"], "steps": 60}, "sample_every": 30},
        name="to-rerun",
    )
    dashboard.open(f"/ui/jobs/{source['id']}")
    dashboard.visible("rerun-link").click()
    dashboard.wait(
        "the prefilled form", lambda: dashboard.find("f-steps").get_attribute("value") == "60"
    )
    assert dashboard.find("f-width").get_attribute("value") == str(RING_SPEC["model"]["width"])
    dashboard.fill({"f-name": "long-run", "f-steps": 1_000_000, "f-checkpoint-every": 1000})
    dashboard.find("submit-button").click()
    job_id = dashboard.wait(
        "the new job's page", lambda: _job_page_id(dashboard, not_id=source["id"])
    )
    # Whatever happens below, this run must not hold a slot for the rest of the session.
    cancel = dashboard.service.url(f"/api/v1/jobs/{job_id}/cancel")
    request.addfinalizer(lambda: dashboard.service.http.post(cancel, timeout=30))
    spec = dashboard.service.job(job_id)["spec"]
    assert spec["train"]["steps"] == 1_000_000 and spec["sample_every"] == 30  # kept

    # Progress moves while it runs: two different steps seen on the page.
    first = dashboard.wait("progress", dashboard.progress, JOB_S)
    dashboard.wait("progress moving", lambda: (p := dashboard.progress()) and p[0] > first[0])
    assert dashboard.state() == "running"
    dashboard.shot("long-run")
    dashboard.visible("cancel-button").click()
    WebDriverWait(dashboard.browser, PAGE_S).until(expected_conditions.alert_is_present())
    dashboard.browser.switch_to.alert.accept()
    dashboard.wait("the job cancelled", lambda: dashboard.state() == "cancelled", JOB_S)
    assert not dashboard.find("cancel-button").is_displayed()
    assert dashboard.service.job(job_id)["state"] == "cancelled"
    dashboard.shot("cancelled")

    # The two side by side: a row each, the fields they differ in as columns, their curves.
    dashboard.open(f"/ui/compare?ids={source['id']},{job_id}&metric=loss_g")
    rows = dashboard.wait(
        "the comparison",
        lambda: dashboard.browser.find_elements(By.CSS_SELECTOR, "#compare-body tr td + td"),
    )
    body = dashboard.find("compare-body").text
    assert source["id"][:8] in body and job_id[:8] in body, body
    assert "train.steps" in dashboard.find("compare-head").text
    assert rows and "checkpoint_every" not in dashboard.find("compare-same").text
    dashboard.wait(
        "their curves",
        lambda: (
            len(dashboard.browser.find_elements(By.CSS_SELECTOR, "#compare-curves polyline")) == 2
        ),
    )
    dashboard.shot("compare")


def _job_page_id(dashboard: Dashboard, not_id: str | None = None) -> str | None:
    found = re.search(r"/ui/jobs/([0-9a-f]{32})$", dashboard.browser.current_url)
    return found.group(1) if found and found.group(1) != not_id else None


def _frame_pixels(dashboard: Dashboard) -> str:
    """What the interpolation viewer shows now: the canvas's pixels, or the strip's offset."""
    return str(
        dashboard.script(
            "const f = document.getElementById('interpolation-frame');"
            "const c = f.querySelector('canvas');"
            "return c ? c.toDataURL() : f.style.backgroundPosition;"
        )
    )
