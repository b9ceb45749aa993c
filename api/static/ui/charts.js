"use strict";
// Line charts as small inline SVGs: enough for loss and metric curves, no library. Each chart
// reads its values on hover, smooths (an exponential moving average, debiased as TensorBoard
// does), switches to a log axis, and zooms into the steps dragged across (double-click resets).

const gfCharts = (() => {
  const WIDTH = 420;
  const HEIGHT = 190;
  const PAD = { left: 52, right: 10, top: 8, bottom: 20 };
  // More points than pixels only costs time: a long run's series is thinned to this many.
  const MAX_POINTS = 400;
  const COLOURS = 8; // .c0 ... .c7 in dashboard.css
  // A drag narrower than this many pixels is a click, not a zoom.
  const MIN_DRAG = 6;

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

  /** The series smoothed by an exponential moving average of weight `weight` (0: as is),
   * debiased so its first points are not pulled towards 0. */
  function smooth(points, weight) {
    if (!weight) return points;
    let average = 0;
    return points.map(([x, y], i) => {
      average = weight * average + (1 - weight) * y;
      return [x, average / (1 - weight ** (i + 1))];
    });
  }

  /** The index of the point of `points` (sorted by x) nearest to x. */
  function nearest(points, x) {
    let low = 0;
    let high = points.length - 1;
    while (high - low > 1) {
      const middle = (low + high) >> 1;
      if (points[middle][0] < x) low = middle;
      else high = middle;
    }
    return Math.abs(points[low][0] - x) <= Math.abs(points[high][0] - x) ? low : high;
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
        points: s.points
          .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
          .sort((a, b) => a[0] - b[0]),
      }))
      .filter((s) => s.points.length);
    const box = el("div", { class: "chart", "data-chart": title });
    box.append(el("div", { class: "title", text: title }));
    if (!clean.length) {
      box.append(el("p", { class: "muted", text: "no points yet" }));
      return box;
    }
    const view = { weight: 0, log: false, range: null };
    const smoothing = el("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: "0" });
    const logAxis = el("input", { type: "checkbox" });
    const reset = el("button", { type: "button", class: "link", text: "all steps" });
    reset.hidden = true;
    const canLog = clean.some((s) => s.points.some(([, y]) => y > 0));
    logAxis.disabled = !canLog;
    box.append(
      el(
        "div",
        { class: "chart-controls" },
        el("label", {}, "smoothing ", smoothing),
        el("label", {}, logAxis, " log"),
        reset,
      ),
    );
    const figure = el("div", { class: "chart-figure" });
    const tip = el("div", { class: "chart-tip" });
    tip.hidden = true;
    figure.append(tip);
    box.append(figure);
    const legend = el("div", { class: "legend" });
    clean.forEach((s, i) => {
      legend.append(el("span", {}, el("span", { class: `swatch c${i % COLOURS}` }), s.name));
    });
    box.append(legend);

    let frame = null; // what draw() last drew: scales and the series as drawn
    function draw() {
      const shown = clean.map((s) => {
        const inRange = view.range
          ? s.points.filter(([x]) => x >= view.range[0] && x <= view.range[1])
          : s.points;
        let points = smooth(inRange, view.weight);
        if (view.log) points = points.filter(([, y]) => y > 0);
        return { name: s.name, raw: inRange, points };
      });
      const drawn = shown.filter((s) => s.points.length);
      const svg = [`<svg viewBox="0 0 ${WIDTH} ${HEIGHT}">`];
      const bottom = HEIGHT - PAD.bottom;
      svg.push(`<path class="axis" d="M${PAD.left} ${PAD.top}V${bottom}H${WIDTH - PAD.right}"/>`);
      if (!drawn.length) {
        svg.push(`<text x="${PAD.left + 8}" y="${PAD.top + 20}">no points in this view</text></svg>`);
        figure.replaceChildren(tip);
        figure.insertAdjacentHTML("afterbegin", svg.join(""));
        frame = null;
        return;
      }
      const xs = drawn.flatMap((s) => s.points.map((p) => p[0]));
      const ys = drawn.flatMap((s) => s.points.map((p) => (view.log ? Math.log10(p[1]) : p[1])));
      const [x0, x1] = view.range || extent(xs);
      const [y0, y1] = extent(ys);
      const plotW = WIDTH - PAD.left - PAD.right;
      const plotH = HEIGHT - PAD.top - PAD.bottom;
      const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * plotW;
      const sy = (y) => PAD.top + (1 - ((view.log ? Math.log10(y) : y) - y0) / (y1 - y0)) * plotH;
      const label = (v) => gf.number(view.log ? 10 ** v : v);
      // Only numbers and our own class names go into this markup: names go in as text nodes.
      for (const v of [y0, (y0 + y1) / 2, y1]) {
        const y = PAD.top + (1 - (v - y0) / (y1 - y0)) * plotH;
        svg.push(`<text x="${PAD.left - 4}" y="${y.toFixed(1)}" text-anchor="end" dy="3">${label(v)}</text>`);
      }
      svg.push(`<text x="${PAD.left}" y="${HEIGHT - 4}">step ${gf.number(x0)}</text>`);
      svg.push(`<text x="${WIDTH - PAD.right}" y="${HEIGHT - 4}" text-anchor="end">${gf.number(x1)}</text>`);
      shown.forEach((s, i) => {
        if (!s.points.length) return;
        const line = thin(s.points).map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
        svg.push(`<polyline class="c${i % COLOURS}" points="${line.join(" ")}"/>`);
        if (s.points.length === 1) {
          // One point draws no line: mark it.
          const [[x, y]] = s.points;
          svg.push(`<circle class="c${i % COLOURS}" cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="1.5"/>`);
        }
      });
      svg.push(`<line class="cursor" x1="0" x2="0" y1="${PAD.top}" y2="${bottom}" visibility="hidden"/>`);
      svg.push(`<rect class="selection" x="0" y="${PAD.top}" width="0" height="${plotH}" visibility="hidden"/>`);
      svg.push("</svg>");
      figure.replaceChildren(tip);
      figure.insertAdjacentHTML("afterbegin", svg.join(""));
      frame = { shown, x0, x1, plotW, sx, svg: figure.querySelector("svg") };
    }

    /** The step under a mouse event, from the SVG's own scale. */
    function stepAt(event) {
      const rect = frame.svg.getBoundingClientRect();
      const px = ((event.clientX - rect.left) / rect.width) * WIDTH;
      const clamped = Math.min(Math.max(px, PAD.left), WIDTH - PAD.right);
      return { px: clamped, x: frame.x0 + ((clamped - PAD.left) / frame.plotW) * (frame.x1 - frame.x0) };
    }

    let dragFrom = null;
    figure.addEventListener("mousemove", (event) => {
      if (!frame) return;
      const { px, x } = stepAt(event);
      const cursor = frame.svg.querySelector(".cursor");
      cursor.setAttribute("x1", px.toFixed(1));
      cursor.setAttribute("x2", px.toFixed(1));
      cursor.setAttribute("visibility", "visible");
      if (dragFrom !== null) {
        const selection = frame.svg.querySelector(".selection");
        selection.setAttribute("x", Math.min(dragFrom.px, px).toFixed(1));
        selection.setAttribute("width", Math.abs(px - dragFrom.px).toFixed(1));
        selection.setAttribute("visibility", "visible");
      }
      const lines = [];
      let step = null;
      frame.shown.forEach((s, i) => {
        if (!s.points.length) return;
        const index = nearest(s.points, x);
        const [at, value] = s.points[index];
        step = step ?? at;
        const raw = s.raw.find(([rx]) => rx === at);
        const rawText = view.weight && raw ? ` (raw ${gf.number(raw[1])})` : "";
        lines.push(el("div", {}, el("span", { class: `swatch c${i % COLOURS}` }), `${s.name}: ${gf.number(value)}${rawText}`));
      });
      tip.replaceChildren(el("div", { class: "chart-tip-step", text: `step ${gf.number(step)}` }), ...lines);
      tip.hidden = false;
      const rect = frame.svg.getBoundingClientRect();
      const left = event.clientX - rect.left;
      tip.style.left = `${left > rect.width / 2 ? left - tip.offsetWidth - 12 : left + 12}px`;
      tip.style.top = "4px";
    });
    figure.addEventListener("mouseleave", () => {
      tip.hidden = true;
      dragFrom = null;
      if (frame) frame.svg.querySelector(".cursor").setAttribute("visibility", "hidden");
    });
    figure.addEventListener("mousedown", (event) => {
      if (!frame) return;
      event.preventDefault(); // no text selection while dragging
      dragFrom = stepAt(event);
    });
    figure.addEventListener("mouseup", (event) => {
      if (!frame || dragFrom === null) return;
      const to = stepAt(event);
      const from = dragFrom;
      dragFrom = null;
      if (Math.abs(to.px - from.px) < MIN_DRAG) {
        frame.svg.querySelector(".selection").setAttribute("visibility", "hidden");
        return;
      }
      view.range = [Math.min(from.x, to.x), Math.max(from.x, to.x)];
      reset.hidden = false;
      draw();
    });
    const unzoom = () => {
      view.range = null;
      reset.hidden = true;
      draw();
    };
    figure.addEventListener("dblclick", unzoom);
    reset.addEventListener("click", unzoom);
    smoothing.addEventListener("input", () => {
      view.weight = Number(smoothing.value);
      draw();
    });
    logAxis.addEventListener("change", () => {
      view.log = logAxis.checked;
      draw();
    });
    draw();
    return box;
  }

  return { lineChart, smooth };
})();
