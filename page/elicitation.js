// @ts-check
// An MCP server asks the user something: a small form (or a link to open) in the turn. Accept
// sends the values, Decline and Cancel say no; the first answer from any tab wins.
import { isOpen, send } from "./connection.js";
import { announce, button, el, ui } from "./dom.js";
import { controlType, elicitationOutcome, safeHref } from "./elicitation-fields.js";
import { follow } from "./render.js";

/** @typedef {import("../lib/protocol.ts").ElicitationField} ElicitationField */
/** @typedef {import("../lib/protocol.ts").ElicitationRequestFrame} ElicitationRequestFrame */
/** @typedef {import("../lib/protocol.ts").ElicitationResolvedFrame} ElicitationResolvedFrame */
/** @typedef {import("../lib/protocol.ts").ElicitationValue} ElicitationValue */
/** @typedef {import("./turns.js").Turn} Turn */
/** @typedef {{ box: HTMLFormElement, sent: boolean, settled: boolean, problem: HTMLParagraphElement }} Question */

/** @type {Map<string, Question>} request_id -> the question's form */
const elicitations = new Map();

/**
 * A labelled control for one field, and how to read its value (undefined: left empty).
 * @param {ElicitationField} field
 * @returns {{ nodes: HTMLElement[], read: () => ElicitationValue | undefined }}
 */
function fieldInput(field) {
  const id = `f-${Math.random().toString(36).slice(2)}`;
  const label = el("label", "", `${field.title}${field.required ? " *" : ""}`);
  label.htmlFor = id;
  if (field.description) label.append(el("span", "hint", field.description));
  const type = controlType(field);
  /** @type {HTMLInputElement | HTMLSelectElement} */
  let control;
  /** @type {() => ElicitationValue | undefined} */
  let read;
  if (type === "checkbox") {
    const box = el("input");
    box.type = "checkbox";
    box.checked = field.default === true;
    control = box;
    read = () => box.checked;
  } else if (type === "select" || type === "multiselect") {
    const select = el("select");
    const multiple = type === "multiselect";
    select.multiple = multiple;
    if (!multiple && !field.required) select.append(el("option", "", ""));
    for (const option of field.options ?? []) {
      const node = el("option", "", option.label);
      node.value = option.value;
      node.selected = multiple ? Array.isArray(field.default) && field.default.includes(option.value) : option.value === field.default;
      select.append(node);
    }
    select.required = field.required;
    control = select;
    read = multiple
      ? () => {
          const chosen = [...select.selectedOptions].map((option) => option.value);
          return chosen.length > 0 ? chosen : undefined;
        }
      : () => (select.value === "" ? undefined : select.value);
  } else {
    const input = el("input");
    const number = type === "number";
    input.type = type;
    if (number) {
      input.step = field.type === "integer" ? "1" : "any";
      if (field.minimum !== undefined) input.min = String(field.minimum);
      if (field.maximum !== undefined) input.max = String(field.maximum);
    } else {
      if (field.min_length !== undefined) input.minLength = field.min_length;
      if (field.max_length !== undefined) input.maxLength = field.max_length;
    }
    if (field.default !== undefined) input.value = String(field.default);
    input.required = field.required;
    control = input;
    read = () => {
      if (input.value === "") return undefined;
      return number ? Number(input.value) : input.value;
    };
  }
  control.id = id;
  control.name = field.name;
  return { nodes: [label, control], read };
}

/**
 * @param {ElicitationRequestFrame} frame
 * @param {Turn | undefined} turn the turn whose tool call asked, when the page knows it
 */
export function onElicitationRequest(frame, turn) {
  const known = elicitations.get(frame.request_id);
  if (known && known.box.isConnected) return;
  const box = el("form", "elicit");
  box.noValidate = false;
  /** @type {Question} */
  const request = { box, sent: false, settled: false, problem: el("p", "problem") };
  /** @type {{ field: ElicitationField, read: () => ElicitationValue | undefined }[]} */
  const inputs = [];
  request.problem.setAttribute("role", "alert");
  box.append(el("p", "ask", `${frame.server} asks: ${frame.message}`));
  if (frame.mode === "url") {
    const link = el("a", "", frame.url);
    link.href = safeHref(frame.url);
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    box.append(el("p", "", "Open this link to continue: "), link);
  } else {
    for (const field of frame.fields ?? []) {
      const input = fieldInput(field);
      inputs.push({ field, read: input.read });
      box.append(...input.nodes);
    }
  }
  /** @param {"accept" | "decline" | "cancel"} action */
  const answer = (action) => {
    if (request.sent || request.settled) return;
    if (!isOpen()) {
      request.problem.textContent = "Not connected: answer again once the page has reconnected.";
      return;
    }
    /** @type {Record<string, ElicitationValue>} */
    const content = {};
    if (action === "accept") {
      if (!box.reportValidity()) return;
      for (const { field, read } of inputs) {
        const value = read();
        if (value !== undefined) content[field.name] = value;
      }
    }
    request.sent = true;
    request.problem.textContent = "";
    send({ type: "elicitation", request_id: frame.request_id, action, ...(action === "accept" ? { content } : {}) });
  };
  const accept = el("button", "approve", frame.mode === "url" ? "Done" : "Submit");
  accept.type = "submit";
  const actions = el("div", "actions");
  actions.append(
    accept,
    button("Decline", "deny", () => answer("decline")),
    button("Cancel", "", () => answer("cancel")),
  );
  box.append(actions, request.problem);
  box.addEventListener("submit", (event) => {
    event.preventDefault();
    answer("accept");
  });
  (turn ? turn.reply : ui.current).append(box);
  elicitations.set(frame.request_id, request);
  announce(`${frame.server} asks: ${frame.message}`);
  follow();
}

/** @param {ElicitationResolvedFrame} frame */
export function onElicitationResolved(frame) {
  const request = elicitations.get(frame.request_id);
  if (!request || request.settled) return;
  request.settled = true;
  const text = elicitationOutcome(frame);
  request.box.className = `elicit ${frame.action}`;
  request.box.replaceChildren(el("p", "outcome", text));
  announce(text);
}

/**
 * @param {string} requestId
 * @returns {boolean} whether that question's form is on the page
 */
export function hasForm(requestId) {
  return elicitations.has(requestId);
}

/**
 * The server refused the answer: its reason goes under the form, which stays open for another.
 * @param {string} requestId
 * @param {string} text
 */
export function formRefused(requestId, text) {
  const request = elicitations.get(requestId);
  if (!request) return;
  request.problem.textContent = text;
  request.sent = false;
}
