"use strict";
// One job: its state, progress and ETA, events, log and artifacts as they happen (the job's
// event stream), its curves, pictures and timeline, and a panel to sample from it.

(() => {
  if (!gf.requireLogin()) return;
  const { $, el } = gf;
  const jobId = document.body.dataset.jobId;
  const JOB_REFRESH_MS = 5000;
  // Curves are re-read at most this often while a job runs (metrics.jsonl is uploaded every
  // few seconds anyway).
  const CURVES_REFRESH_MS = 10000;
  const LOG_LINES_KEPT = 1000;
  const SAMPLE_POLL_MS = 1000;
  const FRAME_SIDE = 160; // pixels an interpolation image is shown at, about
  // Evaluation figures that never change within a run (a denominator): not worth a chart.
  const FIXED_FIGURES = new Set(["mode_count"]);
  const STEP_PICTURE = /^(samples|evaluations)\/step-(\d+)\.png$/;

  let job = null;
  const artifacts = new Map(); // name -> the artifact's latest row
  let curvesAt = 0;
  let interpolationShown = false; // a sampling job's own interpolation, drawn once

  // 1. The job itself: name, facts, actions, error, warnings, evaluation, spec.

  async function loadJob() {
    job = await gf.api(`/api/v1/jobs/${jobId}`);
    renderJob();
  }

  function fact(list, name, value) {
    if (value === undefined || value === null || value === "") return;
    list.append(el("dt", { text: name }), el("dd", {}, value));
  }

  function renderJob() {
    document.title = `${job.name} · ganforge`;
    $("job-name").textContent = job.name;
    $("job-state").replaceChildren(gf.stateBadge(job.state));
    document.body.dataset.state = job.state;
    const facts = $("job-facts");
    facts.replaceChildren();
    fact(facts, "id", el("code", { text: job.id }));
    fact(facts, "kind", job.kind);
    fact(facts, "owner", job.owner);
    fact(facts, "attempt", `${job.attempt} of ${job.max_attempts}`);
    fact(facts, "devices", String(job.devices));
    fact(facts, "priority", String(job.priority));
    const nodes = (job.placement || []).map((p) => `${p.node} [${p.devices.join(", ")}]`);
    // While it holds devices, where it runs; after, where its last attempt ran.
    const holds = ["scheduled", "running", "cancelling"].includes(job.state);
    fact(facts, holds ? "node" : "ran on", nodes.join("; "));
    if (job.queue) {
      fact(facts, "queue", `#${job.queue.position ?? "?"}: ${job.queue.waiting_reason || "waiting"}`);
    }
    if (job.parent) fact(facts, "sweep", el("a", { href: `/ui/jobs/${job.parent}`, text: job.parent.slice(0, 8) }));
    const source = job.spec && (job.spec.job_id || null);
    if (source) fact(facts, "from job", el("a", { href: `/ui/jobs/${source}`, text: source.slice(0, 8) }));
    fact(facts, "created", gf.time(job.created_at));
    fact(facts, "started", gf.time(job.started_at));
    fact(facts, "finished", gf.time(job.finished_at));
    $("cancel-button").hidden = gf.isFinal(job.state) || job.state === "cancelling";
    $("rerun-link").hidden = job.kind !== "train";
    $("job-error").textContent = job.error || "";
    $("job-error").hidden = !job.error;
    $("job-spec").textContent = JSON.stringify(job.spec, null, 2);
    renderProgress(job.progress);
    renderChildren(job.children);
    renderWarnings(job.warnings || []);
    renderEvaluation(job.evaluation);
    $("sampling-section").hidden = !(job.kind === "train" && hasCheckpoint());
  }

  // A sweep: its children, one row each, with the figure its halving ranks them by.
  async function renderChildren(children) {
    $("children-section").hidden = !children;
    if (!children) return;
    const states = Object.entries(children.states).map(([state, n]) => `${n} ${state}`);
    $("children-summary").textContent = `${children.total}: ${states.join(", ")}`;
    const page = await gf.api(`/api/v1/jobs?parent=${job.id}&limit=100`);
    const index = (child) => Number(child.name.slice(child.name.lastIndexOf("/") + 1));
    const halving = (job.spec.stop || {}).halving;
    const figure = halving ? halving.figure : "high_quality";
    const rows = page.jobs.sort((a, b) => index(a) - index(b)).map((child) => {
      const evaluation = child.evaluation || {};
      const value = evaluation[figure];
      const shown = value === undefined || value === null ? "" : `${figure} ${Number(value).toPrecision(3)} @ ${evaluation.step}`;
      return el(
        "tr",
        { "data-job": child.id, "data-state": child.state },
        el("td", {}, gf.jobLink(child)),
        el("td", {}, gf.stateBadge(child.state)),
        el("td", { text: child.progress ? gf.progressText(child.progress) : "" }),
        el("td", { text: shown }),
        el("td", { class: "muted", text: child.error || "" }),
      );
    });
    $("children-body").replaceChildren(...rows);
  }

  function renderProgress(progress) {
    const bar = $("progress-bar");
    const fraction = progress ? progress.fraction || 0 : 0;
    bar.style.width = `${Math.round(fraction * 100)}%`;
    let text = progress ? gf.progressText(progress) : "";
    if (!text) text = job && gf.isFinal(job.state) ? "no progress reported" : "waiting for the job to start";
    $("progress-text").textContent = text;
  }

  function renderWarnings(warnings) {
    $("warnings-section").hidden = !warnings.length;
    $("warnings").replaceChildren(
      ...warnings.map((w) => el("li", { text: `${warningSpan(w)} (attempt ${w.attempt}): ${w.message}` })),
    );
  }

  // When a warning held: from the step it began at to the one it ended at (cli/quality.py).
  function warningSpan(w) {
    if (w.ended_step != null) return `steps ${w.step}-${w.ended_step}`;
    return "ended_step" in w ? `from step ${w.step}, still holds` : `step ${w.step}`;
  }

  function figureText(value) {
    if (Array.isArray(value)) return value.map(gf.number).join(" ");
    if (value && typeof value === "object") return JSON.stringify(value);
    return gf.number(value);
  }

  function renderEvaluation(evaluation) {
    const section = $("evaluation-section");
    const picture = latestStep("evaluations");
    section.hidden = !evaluation && !picture;
    if (evaluation) {
      $("evaluation-step").textContent = `at step ${evaluation.step}`;
      // A figure's 95% interval (`<name>_interval`) goes beside it, not on a row of its own.
      const interval = (name) => {
        const bounds = evaluation[`${name}_interval`];
        return Array.isArray(bounds) && bounds.length === 2
          ? ` [${gf.number(bounds[0])}, ${gf.number(bounds[1])}]`
          : "";
      };
      $("evaluation-figures").replaceChildren(
        ...Object.entries(evaluation)
          .filter(([name, value]) => name !== "step" && value !== null && !name.endsWith("_interval"))
          .map(([name, value]) =>
            el("tr", {}, el("td", { text: name }), el("td", { text: figureText(value) + interval(name) })),
          ),
      );
    }
  }

  // 2. Progress, events, log and artifacts as they happen.

  function addEvent(event) {
    $("events-body").append(
      el(
        "tr",
        {},
        el("td", { text: gf.time(event.at) }),
        el("td", { text: String(event.attempt) }),
        el("td", { text: event.from || "" }),
        el("td", {}, gf.stateBadge(event.to)),
        el("td", { text: event.reason || "" }),
      ),
    );
  }

  function addLogLines(lines) {
    const log = $("log");
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    const kept = (log.textContent ? log.textContent.split("\n") : []).concat(lines);
    log.textContent = kept.slice(-LOG_LINES_KEPT).join("\n");
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function onFeed(kind, data) {
    if (kind === "state") {
      addEvent(data);
      if (job) {
        job.state = data.to;
        $("job-state").replaceChildren(gf.stateBadge(job.state));
        document.body.dataset.state = job.state;
      }
      loadJob().catch(gf.showError);
    } else if (kind === "progress") {
      if (job) {
        job.progress = data.progress;
        job.state = data.state;
      }
      renderProgress(data.progress);
      if (Date.now() - curvesAt > CURVES_REFRESH_MS) loadCurves().catch(gf.showError);
    } else if (kind === "log") {
      addLogLines(data.lines);
    } else if (kind === "artifact") {
      artifacts.set(data.name, data);
      renderArtifacts();
    } else if (kind === "end") {
      Promise.all([loadJob(), loadArtifacts(), loadCurves()]).catch(gf.showError);
    }
  }

  // 3. Artifacts: the table (downloads through the API with the token) and the pictures.

  async function loadArtifacts() {
    const listed = await gf.api(`/api/v1/jobs/${jobId}/artifacts`);
    for (const artifact of listed.artifacts) artifacts.set(artifact.name, artifact);
    renderArtifacts();
  }

  const hasCheckpoint = () => [...artifacts.values()].some((a) => a.kind === "checkpoint");

  /** The step pictures under `folder` (samples, evaluations), oldest first. */
  function stepPictures(folder) {
    return [...artifacts.values()]
      .map((a) => ({ artifact: a, match: STEP_PICTURE.exec(a.name) }))
      .filter(({ match }) => match && match[1] === folder)
      .map(({ artifact, match }) => ({ artifact, step: Number(match[2]) }))
      .sort((a, b) => a.step - b.step);
  }

  function latestStep(folder) {
    const pictures = stepPictures(folder);
    return pictures.length ? pictures[pictures.length - 1] : null;
  }

  function renderArtifacts() {
    const rows = [...artifacts.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((a) =>
        el(
          "tr",
          { "data-artifact": a.name },
          el(
            "td",
            {},
            el("a", {
              href: `${a.url}?redirect=false`,
              text: a.name,
              onclick: (event) => {
                event.preventDefault();
                gf.download(jobId, a.name).catch(gf.showError);
              },
            }),
          ),
          el("td", { text: a.kind }),
          el("td", { text: a.step === null ? "" : String(a.step) }),
          el("td", { text: gf.bytes(a.size) }),
          el("td", { text: gf.time(a.created_at) }),
        ),
      );
    $("artifacts-body").replaceChildren(...rows);
    if (job) $("sampling-section").hidden = !(job.kind === "train" && hasCheckpoint());
    renderPictures().catch(gf.showError);
  }

  async function show(image, artifact) {
    const url = await gf.artifactUrl(jobId, artifact);
    if (image.src !== url) image.src = url;
    image.hidden = false;
    image.dataset.artifact = artifact.name;
  }

  async function renderPictures() {
    const latest = latestStep("samples");
    const grid = latest ? latest.artifact : artifacts.get("grid.png");
    if (grid) {
      $("grid-section").hidden = false;
      $("grid-step").textContent = latest ? `at step ${latest.step}` : "";
      await show($("grid-image"), grid);
    }
    const evaluation = latestStep("evaluations");
    if (evaluation) {
      $("evaluation-section").hidden = false;
      await show($("evaluation-image"), evaluation.artifact);
    }
    await renderTimeline();
    const strip = artifacts.get("interpolation.gif");
    if (strip && grid && job && job.kind === "sample" && !interpolationShown) {
      interpolationShown = true;
      await showInterpolation(jobId, grid, strip, imageCount(job.spec.interpolation));
    }
  }

  $("grid-open").addEventListener("click", (event) => {
    event.preventDefault();
    const url = $("grid-image").src;
    if (url) window.open(url, "_blank", "noopener");
  });

  // 4. The timeline: the GIF played, and a scrubber over every sample grid.

  let scrubFrames = [];

  async function renderTimeline() {
    const gif = artifacts.get("timeline.gif");
    scrubFrames = stepPictures("samples");
    $("timeline-section").hidden = !gif && scrubFrames.length < 2;
    if (gif) await show($("timeline-gif"), gif);
    const scrubber = $("scrubber");
    const wasAtEnd = Number(scrubber.value) >= Number(scrubber.max);
    scrubber.max = String(Math.max(0, scrubFrames.length - 1));
    if (wasAtEnd) scrubber.value = scrubber.max;
    await scrubTo(Number(scrubber.value));
  }

  async function scrubTo(index) {
    const frame = scrubFrames[index];
    if (!frame) return;
    $("scrub-step").textContent = `step ${frame.step} (${index + 1} of ${scrubFrames.length})`;
    await show($("scrub-image"), frame.artifact);
  }

  $("scrubber").addEventListener("input", (event) => {
    scrubTo(Number(event.target.value)).catch(gf.showError);
  });

  // 5. Curves: losses, D's scores and each evaluation figure over steps.

  async function loadCurves() {
    curvesAt = Date.now();
    if (!job || !["train", "evaluate"].includes(job.kind)) return;
    const { metrics } = await gf.api(`/api/v1/jobs/${jobId}/metrics`);
    const series = new Map(); // chart title -> Map(series name -> points)
    const add = (chart, name, step, value) => {
      if (typeof value !== "number") return;
      if (!series.has(chart)) series.set(chart, new Map());
      const named = series.get(chart);
      if (!named.has(name)) named.set(name, []);
      named.get(name).push([step, value]);
    };
    for (const entry of metrics) {
      if (entry.kind === "eval") {
        for (const [name, value] of Object.entries(entry.eval || {})) {
          if (!FIXED_FIGURES.has(name)) add(name, name, entry.step, value);
        }
        continue;
      }
      for (const [name, value] of Object.entries(entry)) {
        if (name.startsWith("Loss/scores/")) add("D's scores", name.slice(12), entry.step, value);
        else if (name.startsWith("Loss/")) add("Losses", name.slice(5), entry.step, value);
      }
    }
    const charts = [...series.entries()].map(([title, named]) =>
      gfCharts.lineChart(
        title,
        [...named.entries()].map(([name, points]) => ({ name, points })),
      ),
    );
    $("curves-section").hidden = !charts.length;
    $("curves").replaceChildren(...charts);
  }

  // 6. Sampling from this job's generator: seeds, and an interpolation with a slider.

  function parseSeeds(text) {
    const seeds = text
      .split(/[\s,]+/)
      .filter(Boolean)
      .map(Number);
    if (!seeds.length || seeds.some((s) => !Number.isInteger(s) || s < 0)) {
      throw new Error("seeds: give whole numbers >= 0, separated by spaces or commas");
    }
    return seeds;
  }

  /** Submit a sampling job from this one, wait for it to end, and return it. */
  async function sample(name, spec, status) {
    const created = await gf.api("/api/v1/jobs", {
      method: "POST",
      body: { kind: "sample", name, spec: { job_id: jobId, ...spec } },
    });
    const link = el("a", { href: `/ui/jobs/${created.id}`, text: created.id.slice(0, 8) });
    let current = created;
    while (!gf.isFinal(current.state)) {
      status.replaceChildren("job ", link, ` ${current.state}…`);
      await gf.sleep(SAMPLE_POLL_MS);
      current = await gf.api(`/api/v1/jobs/${created.id}`);
    }
    status.replaceChildren("job ", link, ` ${current.state}`, current.error ? `: ${current.error}` : "");
    if (current.state !== "succeeded") throw new Error(`sampling job ${current.state}: ${current.error || ""}`);
    const listed = await gf.api(`/api/v1/jobs/${created.id}/artifacts`);
    return { job: current, artifacts: new Map(listed.artifacts.map((a) => [a.name, a])) };
  }

  async function whileBusy(button, work) {
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      gf.showError(error);
    } finally {
      button.disabled = false;
    }
  }

  $("seeds-form").addEventListener("submit", (event) => {
    event.preventDefault();
    whileBusy($("sample-button"), async () => {
      const spec = { seeds: parseSeeds($("sample-seeds").value) };
      const step = $("sample-step").value;
      if (step !== "") spec.step = Number(step);
      const done = await sample(`${job.name}-seeds`, spec, $("sample-status"));
      const image = $("sample-image");
      image.src = await gf.artifactUrl(done.job.id, done.artifacts.get("grid.png"));
      image.hidden = false;
    });
  });

  $("interpolate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    whileBusy($("interpolate-button"), async () => {
      const interpolation = {
        from_seed: Number($("interp-from").value),
        to_seed: Number($("interp-to").value),
        steps: Number($("interp-steps").value),
      };
      if ($("interp-method").value) interpolation.method = $("interp-method").value;
      const done = await sample(`${job.name}-interpolation`, { interpolation }, $("interpolate-status"));
      await showInterpolation(
        done.job.id,
        done.artifacts.get("grid.png"),
        done.artifacts.get("interpolation.gif"),
        interpolation.steps,
      );
    });
  });

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("the picture did not decode"));
      image.src = url;
    });
  }

  /** Images on an interpolation's path (shared/specs/sample.py: legs share their ends). */
  function imageCount(interpolation) {
    if (!interpolation) return 0;
    const points = interpolation.points ? interpolation.points.length : 2;
    return (points - 1) * (interpolation.steps - 1) + 1;
  }

  /** The cells of an image strip (grid.png of an interpolation: one row of `count` images,
   * 2 px apart and around), or null when the picture is not one (points are one scatter). */
  function stripCells(image, count) {
    const pad = 2;
    const cell = (image.naturalWidth - pad) / count - pad;
    const fits = Number.isInteger(cell) && cell > 0 && image.naturalHeight - 2 * pad === cell;
    return fits ? { pad, cell } : null;
  }

  /** Every frame of a GIF as a canvas, when the browser decodes images for scripts. */
  async function gifFrames(blob) {
    if (!("ImageDecoder" in window)) return null;
    const decoder = new ImageDecoder({ data: await blob.arrayBuffer(), type: "image/gif" });
    await decoder.tracks.ready;
    const count = decoder.tracks.selectedTrack.frameCount;
    const frames = [];
    for (let index = 0; index < count; index += 1) {
      const { image } = await decoder.decode({ frameIndex: index });
      const canvas = el("canvas", { width: image.displayWidth, height: image.displayHeight });
      canvas.getContext("2d").drawImage(image, 0, 0);
      image.close();
      frames.push(canvas);
    }
    decoder.close();
    return frames;
  }

  /**
   * An interpolation with a slider picking its image: cropped out of the strip (grid.png)
   * with background-position when it is a row of images, else the GIF's frames (for points,
   * each frame draws the path so far).
   */
  async function showInterpolation(sourceJobId, grid, gif, count) {
    const section = $("interpolation-result-section");
    const url = await gf.artifactUrl(sourceJobId, grid);
    const image = await loadImage(url);
    const frame = $("interpolation-frame");
    const slider = $("interpolation-slider");
    let draw;
    let total = 0;
    const cells = stripCells(image, count);
    if (cells) {
      const { pad, cell } = cells;
      // Enlarged by a whole factor, pixels kept sharp (image-rendering: pixelated).
      const scale = Math.max(1, Math.floor(FRAME_SIDE / cell));
      total = count;
      frame.replaceChildren();
      frame.style.width = `${cell * scale}px`;
      frame.style.height = `${cell * scale}px`;
      frame.style.backgroundImage = `url("${url}")`;
      frame.style.backgroundSize = `${image.naturalWidth * scale}px ${image.naturalHeight * scale}px`;
      draw = (index) => {
        frame.style.backgroundPosition = `-${(pad + index * (cell + pad)) * scale}px -${pad * scale}px`;
      };
    } else {
      const frames = gif ? await gifFrames(await gf.artifactBlob(sourceJobId, gif.name)) : null;
      if (!frames || !frames.length) {
        frame.replaceChildren(el("img", { class: "picture", src: gif ? await gf.artifactUrl(sourceJobId, gif) : url }));
        slider.disabled = true;
        section.hidden = false;
        return;
      }
      total = frames.length;
      const canvas = el("canvas", { width: frames[0].width, height: frames[0].height });
      frame.style.backgroundImage = "none";
      frame.style.width = "";
      frame.style.height = "";
      frame.replaceChildren(canvas);
      draw = (index) => {
        const context = canvas.getContext("2d");
        context.clearRect(0, 0, canvas.width, canvas.height);
        context.drawImage(frames[index], 0, 0);
      };
    }
    const pick = (index) => {
      draw(index);
      frame.dataset.index = String(index);
      $("interpolation-index").textContent = `${index + 1} of ${total}`;
    };
    slider.disabled = false;
    slider.max = String(total - 1);
    slider.value = "0";
    slider.oninput = () => pick(Number(slider.value));
    pick(0);
    section.hidden = false;
  }

  // 7. Actions and start-up.

  $("cancel-button").addEventListener("click", () => {
    if (!confirm(`Cancel ${job.name}? A running job stops at its next check and keeps a checkpoint.`)) return;
    whileBusy($("cancel-button"), async () => {
      job = await gf.api(`/api/v1/jobs/${jobId}/cancel`, { method: "POST" });
      renderJob();
    });
  });

  async function start() {
    await loadJob();
    await loadArtifacts();
    await loadCurves();
    // Every state change, the whole log and every artifact from the start (after=0.0.0),
    // then whatever happens next; reconnects resume with Last-Event-ID.
    const stream = new AbortController();
    window.addEventListener("pagehide", () => stream.abort());
    gf.follow(`/api/v1/jobs/${jobId}/events?after=0.0.0`, onFeed, stream.signal);
    gf.every(JOB_REFRESH_MS, async () => {
      if (!gf.isFinal(job.state)) await loadJob();
    });
  }

  start().catch(gf.showError);
})();
