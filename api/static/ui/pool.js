"use strict";
// The pool page: nodes and their devices with who holds each, what runs, and the queue.

(() => {
  if (!gf.requireLogin()) return;
  const { $, el } = gf;

  function jobCell(id, label) {
    return id ? el("a", { href: `/ui/jobs/${id}`, text: label || id.slice(0, 8) }) : "free";
  }

  function nodeCard(node) {
    const rows = node.devices.map((device) =>
      el(
        "tr",
        {},
        el("td", { text: String(device.index) }),
        el("td", { text: device.kind || "" }),
        el("td", { text: device.model || "" }),
        el("td", { text: device.memory_mb ? gf.bytes(device.memory_mb * 1048576) : "" }),
        el("td", {}, jobCell(device.job_id)),
        el("td", { text: device.owner || "" }),
      ),
    );
    const labels = Object.entries(node.labels || {})
      .map(([k, v]) => `${k}=${v}`)
      .join(", ");
    const held = node.devices.filter((d) => d.job_id).length;
    return el(
      "div",
      { class: "node card", "data-node": node.name },
      el(
        "h3",
        {},
        `${node.name} `,
        gf.stateBadge(node.state),
        el("span", {
          class: "labels",
          text: ` ${held}/${node.devices.length} held${labels ? ` · ${labels}` : ""} · heartbeat ${gf.time(node.heartbeat_at)}`,
        }),
      ),
      el(
        "table",
        { class: "grid" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ...["device", "kind", "model", "memory", "job", "owner"].map((h) => el("th", { text: h })),
          ),
        ),
        el("tbody", {}, ...rows),
      ),
    );
  }

  function activeRow(job) {
    return el(
      "tr",
      {},
      el("td", {}, jobCell(job.id, job.name)),
      el("td", { text: job.owner }),
      el("td", { text: job.kind }),
      el("td", {}, gf.stateBadge(job.state)),
      el("td", { text: String(job.devices) }),
      el("td", { text: String(job.priority) }),
    );
  }

  function rowsOr(rows, columns, empty) {
    return rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "muted", text: empty }))];
  }

  async function refresh() {
    const pool = await gf.api("/api/v1/pool");
    const nodes = pool.nodes.map(nodeCard);
    $("nodes").replaceChildren(...(nodes.length ? nodes : [el("p", { text: "no node registered yet" })]));
    $("active-body").replaceChildren(...rowsOr(pool.active.map(activeRow), 6, "nothing runs"));
    $("queue-body").replaceChildren(...rowsOr(pool.queue.map(gf.queueRow), 7, "nothing waits"));
    $("pool-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  gf.every(3000, refresh);
})();

