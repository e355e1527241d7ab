// @ts-check
// The Files panel's rules without the DOM: URLs under /files/<user_id>, a file's reference in the
// message being typed, what a refused upload says, and which files have a preview.
import { formatBytes } from "./format.js";

/** Text previews show at most this much of a file (a Range request). */
export const PREVIEW_BYTES = 256 * 1024;
const TEXT_TYPES = /^(text\/|application\/(json|jsonl|xml|yaml|toml)$)/;

/**
 * @param {string} userId
 * @param {string} relative a workspace path ("" for the listing)
 * @returns {string}
 */
export function filesUrl(userId, relative) {
  const tail = relative ? `/${relative.split("/").map(encodeURIComponent).join("/")}` : "";
  return `/files/${encodeURIComponent(userId)}${tail}`;
}

/**
 * The message with a reference to the file (its path in backticks) put in at the cursor, and
 * where the cursor goes after it.
 * @param {string} value
 * @param {number} start selection start
 * @param {number} end selection end
 * @param {string} relative
 * @returns {{ value: string, caret: number }}
 */
export function insertReference(value, start, end, relative) {
  const fence = relative.includes("`") ? "``" : "`";
  const before = value.slice(0, start);
  const after = value.slice(end);
  const text = `${before && !/\s$/.test(before) ? " " : ""}${fence}${relative}${fence} `;
  return { value: before + text + after, caret: before.length + text.length };
}

/**
 * Refused before sending: bigger than one upload may be (limits.max_upload_bytes).
 * @param {number} size
 * @param {number} max
 * @returns {string}
 */
export function tooBigText(size, max) {
  return `Too big: ${formatBytes(size)}; one upload may be at most ${formatBytes(max)} (limits.max_upload_bytes).`;
}

/**
 * What a refused upload says, from the server's answer; the limit it names tells which kind.
 * @param {number} status
 * @param {string} body the answer's text (JSON `{error, limit?}` from lib/files)
 * @returns {string}
 */
export function uploadRefusal(status, body) {
  /** @type {unknown} */
  let answer;
  try {
    answer = JSON.parse(body);
  } catch {
    answer = undefined;
  }
  const fields = typeof answer === "object" && answer !== null ? answer : {};
  const error = "error" in fields && typeof fields.error === "string" ? fields.error : `the server answered HTTP ${status}`;
  const limit = "limit" in fields ? fields.limit : undefined;
  if (limit === "limits.workspace_bytes") return `Workspace full: ${error}`;
  if (limit === "limits.max_upload_bytes") return `Too big: ${error}`;
  return `Not uploaded: ${error}`;
}

/**
 * Which preview a file gets, by its type: an image, the start of its text, or none.
 * @param {string | undefined} mime
 * @returns {"image" | "text" | "none"}
 */
export function previewKind(mime) {
  if (/^image\//.test(mime ?? "")) return "image";
  return TEXT_TYPES.test(mime ?? "") ? "text" : "none";
}

/**
 * One entry of a listing (lib/files/listing.ts).
 * @typedef {{ path: string, name: string, type: "file" | "folder", size: number, modified: string, mime?: string }} Entry
 */
/** @typedef {{ max_upload_bytes: number, workspace_bytes: number }} Limits */

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
const isRecord = (value) => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * The listing's answer (`GET /files/<user_id>`), as far as the panel reads it: entries that are
 * not well-formed are left out, missing numbers are 0.
 * @param {unknown} body
 * @returns {{ entries: Entry[], limits: Limits | null, used: number, truncated: boolean }}
 */
export function readListing(body) {
  const fields = isRecord(body) ? body : {};
  /** @type {Entry[]} */
  const entries = [];
  for (const entry of Array.isArray(fields.entries) ? fields.entries : []) {
    if (!isRecord(entry) || typeof entry.path !== "string" || (entry.type !== "file" && entry.type !== "folder")) continue;
    entries.push({
      path: entry.path,
      name: typeof entry.name === "string" ? entry.name : (entry.path.split("/").at(-1) ?? entry.path),
      type: entry.type,
      size: typeof entry.size === "number" ? entry.size : 0,
      modified: typeof entry.modified === "string" ? entry.modified : "",
      ...(typeof entry.mime === "string" ? { mime: entry.mime } : {}),
    });
  }
  const limits = isRecord(fields.limits) ? fields.limits : undefined;
  return {
    entries,
    limits: limits
      ? {
          max_upload_bytes: typeof limits.max_upload_bytes === "number" ? limits.max_upload_bytes : Infinity,
          workspace_bytes: typeof limits.workspace_bytes === "number" ? limits.workspace_bytes : 0,
        }
      : null,
    used: Number(fields.used_bytes) || 0,
    truncated: Boolean(fields.truncated),
  };
}
