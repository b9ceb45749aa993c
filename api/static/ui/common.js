"use strict";
// What every dashboard page shares: the token, calls to the JSON API, artifacts as object
// URLs, the job feed (Server-Sent Events read through fetch, since EventSource cannot send
// the bearer header), and small formatting and DOM helpers. No framework, no build step.

const gf = (() => {
  const TOKEN_KEY = "ganforge.token";
  const LOGIN = "/ui/login";

  const token = () => sessionStorage.getItem(TOKEN_KEY);
  const setToken = (value) => sessionStorage.setItem(TOKEN_KEY, value);

  function toLogin(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (message) sessionStorage.setItem("ganforge.login-message", message);
    const here = location.pathname + location.search;
    location.replace(`${LOGIN}?next=${encodeURIComponent(here)}`);
  }

  /** Every page but the login page needs a token; without one, go and get one. */
  function requireLogin() {
    if (!token()) {
      toLogin();
      return false;
    }
    return true;
  }

  class ApiError extends Error {
    constructor(status, problem) {
      const fields = (problem.errors || []).map((e) => `${e.path}: ${e.message}`);
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
      this.fields = fields;
      this.retryAfterS = 0; // a 429's or 503's Retry-After, when it gave one
    }
  }

  function headers(accept, extra) {
    return { Authorization: `Bearer ${token()}`, Accept: accept, ...(extra || {}) };
  }

  async function failure(response) {
    let problem = {};
    try {
      problem = await response.json();
    } catch (_) {
      problem = { title: response.statusText };
    }
    if (response.status === 401) toLogin(problem.detail || "the token was refused");
    const error = new ApiError(response.status, problem);
    error.retryAfterS = Number(response.headers.get("Retry-After")) || 0;
    return error;
  }

  /** A JSON API call with the bearer token; throws ApiError with the problem document. */
  async function api(path, { method = "GET", body } = {}) {
    const extra = body === undefined ? {} : { "Content-Type": "application/json" };
    const response = await fetch(path, {
      method,
      headers: headers("application/json", extra),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (!response.ok) throw await failure(response);
    return response.status === 204 ? null : response.json();
  }

  function artifactPath(jobId, name) {
    const escaped = name.split("/").map(encodeURIComponent).join("/");
    // Streamed through the API: a presigned S3 URL is another origin, which the page's
    // policy (and CORS) keeps out.
    return `/api/v1/jobs/${jobId}/artifacts/${escaped}?redirect=false`;
  }

  async function artifactBlob(jobId, name) {
    const response = await fetch(artifactPath(jobId, name), {
      headers: headers("*/*"),
      cache: "no-store",
    });
    if (!response.ok) throw await failure(response);
    return response.blob();
  }

  // Object URLs by job, name and content hash: a rewritten artifact (the timeline, the
  // curves) has a new hash and is fetched again; an unchanged one never is.
  const objectUrls = new Map();

  /** An object URL of the artifact's bytes, for <img src> (which cannot send the token). */
  async function artifactUrl(jobId, artifact) {
    const key = `${jobId}/${artifact.name}@${artifact.sha256}`;
    if (!objectUrls.has(key)) {
      objectUrls.set(
        key,
        artifactBlob(jobId, artifact.name).then((blob) => URL.createObjectURL(blob)),
      );
    }
    try {
      return await objectUrls.get(key);
    } catch (error) {
      objectUrls.delete(key);
      throw error;
    }
  }

  /** Download an artifact with the token, then hand it to the browser as a file. */
  async function download(jobId, name) {
    const blob = await artifactBlob(jobId, name);
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: name.split("/").pop() });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  /**
   * Follow a Server-Sent Events stream of the API, calling onMessage(kind, data, id) for each
   * message; reconnects with Last-Event-ID when the server ends the stream (every few
   * minutes) or the connection breaks, and stops after an `end` message or `signal` aborts.
   */
  async function follow(path, onMessage, signal) {
    let lastId = null;
    let retryMs = 1000;
    while (!signal.aborted) {
      let ended = false;
      try {
        const extra = lastId ? { "Last-Event-ID": lastId } : {};
        const response = await fetch(path, {
          headers: headers("text/event-stream", extra),
          cache: "no-store",
          signal,
        });
        if (!response.ok) throw await failure(response);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        let kind = "message";
        let data = [];
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          const lines = buffer.split("\n");
          buffer = lines.pop();
          for (const raw of lines) {
            const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
            if (line === "") {
              if (data.length) {
                onMessage(kind, JSON.parse(data.join("\n")), lastId);
                ended = ended || kind === "end";
              }
              kind = "message";
              data = [];
              continue;
            }
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "data") data.push(text);
            else if (field === "event") kind = text;
            else if (field === "id") lastId = text;
            else if (field === "retry" && /^\d+$/.test(text)) retryMs = Number(text);
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiError && error.status < 500 && error.status !== 429) {
          showError(error, "feed");
          return;
        }
        // Refused for now (429: the streams of this token or of the API are at their
        // bound): ask again when told; the page's own job refresh goes on meanwhile.
        if (error instanceof ApiError && error.retryAfterS) {
          await sleep(error.retryAfterS * 1000);
          continue;
        }
      }
      if (ended) return;
      await sleep(retryMs);
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /**
   * Call `task` now and `ms` after each run settles: never two at once (a call while one runs
   * runs it again right after). Returns the function that runs it now.
   */
  function every(ms, task) {
    let timer = null;
    let running = false;
    let again = false;
    const run = async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      clearTimeout(timer);
      try {
        await task();
        clearError("poll");
      } catch (error) {
        showError(error, "poll");
      }
      running = false;
      if (again) {
        again = false;
        run();
      } else {
        timer = setTimeout(run, ms);
      }
    };
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) run();
    });
    run();
    return run;
  }

  /** An element: el("a", {href, class: "x", text: "hi"}, child, ...). */
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child !== undefined && child !== null) node.append(child);
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);

  /** Say what went wrong at the top of the page; `source` lets its author clear it later. */
  function showError(error, source = "action") {
    const box = $("error");
    if (!box) return;
    box.dataset.source = source;
    const fields = error.fields && error.fields.length ? ` (${error.fields.join("; ")})` : "";
    box.textContent = `${error.message || error}${fields}`;
    box.hidden = false;
  }

  function clearError(source = "action") {
    const box = $("error");
    if (box && box.dataset.source === source) box.hidden = true;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function bytes(count) {
    if (count < 1024) return `${count} B`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let value = count;
    let unit = -1;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  function time(iso) {
    if (!iso) return "";
    const moment = new Date(iso);
    return moment.toLocaleString(undefined, { hour12: false });
  }

  /** A figure for people: 4 significant digits, no trailing zeros, exponents for extremes. */
  function number(value) {
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return String(value);
    const magnitude = Math.abs(value);
    return magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e5)
      ? value.toExponential(3)
      : String(Number(value.toPrecision(4)));
  }

  const FINAL = ["succeeded", "failed", "cancelled"];
  const isFinal = (state) => FINAL.includes(state);

  function stateBadge(state) {
    return el("span", { class: `state ${state}`, text: state });
  }

  /** "step 120 / 300 (40%), 5,000 img/s, ETA 12 s" for a job's `progress`. */
  function progressText(progress) {
    if (!progress) return "";
    if (typeof progress.children === "number") {
      // A sweep's (shared/sweeps/progress.py): its children, not steps.
      return `${progress.finished} of ${progress.children} children final (${Math.round(progress.fraction * 100)}%)`;
    }
    const parts = [`step ${progress.step} / ${progress.total_steps}`];
    if (typeof progress.fraction === "number") {
      parts[0] += ` (${Math.round(progress.fraction * 100)}%)`;
    }
    if (progress.images_per_second) {
      parts.push(`${Math.round(progress.images_per_second).toLocaleString()} img/s`);
    }
    if (progress.eta_seconds && progress.step < progress.total_steps) {
      parts.push(`ETA ${duration(progress.eta_seconds)}`);
    }
    return parts.join(", ");
  }

  function progressBar(progress) {
    const bar = el("div", { class: "bar" });
    bar.style.width = `${Math.round(((progress && progress.fraction) || 0) * 100)}%`;
    return el("div", { class: "progress" }, bar);
  }

  function jobLink(job) {
    return el("a", { href: `/ui/jobs/${job.id}`, text: job.name || job.id.slice(0, 8) });
  }

  /** A queued job as the pool lists it: position, owner, size and why it waits. */
  function queueRow(job) {
    return el(
      "tr",
      { "data-job": job.id },
      el("td", { text: job.position === null ? "" : String(job.position) }),
      el("td", {}, jobLink(job)),
      el("td", { text: job.owner }),
      el("td", { text: job.kind }),
      el("td", { text: String(job.devices) }),
      el("td", { text: String(job.priority) }),
      el("td", { text: job.waiting_reason || "" }),
    );
  }

  function wireLogout() {
    const button = $("logout");
    if (button) {
      button.addEventListener("click", () => {
        sessionStorage.removeItem(TOKEN_KEY);
        location.assign(LOGIN);
      });
    }
  }

  wireLogout();

  return {
    $,
    api,
    ApiError,
    artifactBlob,
    artifactUrl,
    bytes,
    clearError,
    download,
    duration,
    el,
    every,
    follow,
    isFinal,
    jobLink,
    number,
    progressBar,
    progressText,
    queueRow,
    requireLogin,
    setToken,
    showError,
    sleep,
    stateBadge,
    time,
    token,
  };
})();
