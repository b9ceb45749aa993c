"use strict";
// The jobs page: the caller's jobs, refreshed every few seconds, with their nodes (from the
// pool) and the queue with each job's place and the reason it waits.

(() => {
  if (!gf.requireLogin()) return;
  const { $, el } = gf;
  const REFRESH_MS = 3000;
  const PAGE = 50;
  const MAX_SHOWN = 500; // the API's largest page
  let shown = PAGE;

  // Filters live in the address, so a filtered view can be bookmarked and survives a reload.
  const query = new URLSearchParams(location.search);
  $("filter-state").value = query.get("state") || "";
  $("filter-kind").value = query.get("kind") || "";
  $("filter-all").checked = query.get("all") === "true";

  function filters() {
    const params = new URLSearchParams();
    if ($("filter-state").value) params.set("state", $("filter-state").value);
    if ($("filter-kind").value) params.set("kind", $("filter-kind").value);
    if ($("filter-all").checked) params.set("all", "true");
    return params;
  }

  /** node name by job id, from who holds each device. */
  function nodesOf(pool) {
    const nodes = new Map();
    for (const node of pool.nodes) {
      for (const device of node.devices) {
        if (!device.job_id) continue;
        const names = nodes.get(device.job_id) || new Set();
        names.add(node.name);
        nodes.set(device.job_id, names);
      }
    }
    return nodes;
  }

  function row(job, nodes) {
    const progress = job.progress;
    const waiting = job.queue
      ? `#${job.queue.position ?? "?"}: ${job.queue.waiting_reason || "waiting"}`
      : "";
    return el(
      "tr",
      { "data-job": job.id, "data-state": job.state },
      el("td", {}, gf.jobLink(job)),
      el("td", {}, el("code", { text: job.id.slice(0, 8) })),
      el("td", { text: job.kind }),
      el("td", {}, gf.stateBadge(job.state)),
      el("td", { text: job.owner }),
      el("td", { text: String(job.devices) }),
      el("td", { text: [...(nodes.get(job.id) || [])].join(", ") }),
      el(
        "td",
        { class: "progress-cell" },
        progress ? gf.progressBar(progress) : null,
        el("span", { class: "muted", text: progress ? gf.progressText(progress) : waiting }),
      ),
      el("td", { text: gf.time(job.created_at) }),
    );
  }

  async function refresh() {
    const params = filters();
    params.set("limit", String(shown));
    const [page, pool] = await Promise.all([
      gf.api(`/api/v1/jobs?${params}`),
      gf.api("/api/v1/pool"),
    ]);
    const nodes = nodesOf(pool);
    const rows = page.jobs.map((job) => row(job, nodes));
    $("jobs-body").replaceChildren(
      ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 9, class: "muted", text: "no jobs" }))]),
    );
    $("jobs-more").hidden = !page.next_cursor || shown >= MAX_SHOWN;
    const queued = pool.queue.map(gf.queueRow);
    $("queue-body").replaceChildren(
      ...(queued.length ? queued : [el("tr", {}, el("td", { colspan: 7, class: "muted", text: "nothing waits" }))]),
    );
    $("jobs-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  const now = gf.every(REFRESH_MS, refresh);
  $("filters").addEventListener("change", () => {
    const params = filters();
    history.replaceState(null, "", params.toString() ? `?${params}` : location.pathname);
    now();
  });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("jobs-more").addEventListener("click", () => {
    shown = Math.min(MAX_SHOWN, shown + PAGE);
    now();
  });
})();
