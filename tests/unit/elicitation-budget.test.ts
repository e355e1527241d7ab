// Elicitation forms from an MCP server are bounded before they reach any tab: labels cut, option
// values and field names past a bound refuse the form, and the whole form has a size cap.
import { test } from "node:test";
import assert from "node:assert/strict";
import { elicitationFields, MAX_FORM_CHARS } from "../../lib/mcp/elicitation.ts";

const form = (properties: Record<string, unknown>) => elicitationFields({ type: "object", properties });

test("option labels are cut like titles; a form within bounds is shown", () => {
  const outcome = form({
    color: { type: "string", title: "T".repeat(10_000), oneOf: [{ const: "red", title: "R".repeat(10_000) }] },
    sizes: { type: "array", items: { enum: ["s", "m"], enumNames: ["S".repeat(10_000), "M"] } },
  });
  assert.ok(outcome.ok);
  const [color, sizes] = outcome.fields;
  assert.equal(color?.title.length, 500);
  assert.ok(color && "options" in color && color.options?.[0]?.label.length === 500);
  assert.ok(sizes && "options" in sizes && sizes.options?.[0]?.label.length === 500);
});

test("a huge option value, field name or whole form refuses the form, saying why", () => {
  const longValue = form({ pick: { type: "string", enum: ["v".repeat(5000)] } });
  assert.ok(!longValue.ok && /choice of 5000 characters/.test(longValue.error));
  const longName = form({ ["n".repeat(5000)]: { type: "string" } });
  assert.ok(!longName.ok && /field name is 5000 characters/.test(longName.error));
  // 50 fields of 200 choices with 400-character values: within every per-item bound, 4 MB in all.
  const properties = Object.fromEntries(
    Array.from({ length: 50 }, (_, field) => [
      `f${field}`,
      { type: "string", enum: Array.from({ length: 200 }, (_, n) => `${n}`.padEnd(400, "x")) },
    ]),
  );
  const huge = form(properties);
  assert.ok(!huge.ok && huge.error.includes(`at most ${MAX_FORM_CHARS}`), huge.ok ? "shown" : huge.error);
  // A default too long to be a value is dropped, not sent.
  const withDefault = form({ note: { type: "string", default: "d".repeat(5000) } });
  assert.ok(withDefault.ok && withDefault.fields[0]?.default === undefined);
});
