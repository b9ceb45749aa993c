"use strict";
// Line charts as small inline SVGs: enough for loss and metric curves, no library.

const gfCharts = (() => {
  const WIDTH = 420;
  const HEIGHT = 190;
  const PAD = { left: 52, right: 10, top: 8, bottom: 20 };
  // More points than pixels only costs time: a long run's series is thinned to this many.
  const MAX_POINTS = 400;
  const COLOURS = 8; // .c0 ... .c7 in dashboard.css

  function thin(points) {
    if (points.length <= MAX_POINTS) return points;
    const stride = points.length / MAX_POINTS;
    const kept = [];
    for (let i = 0; i < MAX_POINTS; i += 1) kept.push(points[Math.floor(i * stride)]);
    kept.push(points[points.length - 1]);
    return kept;
  }

  function extent(values) {
    let low = Math.min(...values);
    let high = Math.max(...values);
    if (low === high) {
      const pad = Math.abs(low) * 0.1 || 1;
      low -= pad;
      high += pad;
    }
    return [low, high];
  }

  /**
   * A chart of `series` ([{name, points: [[x, y], ...]}]) under `title`, as an element.
   * Points that are not finite numbers are left out.
   */
  function lineChart(title, series) {
    const { el } = gf;
    const clean = series
      .map((s) => ({
        name: s.name,
        points: thin(s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))),
      }))
      .filter((s) => s.points.length);
    const box = el("div", { class: "chart", "data-chart": title });
    box.append(el("div", { class: "title", text: title }));
    if (!clean.length) {
      box.append(el("p", { class: "muted", text: "no points yet" }));
      return box;
    }
    const xs = clean.flatMap((s) => s.points.map((p) => p[0]));
    const ys = clean.flatMap((s) => s.points.map((p) => p[1]));
    const [x0, x1] = extent(xs);
    const [y0, y1] = extent(ys);
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const sx = (x) => (PAD.left + ((x - x0) / (x1 - x0)) * plotW).toFixed(1);
    const sy = (y) => (PAD.top + (1 - (y - y0) / (y1 - y0)) * plotH).toFixed(1);
    const bottom = HEIGHT - PAD.bottom;
    // Only numbers and our own class names go into this markup: names go in as text nodes.
    const parts = [
      `<svg viewBox="0 0 ${WIDTH} ${HEIGHT}">`,
      `<path class="axis" d="M${PAD.left} ${PAD.top}V${bottom}H${WIDTH - PAD.right}"/>`,
    ];
    for (const y of [y0, (y0 + y1) / 2, y1]) {
      parts.push(`<text x="${PAD.left - 4}" y="${sy(y)}" text-anchor="end" dy="3">${gf.number(y)}</text>`);
    }
    parts.push(`<text x="${PAD.left}" y="${HEIGHT - 4}">${gf.number(x0)}</text>`);
    parts.push(`<text x="${WIDTH - PAD.right}" y="${HEIGHT - 4}" text-anchor="end">${gf.number(x1)}</text>`);
    clean.forEach((s, i) => {
      const points = s.points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" ");
      parts.push(`<polyline class="c${i % COLOURS}" points="${points}"/>`);
      if (s.points.length === 1) {
        // One point draws no line: mark it.
        const [[x, y]] = s.points;
        parts.push(`<circle class="c${i % COLOURS}" cx="${sx(x)}" cy="${sy(y)}" r="1.5"/>`);
      }
    });
    parts.push("</svg>");
    const figure = el("div");
    figure.innerHTML = parts.join("");
    box.append(figure.firstChild);
    const legend = el("div", { class: "legend" });
    clean.forEach((s, i) => {
      legend.append(el("span", {}, el("span", { class: `swatch c${i % COLOURS}` }), s.name));
    });
    box.append(legend);
    return box;
  }

  return { lineChart };
})();
