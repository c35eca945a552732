// How numbers read to a person: durations, file sizes, times of day, progress.

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1024 ** 2) return `${(count / 1024).toFixed(1)} KiB`;
  return `${(count / 1024 ** 2).toFixed(1)} MiB`;
}

export function clock(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString();
}

/** "running: 40 % (step 2 of 5), about 12 s left" from a job's state and progress. */
export function progressLine(state, progress) {
  const parts = [`${state}: ${Math.round(progress.fraction * 100)} %`];
  if (progress.total) parts.push(`(step ${progress.step} of ${progress.total})`);
  if (state === "running" && progress.eta_s) parts.push(`, about ${duration(progress.eta_s)} left`);
  return parts.join(" ").replace(" ,", ",");
}
