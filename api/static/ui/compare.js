"use strict";
// The compare page: runs picked by tags and/or ids side by side (GET /api/v1/compare), and
// one metric's curves of each (GET /api/v1/compare/curves) in one chart.

(() => {
  if (!gf.requireLogin()) return;
  const { $, el } = gf;

  // The choice lives in the address, so a comparison can be bookmarked and shared.
  const query = new URLSearchParams(location.search);
  $("compare-tags").value = query.getAll("tag").join(" ");
  $("compare-ids").value = query.get("ids") || "";
  $("compare-metric").value = query.get("metric") || $("compare-metric").value;

  function picked() {
    const params = new URLSearchParams();
    for (const tag of $("compare-tags").value.split(/\s+/).filter(Boolean)) params.append("tag", tag);
    const ids = $("compare-ids").value.split(/[\s,]+/).filter(Boolean).join(",");
    if (ids) params.set("ids", ids);
    return params;
  }

  /** A figure as `ganforge compare` shows it: the value, its interval in brackets. */
  function figure(figures, name) {
    if (!(name in figures)) return "";
    const value = figures[name];
    if (value === null) return "n/a";
    const interval = figures[`${name}_interval`];
    return interval ? `${gf.number(value)} [${gf.number(interval[0])}, ${gf.number(interval[1])}]` : gf.number(value);
  }

  function specValue(value) {
    if (value === null || value === undefined) return "-";
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  function renderTable(table) {
    const spec = table.columns.filter((c) => c.group === "spec").map((c) => c.name);
    const figures = table.columns.filter((c) => c.group === "figures").map((c) => c.name);
    const headers = ["name", "id", "state", "tags", ...spec, ...figures];
    $("compare-head").replaceChildren(el("tr", {}, ...headers.map((h) => el("th", { text: h }))));
    const rows = table.rows.map((row) =>
      el(
        "tr",
        { "data-job": row.id },
        el("td", {}, gf.jobLink(row)),
        el("td", {}, el("code", { text: row.id.slice(0, 8) })),
        el("td", {}, gf.stateBadge(row.state)),
        el("td", { text: row.tags.join(" ") }),
        ...spec.map((path) => el("td", { text: specValue(row.spec[path]) })),
        ...figures.map((name) => el("td", { text: figure(row.figures, name) })),
      ),
    );
    $("compare-body").replaceChildren(
      ...(rows.length ? rows : [el("tr", {}, el("td", { class: "muted", text: "no such runs" }))]),
    );
    const same = Object.entries(table.same).map(([path, value]) => `${path} ${specValue(value)}`);
    $("compare-same").textContent = same.length ? `all runs: ${same.join(", ")}` : "";
  }

  async function load() {
    const params = picked();
    if (!params.toString()) return;
    const metric = $("compare-metric").value.trim();
    const table = await gf.api(`/api/v1/compare?${params}`);
    renderTable(table);
    if (!metric) {
      $("compare-curves").replaceChildren();
      return;
    }
    params.set("metric", metric);
    const curves = await gf.api(`/api/v1/compare/curves?${params}`);
    const series = curves.curves.map((c) => ({ name: `${c.id.slice(0, 8)} ${c.name}`, points: c.points }));
    $("compare-curves").replaceChildren(gfCharts.lineChart(`${curves.metric} over steps`, series));
  }

  async function show() {
    try {
      await load();
      gf.clearError();
    } catch (error) {
      gf.showError(error);
    }
  }

  $("compare-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const params = picked();
    const metric = $("compare-metric").value.trim();
    if (metric) params.set("metric", metric);
    history.replaceState(null, "", params.toString() ? `?${params}` : location.pathname);
    show();
  });
  show();
})();
