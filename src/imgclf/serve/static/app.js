// The upload page: pick or drop images, POST them to /predict, show each image with its top classes, or, for a
// file the server could not read, its name and the reason. An image the model calls unknown (its score below the
// card's threshold) says so, with its closest classes still listed. Each upload replaces the previous results.
"use strict";

const $ = (id) => document.getElementById(id);
let limits = { max_upload_bytes: Infinity, max_files: Infinity };
let topK = 5;
let threshold = null;

function score(x) {
  return Math.abs(x) >= 1000 ? x.toExponential(2) : x.toPrecision(3);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function percent(p) {
  return (100 * p).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1) + "%";
}

async function loadCard() {
  try {
    const [card, health] = await Promise.all([fetch("model").then((r) => r.json()), fetch("health").then((r) => r.json())]);
    limits = health.limits || limits;
    topK = Math.min(5, card.classes.length);
    $("model-name").textContent = card.architecture;
    // the card's headline split (test, or val where the run has none); a multi-label model's accuracy is subset
    // accuracy (every label of an image right), so its macro F1 at the labels' thresholds comes first
    const metrics = card.metrics || {};
    const multilabel = card.task === "multilabel";
    const split = metrics.split || "test";
    const acc = multilabel && typeof metrics.macro_f1 === "number" ?
      `, ${split} macro F1 ${percent(metrics.macro_f1)} at the labels' thresholds` +
      (typeof metrics.accuracy === "number" ? ` (subset accuracy ${percent(metrics.accuracy)})` : "") :
      !multilabel && typeof metrics.accuracy === "number" ? `, ${split} accuracy ${percent(metrics.accuracy)}` : "";
    const calibration = card.calibration && card.calibration.method === "temperature" ?
      `; probabilities calibrated (temperature ${card.calibration.temperature.toFixed(2)})` : "";
    const unknown = card.unknown && typeof card.unknown.threshold === "number";
    threshold = unknown && health.unknown !== "off" ? card.unknown.threshold : null;
    const flags = threshold === null ? "" : `; images scoring below ${score(threshold)} (${card.unknown.detector}, ` +
      `set to keep ${percent(card.unknown.acceptance)} of validation images) are called unknown`;
    $("model-info").textContent = `${card.classes.length} ${multilabel ? "labels" : "classes"} (${card.classes.slice(0, 8).join(", ")}` +
      `${card.classes.length > 8 ? ", …" : ""}), input ${card.img_size}×${card.img_size} ${card.color}${acc}` +
      calibration + flags;
    $("limits").textContent = `up to ${limits.max_files} image(s), ${(limits.max_upload_bytes / 1e6).toFixed(1)} MB per request`;
  } catch (err) {
    $("model-info").textContent = "could not load the model card: " + err;
  }
}

function clearResults() {
  $("results").replaceChildren();
  showError("");
  $("status").textContent = "";
}

function renderFailure(node, pred) {
  // A file the server could not use: its name and why, in place of a label; the others are shown as usual.
  node.classList.add("failed");
  node.querySelector(".preview").hidden = true;
  node.querySelector(".label").textContent = "Not classified";
  node.querySelector(".file").textContent = pred.path;
  const reason = node.querySelector(".reason");
  reason.textContent = pred.error;
  reason.hidden = false;
}

function render(files, predictions) {
  const results = $("results");
  results.replaceChildren();
  predictions.forEach((pred, i) => {
    const node = $("result-template").content.firstElementChild.cloneNode(true);
    if (pred.error) {
      renderFailure(node, pred);
      results.append(node);
      return;
    }
    const img = node.querySelector(".preview");
    img.src = URL.createObjectURL(files[i]);
    img.alt = pred.path;
    img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });
    if (Array.isArray(pred.labels)) {
      // a multi-label model: every label whose probability reached its threshold, possibly none
      node.querySelector(".label").textContent = pred.labels.length ?
        pred.labels.map(({ label, probability }) => `${label} ${percent(probability)}`).join(", ") : "No label";
      node.querySelector(".prob").textContent = "";
    } else {
      node.querySelector(".label").textContent = pred.unknown ? "Unknown" : pred.label;
      node.querySelector(".prob").textContent = pred.unknown ? "" : percent(pred.probability);
    }
    node.querySelector(".file").textContent = pred.path;
    const trust = node.querySelector(".trust");
    // a multi-label model has no unknown detector: its score is the top label's probability, which the bars show
    if (typeof pred.score === "number" && !Array.isArray(pred.labels)) {
      const below = threshold === null ? "" : ` (unknown below ${score(threshold)})`;
      trust.textContent = pred.unknown ?
        `Like none of the classes it was trained on: score ${score(pred.score)}${below}. Closest classes:` :
        `score ${score(pred.score)}${below}`;
      trust.hidden = false;
    }
    if (pred.unknown) node.classList.add("unknown");
    const bars = node.querySelector(".bars");
    for (const { label, probability } of pred.top) {
      const li = document.createElement("li");
      const name = Object.assign(document.createElement("span"), { className: "name", textContent: label, title: label });
      const track = Object.assign(document.createElement("span"), { className: "track" });
      const fill = Object.assign(document.createElement("span"), { className: "fill" });
      fill.style.width = (100 * probability).toFixed(2) + "%";
      track.append(fill);
      const pct = Object.assign(document.createElement("span"), { className: "pct", textContent: percent(probability) });
      li.setAttribute("aria-label", `${label}: ${percent(probability)}`);
      li.append(name, track, pct);
      bars.append(li);
    }
    results.append(node);
  });
  const failed = predictions.filter((p) => p.error).length;
  $("status").textContent = failed ? `${predictions.length - failed} of ${predictions.length} image(s) classified; ` +
    `${failed} could not be used (see below).` : "";
}

async function classify(fileList) {
  const files = Array.from(fileList || []);
  if (!files.length) return;
  clearResults(); // a new upload: the previous one's results must not stand under its message or status
  if (files.length > limits.max_files) {
    showError(`At most ${limits.max_files} images at a time; ${files.length} were given.`);
    return;
  }
  const total = files.reduce((n, f) => n + f.size, 0);
  if (total > limits.max_upload_bytes) {
    showError(`The images are too large together (${(total / 1e6).toFixed(1)} MB; at most ${(limits.max_upload_bytes / 1e6).toFixed(1)} MB).`);
    return;
  }
  const body = new FormData();
  for (const f of files) body.append("files", f, f.name);
  $("status").textContent = `classifying ${files.length} image(s)…`;
  try {
    const response = await fetch(`predict?top_k=${topK}`, { method: "POST", body });
    const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok && !data.predictions) { // a 422 (no file usable) still carries each file's reason
      showError(data.error || `HTTP ${response.status}`);
      $("status").textContent = "";
      return;
    }
    render(files, data.predictions);
  } catch (err) {
    showError("The server could not be reached: " + err);
    $("status").textContent = "";
  }
}

function setup() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { classify(e.target.files); e.target.value = ""; });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => classify(e.dataTransfer.files));
  // A drop beside the box should not make the browser navigate away to the image.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  loadCard();
}

setup();
