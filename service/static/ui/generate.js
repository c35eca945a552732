// The Generate section: model picker with its card, the form, live progress, the videos.
import { call, followJob } from "./api.js";
import { showModelCard, modelVersion } from "./models.js";
import { resetProgress, showProgress } from "./progress.js";
import { cliLine, curlLine, generateBody } from "./reproduce.js";
import { showGenerated } from "./results.js";

const SEED_LIMIT = 2 ** 31;
const NUMBER_FIELDS = ["seed", "frames", "count", "pixel_size_um", "frame_interval_s"];

const $ = (id) => document.getElementById(id);

/** The form as a request body; empty fields are left to the server's defaults, nothing is checked here. */
function requestBody(form) {
  const body = {
    model: form.elements.model.value,
    formats: [...form.querySelectorAll("input[name=formats]:checked")].map((box) => box.value),
  };
  for (const field of NUMBER_FIELDS) {
    const raw = form.elements[field].value.trim();
    if (raw !== "") body[field] = Number(raw);
  }
  return body;
}

function showReproduction(job, server) {
  const body = generateBody(job.params);
  $("gen-curl").textContent = curlLine(new URL("generate", document.baseURI).href, body, server.keys_required);
  $("gen-json").textContent = JSON.stringify(body, null, 2);
  $("gen-cli").textContent = cliLine(body);
  const version = modelVersion(body.model);
  $("gen-cli-note").textContent = version && version.source !== "bundled"
    ? `The command line finds ${body.model} once its version folder is installed under SAVGAN_MODELS_DIR.` : "";
  $("gen-reproduce").hidden = false;
}

export function setupGenerate(server, { onJobChanged }) {
  const form = $("generate-form");
  const picker = $("gen-model");
  const card = {
    summaryText: $("model-summary"), image: $("model-samples"), caption: $("model-samples-caption"),
    details: $("model-card-details"), cardText: $("model-card-text"),
  };
  form.elements.frames.max = server.limits.max_frames;
  form.elements.count.max = server.limits.max_videos_per_request;
  picker.addEventListener("change", () => showModelCard(card, picker.value));
  $("gen-seed-random").addEventListener("click", () => {
    form.elements.seed.value = crypto.getRandomValues(new Uint32Array(1))[0] % SEED_LIMIT;
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("gen-error");
    const submit = $("gen-submit");
    const progress = $("gen-progress");
    error.textContent = "";
    submit.disabled = true;
    try {
      const job = await call("generate", { method: "POST", json: requestBody(form) });
      onJobChanged();
      showReproduction(job, server);
      $("gen-results").replaceChildren();
      showProgress(progress, job);
      const ended = await followJob(job, (update) => showProgress(progress, update));
      showProgress(progress, ended);
      if (ended.state === "succeeded") showGenerated($("gen-results"), ended.results);
      else error.textContent = ended.error || `the job ended ${ended.state}`;
      onJobChanged();
    } catch (err) {
      resetProgress(progress);
      error.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });

  return {
    /** After the model list changed: show the chosen version's card. */
    modelsChanged: () => showModelCard(card, picker.value),
  };
}
