// The model list: options for the pickers, and the chosen version's card (summary, montage, card text).
import { call, imageUrl } from "./api.js";

let versions = new Map(); // ref ("name:version") -> version as GET /models lists it

export async function loadModels() {
  const models = await call("models");
  versions = new Map(models.flatMap((m) => m.versions.map((v) => [v.ref, v])));
  return models;
}

function label(version) {
  if (version.source === "bundled") return `${version.name} (bundled)`;
  return `${version.name} version ${version.version} (${version.step} steps)`;
}

/** Options for every version, newest of each model last; keeps the selection when it still exists. */
export function fillModelSelect(select, models, { none } = {}) {
  const kept = select.value;
  select.replaceChildren();
  if (none) select.append(new Option(none, ""));
  for (const model of models) {
    const group = document.createElement("optgroup");
    group.label = model.owner === "public" ? `${model.name} (bundled)` : `${model.name} (yours)`;
    for (const version of model.versions) group.append(new Option(label(version), version.ref));
    select.append(group);
  }
  const refs = [...select.options].map((o) => o.value);
  if (refs.includes(kept)) select.value = kept;
}

export function modelVersion(ref) {
  return versions.get(ref);
}

function summary(version) {
  const parts = [`${version.arch}, ${version.clip} clips (frames x height x width), ${version.step} steps`];
  if (version.data) parts.push(`trained on ${version.data}`);
  const { pixel_size_um: pixel, frame_interval_s: interval } = version.physical;
  if (pixel && interval) parts.push(`${pixel} µm per pixel, ${interval} s between frames`);
  return parts.join("; ") + ".";
}

/** The card's first sentence after its title (its status), without Markdown emphasis. */
function cardStatus(markdown) {
  const paragraphs = markdown.split(/\n\s*\n/).map((p) => p.trim()).filter((p) => p && !p.startsWith("#"));
  const text = (paragraphs[0] || "").replace(/\*\*|`/g, "").replace(/\s+/g, " ");
  return text.match(/^.*?[.;](\s|$)/)?.[0].trim() || text;
}

let shownImage = null;
let latestCard = 0; // a slow answer for a version no longer chosen is dropped

/** Fill a model-card block (summary, montage, card text) for the version `ref`. */
export async function showModelCard(elements, ref) {
  const version = versions.get(ref);
  const { summaryText, image, caption, details, cardText } = elements;
  image.hidden = true;
  details.hidden = true;
  caption.textContent = "";
  if (!version) {
    summaryText.textContent = "";
    return;
  }
  summaryText.textContent = summary(version);
  const base = `models/${encodeURIComponent(version.name)}/versions/${encodeURIComponent(version.version)}`;
  const asked = ++latestCard;
  // Only bundled models come with a card; a trained version's facts are all in the summary.
  const cardRequest = version.source === "bundled" ? call(`${base}/card`) : Promise.reject(new Error("no card"));
  const [montage, card] = await Promise.allSettled([imageUrl(`${base}/samples.png`), cardRequest]);
  if (asked !== latestCard) return;
  if (montage.status === "fulfilled") {
    if (shownImage) URL.revokeObjectURL(shownImage);
    shownImage = image.src = montage.value;
    image.hidden = false;
    caption.textContent = "Samples of this version: rows are latents, columns frames.";
  } else {
    caption.textContent = montage.reason.message;
  }
  if (card.status === "fulfilled") {
    summaryText.textContent = `${cardStatus(card.value)} ${summary(version)}`;
    cardText.textContent = card.value;
    details.hidden = false;
  }
}
