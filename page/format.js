// @ts-check
// Formatting shared by the page and the CLI (client/display.ts, client/files.ts): sizes,
// durations, tool arguments, waits and progress. DOM-free, so the CLI imports it under Node.

/**
 * At most `max` characters, the last of them an ellipsis when the text was cut.
 * @param {string} text
 * @param {number} max
 * @returns {string}
 */
export function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * Tool arguments on one line: compact JSON, cut so a long argument does not flood the view.
 * @param {unknown} value
 * @param {number} [max]
 * @returns {string}
 */
export function formatArguments(value, max = 120) {
  return clip((typeof value === "string" ? value : (JSON.stringify(value) ?? "")).replace(/\s+/g, " "), max);
}

/**
 * Tool arguments as the page shows them: the model's raw text, or the JSON (indented when asked).
 * @param {unknown} value
 * @param {number} [indent]
 * @returns {string}
 */
export function showArguments(value, indent) {
  return typeof value === "string" ? value : (JSON.stringify(value, null, indent) ?? "");
}

/**
 * The first line of a tool result, cut to fit on one line.
 * @param {string} text
 * @param {number} [max]
 * @returns {string}
 */
export function firstLine(text, max = 100) {
  return clip(text.split("\n", 1)[0] ?? "", max);
}

/**
 * An approval request's wait, in whole seconds.
 * @param {number} timeoutMs
 * @returns {string}
 */
export function waitText(timeoutMs) {
  return `${Math.round(timeoutMs / 1000)} s`;
}

/**
 * A size in bytes, KiB, MiB or GiB (one decimal below 10).
 * @param {number} bytes
 * @returns {string}
 */
export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/**
 * A duration: milliseconds below a second, then seconds (one decimal below 10 s).
 * @param {number} ms
 * @returns {string}
 */
export function formatMs(ms) {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

/**
 * How far a tool has come, `3/5 (60%)`; "" when the server gives no total.
 * @param {number} progress
 * @param {number | undefined} total
 * @returns {string}
 */
export function progressAmount(progress, total) {
  if (typeof total !== "number" || !(total > 0)) return "";
  return `${progress}/${total} (${Math.round((Math.min(progress, total) / total) * 100)}%)`;
}
