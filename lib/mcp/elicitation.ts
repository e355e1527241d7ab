// MCP elicitation forms, pure: a server's requestedSchema (flat, as the spec allows: strings,
// numbers, booleans, enums, multi-select enums) to the fields a page or the CLI shows, and a
// check of the user's answer against them before it goes back to the server.
import { isRecord, type ElicitationField, type ElicitationValue } from "../protocol.ts";

/** A form is for a person: more fields or choices than this is not a form but an abuse, and is declined. */
export const MAX_FIELDS = 50;
export const MAX_OPTIONS = 200;
/** Every string of a form (titles, descriptions, option values and labels, defaults, formats) is cut to this many characters. */
const MAX_LABEL_CHARS = 500;
/** A field name is a key of the answer: one longer than this is refused, not cut. */
const MAX_NAME_CHARS = 200;
/** The whole form as JSON, unless the config says otherwise (limits.mcp_max_elicitation_chars). */
export const DEFAULT_MAX_FORM_CHARS = 64_000;

const str = (value: unknown): string | undefined => (typeof value === "string" ? value.slice(0, MAX_LABEL_CHARS) : undefined);
const label = str;
const num = (value: unknown): number | undefined => (typeof value === "number" && Number.isFinite(value) ? value : undefined);

/** `enum` (+ legacy `enumNames`) or `oneOf`/`anyOf` of `{const, title}`: the options of a select. */
function optionsOf(schema: Record<string, unknown>): { value: string; label: string }[] | undefined {
  if (Array.isArray(schema.enum)) {
    const names = Array.isArray(schema.enumNames) ? schema.enumNames : [];
    return schema.enum
      .filter((value): value is string => typeof value === "string")
      .map((raw, index) => {
        const value = raw.slice(0, MAX_LABEL_CHARS);
        return { value, label: str(names[index]) ?? value };
      });
  }
  const choices = Array.isArray(schema.oneOf) ? schema.oneOf : Array.isArray(schema.anyOf) ? schema.anyOf : undefined;
  if (!choices) return undefined;
  return choices.filter(isRecord).flatMap((choice) => {
    const value = str(choice.const);
    return value === undefined ? [] : [{ value, label: str(choice.title) ?? value }];
  });
}

function defaultOf(value: unknown): ElicitationValue | undefined {
  if (typeof value === "boolean" || num(value) !== undefined) return value as boolean | number;
  if (typeof value === "string") return value.slice(0, MAX_LABEL_CHARS);
  if (Array.isArray(value) && value.length <= MAX_OPTIONS && value.every((item) => typeof item === "string"))
    return value.map((item) => item.slice(0, MAX_LABEL_CHARS));
  return undefined;
}

/** The form's fields; a property the spec does not allow (nested objects, …) is an error naming it. */
export function elicitationFields(
  requestedSchema: unknown,
  maxFormChars = DEFAULT_MAX_FORM_CHARS,
): { ok: true; fields: ElicitationField[] } | { ok: false; error: string } {
  const parsed = formFields(requestedSchema);
  if (!parsed.ok) return parsed;
  const chars = JSON.stringify(parsed.fields).length;
  if (chars > maxFormChars)
    return { ok: false, error: `the form is ${chars} characters of JSON; at most ${maxFormChars} (limits.mcp_max_elicitation_chars)` };
  return parsed;
}

function formFields(requestedSchema: unknown): { ok: true; fields: ElicitationField[] } | { ok: false; error: string } {
  if (!isRecord(requestedSchema) || !isRecord(requestedSchema.properties)) return { ok: true, fields: [] };
  const required = new Set(
    Array.isArray(requestedSchema.required) ? requestedSchema.required.filter((name) => typeof name === "string") : [],
  );
  const fields: ElicitationField[] = [];
  const properties = Object.entries(requestedSchema.properties);
  if (properties.length > MAX_FIELDS)
    return { ok: false, error: `the form has ${properties.length} fields; at most ${MAX_FIELDS} are shown` };
  for (const [name, raw] of properties) {
    if (name.length > MAX_NAME_CHARS) return { ok: false, error: `a field name is ${name.length} characters; at most ${MAX_NAME_CHARS}` };
    if (!isRecord(raw)) return { ok: false, error: `field "${name}" has no schema` };
    const common = {
      name,
      title: label(raw.title) ?? name,
      ...(label(raw.description) !== undefined ? { description: label(raw.description) } : {}),
      required: required.has(name),
      ...(defaultOf(raw.default) !== undefined ? { default: defaultOf(raw.default) } : {}),
    };
    if (raw.type === "array") {
      const options = isRecord(raw.items) ? optionsOf(raw.items) : undefined;
      if (!options) return { ok: false, error: `field "${name}" is a list of something other than enum values` };
      if (options.length > MAX_OPTIONS)
        return { ok: false, error: `field "${name}" has ${options.length} choices; at most ${MAX_OPTIONS}` };
      fields.push({ ...common, type: "multiselect", options, ...bounds(raw.minItems, raw.maxItems, "min_length", "max_length") });
      continue;
    }
    const options = optionsOf(raw);
    if (options && options.length > MAX_OPTIONS)
      return { ok: false, error: `field "${name}" has ${options.length} choices; at most ${MAX_OPTIONS}` };
    if (options && (raw.type === "string" || raw.type === undefined)) {
      fields.push({ ...common, type: "enum", options });
      continue;
    }
    switch (raw.type) {
      case "string":
        fields.push({
          ...common,
          type: "string",
          ...(str(raw.format) !== undefined ? { format: str(raw.format) } : {}),
          ...bounds(raw.minLength, raw.maxLength, "min_length", "max_length"),
        });
        break;
      case "number":
      case "integer":
        fields.push({ ...common, type: raw.type, ...bounds(raw.minimum, raw.maximum, "minimum", "maximum") });
        break;
      case "boolean":
        fields.push({ ...common, type: "boolean" });
        break;
      default:
        return { ok: false, error: `field "${name}" has type ${JSON.stringify(raw.type)}, which elicitation forms do not allow` };
    }
  }
  return { ok: true, fields };
}

function bounds<L extends string, H extends string>(low: unknown, high: unknown, lowKey: L, highKey: H) {
  return {
    ...(num(low) !== undefined ? { [lowKey]: num(low) } : {}),
    ...(num(high) !== undefined ? { [highKey]: num(high) } : {}),
  } as Partial<Record<L | H, number>>;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Checks one answer; returns the values to send (numbers from digits typed as text) or the first problem. */
export function checkElicitationAnswer(
  fields: readonly ElicitationField[],
  content: Readonly<Record<string, ElicitationValue>>,
): { ok: true; content: Record<string, ElicitationValue> } | { ok: false; error: string } {
  const out: Record<string, ElicitationValue> = {};
  for (const field of fields) {
    // SEP-1034: a field the answer leaves out takes its schema default.
    let value = content[field.name] ?? field.default;
    if (value === undefined || value === "") {
      if (field.required) return { ok: false, error: `"${field.title}" is required` };
      continue;
    }
    const label = `"${field.title}"`;
    switch (field.type) {
      case "string":
        if (typeof value !== "string") return { ok: false, error: `${label} must be text` };
        if (field.min_length !== undefined && value.length < field.min_length)
          return { ok: false, error: `${label} needs at least ${field.min_length} characters` };
        if (field.max_length !== undefined && value.length > field.max_length)
          return { ok: false, error: `${label} takes at most ${field.max_length} characters` };
        if (field.format === "email" && !EMAIL.test(value)) return { ok: false, error: `${label} must be an email address` };
        if (field.format === "date" && !DATE.test(value)) return { ok: false, error: `${label} must be a date (YYYY-MM-DD)` };
        if (field.format === "uri" && !URL.canParse(value)) return { ok: false, error: `${label} must be a URL` };
        break;
      case "number":
      case "integer": {
        const parsed = typeof value === "string" ? Number(value.trim()) : value;
        if (typeof parsed !== "number" || !Number.isFinite(parsed)) return { ok: false, error: `${label} must be a number` };
        if (field.type === "integer" && !Number.isInteger(parsed)) return { ok: false, error: `${label} must be a whole number` };
        if (field.minimum !== undefined && parsed < field.minimum)
          return { ok: false, error: `${label} must be at least ${field.minimum}` };
        if (field.maximum !== undefined && parsed > field.maximum) return { ok: false, error: `${label} must be at most ${field.maximum}` };
        value = parsed;
        break;
      }
      case "boolean":
        if (typeof value === "string" && /^(true|false)$/.test(value)) value = value === "true";
        if (typeof value !== "boolean") return { ok: false, error: `${label} must be true or false` };
        break;
      case "enum":
        if (typeof value !== "string" || !field.options?.some((option) => option.value === value))
          return { ok: false, error: `${label} must be one of: ${field.options?.map((option) => option.value).join(", ")}` };
        break;
      case "multiselect": {
        const list = typeof value === "string" ? [value] : value;
        if (!Array.isArray(list) || !list.every((item) => field.options?.some((option) => option.value === item)))
          return { ok: false, error: `${label} must be a list of: ${field.options?.map((option) => option.value).join(", ")}` };
        if (field.min_length !== undefined && list.length < field.min_length)
          return { ok: false, error: `${label} needs at least ${field.min_length} choices` };
        if (field.max_length !== undefined && list.length > field.max_length)
          return { ok: false, error: `${label} takes at most ${field.max_length} choices` };
        value = list;
        break;
      }
      default:
        return field.type satisfies never;
    }
    out[field.name] = value;
  }
  return { ok: true, content: out };
}
