// The Train section: recordings (file input or drag and drop), parameters, live progress with the
// critics' estimates and the latest sample montage, cancel; the new version joins the model list.
import { call, followJob, imageUrl } from "./api.js";
import { bytes } from "./format.js";
import { resetProgress, showProgress } from "./progress.js";
import { element } from "./dom.js";
import { showTrained } from "./results.js";

const MONTAGE_EVERY_MS = 3000;
const $ = (id) => document.getElementById(id);

let recordings = []; // {file, error: <span>} in the order they were added

/** The name the server quotes in its messages: what uploads.safe_name makes of the file name. */
function serverName(name) {
  return name.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[.-]+|[.-]+$/g, "").slice(0, 100);
}

function renderFiles() {
  const list = $("train-file-list");
  list.replaceChildren(...recordings.map((entry, index) => {
    const remove = element("button", { type: "button", className: "small" }, "Remove");
    remove.setAttribute("aria-label", `Remove ${entry.file.name}`);
    remove.addEventListener("click", () => {
      recordings.splice(index, 1);
      renderFiles();
    });
    return element("li", {}, element("span", { className: "file-name" }, entry.file.name),
      element("span", { className: "note" }, ` ${bytes(entry.file.size)} `), remove, entry.error);
  }));
}

function addFiles(files) {
  for (const file of files) {
    const error = element("span", { className: "error file-error" });
    error.setAttribute("role", "alert");
    recordings.push({ file, error });
  }
  renderFiles();
}

/** Put the API's message next to the file it names, or under the form when it names none. */
function showUploadError(message) {
  const quoted = message.split(": ")[0];
  const culprit = recordings.find((entry) => quoted === entry.file.name || quoted === serverName(entry.file.name));
  (culprit ? culprit.error : $("train-error")).textContent = message;
}

function parameters(form) {
  const params = {};
  for (const field of form.querySelectorAll("[data-param]")) {
    const raw = field.value.trim();
    if (raw !== "") params[field.dataset.param] = field.dataset.type === "number" ? Number(raw) : raw;
  }
  return params;
}

function setupDrop() {
  const drop = $("train-drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    addFiles(event.dataTransfer.files);
  });
  const input = $("train-files");
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
}

/** Fetches the training's latest montage at most every few seconds while it runs. */
function montageWatcher(job) {
  const figure = $("train-montage");
  const image = figure.querySelector("img");
  const caption = figure.querySelector("figcaption");
  let last = 0;
  let shown = null;
  return async (update) => {
    if (Date.now() - last < MONTAGE_EVERY_MS) return;
    last = Date.now();
    try {
      const url = await imageUrl(`jobs/${job.id}/samples.png`);
      if (shown) URL.revokeObjectURL(shown);
      shown = image.src = url;
      figure.hidden = false;
      caption.textContent = `Latest samples (step ${update.progress.step}): rows are latents, columns frames`;
    } catch (err) {
      if (figure.hidden) caption.textContent = err.message;
    }
  };
}

export function setupTrain({ onJobChanged, onModelPublished }) {
  const form = $("train-form");
  const progress = $("train-progress");
  const cancel = $("train-cancel");
  let running = null;
  setupDrop();
  cancel.addEventListener("click", async () => {
    try {
      const job = await call(running.links.cancel, { method: "DELETE" });
      $("train-outcome").textContent = job.state === "cancelled" ? "Cancelled." : "Asked to stop at its next step.";
    } catch (err) {
      $("train-outcome").textContent = err.message;
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("train-error").textContent = "";
    $("train-outcome").textContent = "";
    for (const entry of recordings) entry.error.textContent = "";
    const body = new FormData();
    for (const entry of recordings) body.append("files", entry.file, entry.file.name);
    body.append("params", JSON.stringify(parameters(form)));
    $("train-submit").disabled = true;
    try {
      running = await call("train", { method: "POST", form: body });
      onJobChanged();
      $("train-montage").hidden = true;
      $("train-results").replaceChildren();
      cancel.hidden = false;
      const montage = montageWatcher(running);
      const follow = (update) => {
        showProgress(progress, update);
        $("train-estimates").textContent = update.progress.message;
        if (update.state === "running" && update.progress.step > 0) montage(update);
      };
      follow(running);
      const ended = await followJob(running, follow);
      follow(ended);
      cancel.hidden = true;
      if (ended.model) {
        $("train-outcome").textContent = `${ended.state === "succeeded" ? "Trained" : "Stopped early"}: the new version ${ended.model} is in the model list.`;
        await onModelPublished(ended.model);
      } else {
        $("train-outcome").textContent = ended.error || `The training ended ${ended.state}.`;
      }
      if (ended.results.length) showTrained($("train-results"), ended.results);
      onJobChanged();
    } catch (err) {
      resetProgress(progress);
      showUploadError(err.message);
    } finally {
      $("train-submit").disabled = false;
    }
  });
}
