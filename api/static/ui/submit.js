"use strict";
// The submit page: a form for the common fields of a training spec, posted as JSON to
// /api/v1/jobs. With ?from=<job id> it starts from that job's spec ("run again with
// changes"): the form shows its common fields and everything else goes along unchanged.

(() => {
  if (!gf.requireLogin()) return;
  const { $, el } = gf;
  const TOY = /^toy:/;
  const IMAGE_SOURCES = ["mnist", "images"];

  let base = {}; // the spec we started from: {} for a new job

  const value = (id) => $(id).value.trim();
  const numberOr = (id) => (value(id) === "" ? undefined : Number(value(id)));

  function setIf(object, key, given) {
    if (given === undefined) delete object[key];
    else object[key] = given;
  }

  function buildSpec() {
    const spec = structuredClone(base);
    const source = value("f-source");
    const data = base.data && base.data.source === source ? { ...base.data } : { source };
    if (source === "mnist" || value("f-path")) setIf(data, "path", value("f-path") || undefined);
    spec.data = data;

    const family = value("f-family");
    // Another family's options (depth, pack for a vae) would be refused: start afresh.
    const model = base.model && base.model.family === family ? { ...base.model } : { family };
    setIf(model, "width", numberOr("f-width"));
    spec.model = model;

    const latent = { ...(base.latent || {}) };
    setIf(latent, "dim", numberOr("f-latent"));
    setIf(spec, "latent", Object.keys(latent).length ? latent : undefined);

    const loss = value("f-loss");
    const baseLoss = typeof base.loss === "object" && base.loss ? base.loss : { name: base.loss };
    if (family === "vae") delete spec.loss;
    else spec.loss = baseLoss.name === loss && typeof base.loss === "object" ? base.loss : loss;

    const train = { ...(base.train || {}) };
    setIf(train, "steps", numberOr("f-steps"));
    setIf(train, "batch_size", numberOr("f-batch"));
    setIf(train, "lr", numberOr("f-lr"));
    setIf(train, "seed", numberOr("f-seed"));
    spec.train = train;

    setIf(spec, "sample_every", numberOr("f-sample-every"));
    setIf(spec, "checkpoint_every", numberOr("f-checkpoint-every"));
    const resources = { ...(base.resources || {}) };
    setIf(resources, "devices", numberOr("f-devices"));
    setIf(spec, "resources", Object.keys(resources).length ? resources : undefined);
    return spec;
  }

  function request() {
    return { kind: "train", name: value("f-name") || "dashboard", spec: buildSpec() };
  }

  function preview() {
    $("f-path-label").hidden = value("f-source") !== "mnist" && !value("f-path");
    $("submit-preview").textContent = JSON.stringify(request(), null, 2);
  }

  function ensureOption(select, option) {
    if (![...$(select).options].some((o) => o.value === option)) {
      $(select).append(el("option", { value: option, text: option }));
    }
    $(select).value = option;
  }

  function fill(id, given) {
    if (given !== undefined && given !== null) $(id).value = String(given);
  }

  async function prefill(fromId) {
    const job = await gf.api(`/api/v1/jobs/${fromId}`);
    if (job.kind !== "train") throw new Error(`job ${fromId} is a ${job.kind} job; the form makes training jobs`);
    base = job.spec;
    const from = $("submit-from");
    from.replaceChildren("Starting from ", el("a", { href: `/ui/jobs/${job.id}`, text: job.name }), `'s spec (${job.id.slice(0, 8)}).`);
    from.hidden = false;
    fill("f-name", job.name);
    ensureOption("f-source", base.data.source);
    fill("f-path", base.data.path);
    ensureOption("f-family", base.model.family);
    fill("f-width", base.model.width);
    fill("f-latent", (base.latent || {}).dim);
    const loss = typeof base.loss === "object" && base.loss ? base.loss.name : base.loss;
    if (loss) ensureOption("f-loss", loss);
    const train = base.train || {};
    fill("f-steps", train.steps);
    fill("f-batch", train.batch_size);
    fill("f-lr", train.lr);
    fill("f-seed", train.seed);
    fill("f-sample-every", base.sample_every);
    fill("f-checkpoint-every", base.checkpoint_every);
    fill("f-devices", (base.resources || {}).devices);
  }

  // The family follows the kind of data when it cannot draw it (mlp: points, dcgan: images).
  $("f-source").addEventListener("change", () => {
    const source = value("f-source");
    const family = value("f-family");
    if (IMAGE_SOURCES.includes(source) && family === "mlp") $("f-family").value = "dcgan";
    if (TOY.test(source) && family === "dcgan") $("f-family").value = "mlp";
  });

  $("submit-form").addEventListener("input", preview);
  $("submit-form").addEventListener("change", preview);

  $("submit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const errors = $("submit-errors");
    errors.hidden = true;
    $("submit-button").disabled = true;
    try {
      const job = await gf.api("/api/v1/jobs", { method: "POST", body: request() });
      location.assign(`/ui/jobs/${job.id}`);
    } catch (error) {
      const lines = error.fields && error.fields.length ? error.fields : [error.message];
      errors.replaceChildren(...lines.map((line) => el("li", { text: line })));
      errors.hidden = false;
    } finally {
      $("submit-button").disabled = false;
    }
  });

  const fromId = new URLSearchParams(location.search).get("from");
  const started = !fromId
    ? Promise.resolve()
    : /^[0-9a-f]{32}$/.test(fromId)
      ? prefill(fromId)
      : Promise.reject(new Error("from: not a job id"));
  started.catch(gf.showError).finally(preview);
})();
