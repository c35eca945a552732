// A job's live progress in a .progress block: the bar, a line for a person, the job's message.
import { progressLine } from "./format.js";

export function showProgress(block, { state, progress }) {
  block.hidden = false;
  block.querySelector("progress").value = progress.fraction;
  block.querySelector(".progress-text").textContent = progressLine(state, progress);
}

export function resetProgress(block) {
  block.hidden = true;
  block.querySelector("progress").value = 0;
  block.querySelector(".progress-text").textContent = "";
}
