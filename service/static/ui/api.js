// Talking to the savgan API: the key (session storage, Bearer header, never a URL), JSON
// requests whose failures carry the API's own message, and a job's server-sent events.

const KEY_ITEM = "savgan.apiKey";
export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 2000;

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_ITEM),
  set: (key) => sessionStorage.setItem(KEY_ITEM, key),
  forget: () => sessionStorage.removeItem(KEY_ITEM),
};

let unauthorized = () => {};

/** Called with the API's message whenever a request answers 401 (no key, or an unknown one). */
export function onUnauthorized(callback) {
  unauthorized = callback;
}

function headers(extra = {}) {
  const key = apiKey.get();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

/** Paths are relative to the page, so the page also works behind a path prefix. */
export function apiUrl(path) {
  return new URL(path, document.baseURI).href;
}

async function failure(response) {
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (typeof body.detail === "string") detail = body.detail;
  } catch {
    // not JSON: the status line is all there is to say
  }
  if (response.status === 401) unauthorized(detail);
  return new ApiError(response.status, detail);
}

async function send(url, init) {
  try {
    return await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err.message}); is it still running?`);
  }
}

/** JSON, text or a Blob, by the answer's content type; throws ApiError with the API's `detail`. */
export async function call(path, { method = "GET", json, form } = {}) {
  const init = { method, headers: headers(json === undefined ? {} : { "Content-Type": "application/json" }) };
  if (json !== undefined) init.body = JSON.stringify(json);
  if (form !== undefined) init.body = form;
  const response = await send(apiUrl(path), init);
  if (!response.ok) throw await failure(response);
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) return response.json();
  if (type.startsWith("text/")) return response.text();
  return response.blob();
}

/** An object URL for an image behind the key (an <img src> cannot send the header). */
export async function imageUrl(path) {
  return URL.createObjectURL(await call(path));
}

function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  return data.length ? { name, data: JSON.parse(data.join("\n")) } : null;
}

async function streamEvents(url, onProgress) {
  // EventSource cannot send an Authorization header, so the stream is read through fetch.
  const response = await send(url, { headers: headers({ Accept: "text/event-stream" }) });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    buffer += value;
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const event = parseEvent(buffer.slice(0, cut));
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      if (event?.name === "progress") onProgress(event.data);
      else if (event?.name === "end") return event.data;
    }
  }
}

/** Follow a job to its end: its event stream, or polling when the stream breaks. Returns the ended job. */
export async function followJob(job, onProgress) {
  try {
    const ended = await streamEvents(job.links.events, onProgress);
    if (ended) return ended;
  } catch (err) {
    if (err.status) throw err;
  }
  for (;;) {
    const now = await call(job.links.self);
    onProgress(now);
    if (TERMINAL.has(now.state)) return now;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
