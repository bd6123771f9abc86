// The MetaStyle page: fill the style list, upload a photo to /api/stylize, upload a painting to /api/adapt
// and poll /api/jobs/ID until the new style is ready. Every failure is shown as one message on the page.
"use strict";

const settings = window.METASTYLE;
const $ = (id) => document.getElementById(id);
const MB = 1000000;

function say(element, text, isError) {
  element.textContent = text;
  element.classList.toggle("error", Boolean(isError));
}

function tooLarge(file) {
  if (file.size <= settings.max_upload_bytes) return null;
  return `${file.name} is ${(file.size / MB).toPrecision(3)} MB, over the limit of ` +
    `${settings.max_upload_bytes / MB} MB: choose a smaller file`;
}

// POST a form; resolve to the JSON answer, or throw an Error carrying the server's message.
async function post(url, form) {
  let response;
  try {
    response = await fetch(url, { method: "POST", body: form });
  } catch (err) {
    throw new Error(`the upload failed (${err.message}): is the server still running?`);
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    throw new Error((body && body.error) || `the server answered HTTP ${response.status}`);
  }
  return body;
}

async function loadStyles(selectId) {
  const answer = await (await fetch("/api/styles")).json();
  const select = $("style");
  select.replaceChildren();
  const groups = {};
  for (const style of answer.styles) {
    if (!groups[style.origin]) {
      groups[style.origin] = document.createElement("optgroup");
      groups[style.origin].label = style.origin === "checkpoint" ? "adapted checkpoints" : "adapted on this page";
      select.appendChild(groups[style.origin]);
    }
    const option = new Option(style.label, style.id);
    groups[style.origin].appendChild(option);
  }
  if (!answer.styles.length) {
    const none = new Option("no styles yet: adapt to a painting below", "");
    none.disabled = true;
    select.appendChild(none);
  }
  if (selectId) select.value = selectId;
}

$("photo").addEventListener("change", () => {
  const file = $("photo").files[0];
  $("input-figure").hidden = !file;
  if (file) $("input-img").src = URL.createObjectURL(file);
});

$("stylize-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = $("message");
  const file = $("photo").files[0];
  if (!file) return say(message, "choose a photo to upload first", true);
  if (tooLarge(file)) return say(message, tooLarge(file), true);
  if (!$("style").value) return say(message, "pick a style first (or adapt to a painting below)", true);
  const form = new FormData();
  form.append("photo", file);
  form.append("style", $("style").value);
  $("stylize").disabled = true;
  say(message, "stylizing… (the first photo of a new size compiles the network: a few seconds)");
  try {
    const result = await post("/api/stylize", form);
    $("result-img").src = result.url;
    $("download").href = result.download;
    $("download").setAttribute("download", result.name);
    $("result-caption").textContent = `${result.style}, ${result.width}×${result.height}`;
    $("result-figure").hidden = false;
    const compiled = result.compiled ? " (including compiling the network for this image size)" : "";
    say(message, `stylized in ${result.seconds.toFixed(2)} s${compiled}`);
  } catch (err) {
    $("result-figure").hidden = true;
    say(message, err.message, true);
  } finally {
    $("stylize").disabled = false;
  }
});

function showJob(job) {
  $("adapt-progress-box").hidden = false;
  $("adapt-progress").max = job.steps;
  $("adapt-progress").value = job.step;
  const loss = job.loss === null ? "" : `, loss ${job.loss.toPrecision(4)}`;
  const state = job.state === "queued" ? "queued behind another adaptation" :
    job.step === 0 ? "compiling the first step…" : `step ${job.step}/${job.steps}${loss}`;
  $("adapt-status").textContent = job.state === "done" ? `done: ${job.steps} steps${loss}` : state;
}

async function pollJob(id) {
  const message = $("adapt-message");
  for (;;) {
    let job;
    try {
      const response = await fetch(`/api/jobs/${id}`);
      job = await response.json();
      if (!response.ok) throw new Error(job.error || `HTTP ${response.status}`);
    } catch (err) {
      return say(message, `lost track of the adaptation: ${err.message}`, true);
    }
    showJob(job);
    if (job.state === "done") {
      await loadStyles(job.style);
      return say(message, `adapted to ${job.name} in ${job.seconds} s: it is now selected under Style above`);
    }
    if (job.state === "failed") return say(message, job.error, true);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

if (settings.adapt) {
  $("adapt-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = $("adapt-message");
    const file = $("painting").files[0];
    if (!file) return say(message, "choose a painting to upload first", true);
    if (tooLarge(file)) return say(message, tooLarge(file), true);
    const form = new FormData();
    form.append("painting", file);
    $("adapt").disabled = true;
    say(message, `adapting to ${file.name}…`);
    try {
      const answer = await post("/api/adapt", form);
      await pollJob(answer.job);
    } catch (err) {
      say(message, err.message, true);
    } finally {
      $("adapt").disabled = false;
    }
  });
}

loadStyles().catch((err) => say($("message"), `cannot list the styles: ${err.message}`, true));
