// Starts the page: asks the server whether a key is needed, asks for one only then, and wires the sections.
import { apiKey, call, onUnauthorized } from "./api.js";
import { setupGenerate } from "./generate.js";
import { setupJobs } from "./jobs.js";
import { fillModelSelect, loadModels } from "./models.js";
import { setupTrain } from "./train.js";

const $ = (id) => document.getElementById(id);

function askForKey(message) {
  $("key-form").hidden = false;
  $("key-status").hidden = true;
  $("key-error").textContent = message || "";
  $("key-input").focus();
}

async function start() {
  let server;
  try {
    server = await call("info");
  } catch (err) {
    document.body.prepend(Object.assign(document.createElement("p"), { className: "error", textContent: err.message }));
    return;
  }
  const jobs = setupJobs();
  const generate = setupGenerate(server, { onJobChanged: jobs.refresh });

  async function refreshModels() {
    const models = await loadModels();
    fillModelSelect($("gen-model"), models);
    fillModelSelect($("train-base"), models, { none: "none: train from scratch with the preset below" });
    await generate.modelsChanged();
  }

  setupTrain({
    onJobChanged: jobs.refresh,
    onModelPublished: async (ref) => {
      await refreshModels();
      $("gen-model").value = ref;
      await generate.modelsChanged();
    },
  });

  async function load() {
    try {
      await refreshModels();
      $("key-form").hidden = true;
      $("key-status").hidden = !server.keys_required;
      await jobs.refresh();
    } catch (err) {
      if (err.status !== 401) $("gen-error").textContent = err.message;
    }
  }

  if (server.keys_required) {
    onUnauthorized(askForKey);
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      apiKey.set($("key-input").value.trim());
      $("key-input").value = "";
      load();
    });
    $("key-forget").addEventListener("click", () => {
      apiKey.forget();
      askForKey("");
    });
    if (!apiKey.get()) {
      askForKey("");
      return;
    }
  }
  await load();
}

start();
