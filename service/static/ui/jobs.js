// The Jobs section: the caller's jobs, newest first, with state, timings, files and cancel.
import { call, TERMINAL } from "./api.js";
import { clock, duration, progressLine } from "./format.js";
import { element } from "./dom.js";
import { downloadLinks } from "./results.js";

const ACTIVE_REFRESH_MS = 3000;
const PAGE = 20;
const $ = (id) => document.getElementById(id);

function what(job) {
  const p = job.params;
  if (job.kind === "generate") return `${p.model}, seed ${p.seed}, ${p.count} x ${p.frames} frames`;
  const from = p.base_model ? `from ${p.base_model}` : `preset ${p.preset}`;
  return `${p.name} ${from}, ${p.steps} steps${job.model ? ` → ${job.model}` : ""}`;
}

function row(job, refresh) {
  const cells = [
    clock(job.created_at), job.kind, job.error ? `${job.state}: ${job.error}` : job.state,
    progressLine(job.state, job.progress), duration(job.timings.queued_s), duration(job.timings.run_s), what(job),
  ].map((text) => element("td", {}, text));
  const actions = element("td");
  if (!TERMINAL.has(job.state)) {
    const cancel = element("button", { type: "button", className: "small" }, "Cancel");
    cancel.setAttribute("aria-label", `Cancel ${job.kind} job submitted ${clock(job.created_at)}`);
    cancel.addEventListener("click", async () => {
      try {
        await call(job.links.cancel, { method: "DELETE" });
      } catch (err) {
        $("jobs-error").textContent = err.message;
      }
      refresh();
    });
    actions.append(cancel);
  }
  const tr = element("tr", { className: `state-${job.state}` }, ...cells, element("td", {}, downloadLinks(job.results)), actions);
  tr.dataset.job = job.id;
  return tr;
}

export function setupJobs() {
  const body = document.querySelector("#jobs-table tbody");
  const older = $("jobs-older");
  let timer = null;
  let cursor = null;

  async function load(before) {
    const page = await call(`jobs?limit=${PAGE}${before ? `&before=${before}` : ""}`);
    cursor = page.next;
    older.hidden = !cursor;
    return page.jobs;
  }

  async function refresh() {
    clearTimeout(timer);
    $("jobs-error").textContent = "";
    try {
      const jobs = await load(null);
      body.replaceChildren(...jobs.map((job) => row(job, refresh)));
      $("jobs-empty").hidden = jobs.length > 0;
      if (jobs.some((job) => !TERMINAL.has(job.state))) timer = setTimeout(refresh, ACTIVE_REFRESH_MS);
    } catch (err) {
      $("jobs-error").textContent = err.message;
    }
  }

  older.addEventListener("click", async () => {
    try {
      body.append(...(await load(cursor)).map((job) => row(job, refresh)));
    } catch (err) {
      $("jobs-error").textContent = err.message;
    }
  });
  $("jobs-refresh").addEventListener("click", refresh);
  return { refresh };
}
