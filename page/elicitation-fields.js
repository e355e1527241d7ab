// @ts-check
// An MCP server's question as form controls, without the DOM: which control a field becomes, and
// how the question's outcome reads (page/elicitation.js builds the form).

/** @typedef {import("../lib/protocol.ts").ElicitationField} ElicitationField */
/** @typedef {import("../lib/protocol.ts").ElicitationResolvedFrame} ElicitationResolvedFrame */

/** @type {Record<string, string>} string formats the browser can check */
const FORMAT_TYPES = { email: "email", uri: "url", date: "date", "date-time": "datetime-local" };

/**
 * The control of a field: a checkbox, a select (one or several), or an <input> of that type.
 * @param {ElicitationField} field
 * @returns {"checkbox" | "select" | "multiselect" | "number" | string}
 */
export function controlType(field) {
  if (field.type === "boolean") return "checkbox";
  if (field.type === "enum") return "select";
  if (field.type === "multiselect") return "multiselect";
  if (field.type === "number" || field.type === "integer") return "number";
  return (field.format !== undefined && FORMAT_TYPES[field.format]) || "text";
}

/**
 * A link the form may open: http(s) only, anything else stays on the page.
 * @param {string | undefined} url
 * @returns {string}
 */
export function safeHref(url) {
  return url !== undefined && /^https?:/i.test(url) ? url : "#";
}

/**
 * @param {ElicitationResolvedFrame} frame
 * @returns {string}
 */
export function elicitationOutcome(frame) {
  if (frame.action === "accept") return "Answered";
  if (frame.by === "timeout") return "Declined: nobody answered in time";
  return frame.action === "decline" ? "Declined" : "Cancelled";
}
