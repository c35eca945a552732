// The request a job ran, written out for curl and for the savgan command line, so a result
// made in the page can be made again from a script. The key is never written out: the lines
// read it from $SAVGAN_API_KEY.

const CLI_OPTIONS = [
  ["seed", "--seed"],
  ["frames", "--frames"],
  ["count", "--count"],
  ["pixel_size_um", "--pixel-size"],
  ["frame_interval_s", "--frame-interval"],
];

function quoted(text) {
  return `'${String(text).replaceAll("'", "'\\''")}'`;
}

/** The body to POST again: the stored parameters without the server's nulls. */
export function generateBody(params) {
  return Object.fromEntries(Object.entries(params).filter(([, value]) => value !== null && value !== undefined));
}

export function curlLine(url, body, keysRequired) {
  const lines = [`curl -sS -X POST ${quoted(url)}`];
  if (keysRequired) lines.push(`-H "Authorization: Bearer $SAVGAN_API_KEY"`);
  lines.push("-H 'Content-Type: application/json'", `-d ${quoted(JSON.stringify(body))}`);
  return lines.join(" \\\n  ");
}

export function cliLine(body) {
  const parts = ["savgan generate", `--model ${quoted(body.model)}`];
  for (const [field, option] of CLI_OPTIONS) {
    if (body[field] !== undefined) parts.push(`${option} ${body[field]}`);
  }
  parts.push(`--format ${body.formats.join(",")}`, "--out out");
  return parts.join(" ");
}
