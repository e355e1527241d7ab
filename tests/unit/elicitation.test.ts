// lib/mcp/elicitation.ts: an elicitation schema as form fields, and answers checked against them.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { checkElicitationAnswer, elicitationFields } from "../../lib/mcp/elicitation.ts";
import { parseClientFrame } from "../../lib/protocol.ts";

describe("elicitation forms (pure)", () => {
  const schema = {
    type: "object",
    properties: {
      name: { type: "string", title: "Name", minLength: 2 },
      email: { type: "string", format: "email" },
      age: { type: "integer", minimum: 0, maximum: 150 },
      agree: { type: "boolean", default: false },
      color: { type: "string", enum: ["r", "g"], enumNames: ["Red", "Green"] },
      hero: { type: "string", oneOf: [{ const: "h1", title: "Superman" }] },
      tags: { type: "array", items: { enum: ["a", "b", "c"] }, maxItems: 2 },
    },
    required: ["name"],
  };

  test("a flat schema becomes fields; nested objects are refused", () => {
    const parsed = elicitationFields(schema);
    assert.ok(parsed.ok);
    assert.deepEqual(
      parsed.fields.map((field) => [field.name, field.type, field.required]),
      [
        ["name", "string", true],
        ["email", "string", false],
        ["age", "integer", false],
        ["agree", "boolean", false],
        ["color", "enum", false],
        ["hero", "enum", false],
        ["tags", "multiselect", false],
      ],
    );
    assert.deepEqual(parsed.fields[4]?.options, [
      { value: "r", label: "Red" },
      { value: "g", label: "Green" },
    ]);
    const many = Object.fromEntries(Array.from({ length: 51 }, (_, n) => [`f${n}`, { type: "string" }]));
    assert.deepEqual(elicitationFields({ type: "object", properties: many }), {
      ok: false,
      error: "the form has 51 fields; at most 50 are shown",
    });
    const nested = elicitationFields({ type: "object", properties: { address: { type: "object" } } });
    assert.deepEqual(nested, { ok: false, error: 'field "address" has type "object", which elicitation forms do not allow' });
  });

  test("answers are checked against the fields, numbers and booleans typed as text are converted", () => {
    const parsed = elicitationFields(schema);
    assert.ok(parsed.ok);
    const { fields } = parsed;
    assert.deepEqual(checkElicitationAnswer(fields, {}), { ok: false, error: '"Name" is required' });
    assert.deepEqual(checkElicitationAnswer(fields, { name: "A" }), { ok: false, error: '"Name" needs at least 2 characters' });
    assert.deepEqual(checkElicitationAnswer(fields, { name: "Ada", email: "nope" }), {
      ok: false,
      error: '"email" must be an email address',
    });
    assert.deepEqual(checkElicitationAnswer(fields, { name: "Ada", age: "200" }), { ok: false, error: '"age" must be at most 150' });
    assert.deepEqual(checkElicitationAnswer(fields, { name: "Ada", color: "blue" }), { ok: false, error: '"color" must be one of: r, g' });
    assert.deepEqual(checkElicitationAnswer(fields, { name: "Ada", tags: ["a", "b", "c"] }), {
      ok: false,
      error: '"tags" takes at most 2 choices',
    });
    assert.deepEqual(checkElicitationAnswer(fields, { name: "Ada", age: "36", agree: "true", color: "g", tags: ["a"] }), {
      ok: true,
      content: { name: "Ada", age: 36, agree: true, color: "g", tags: ["a"] },
    });
  });

  test("the elicitation answer frame is parsed at the edge", () => {
    assert.deepEqual(parseClientFrame('{"type":"elicitation","request_id":"r1","action":"accept","content":{"a":1,"b":["x"]}}'), {
      ok: true,
      frame: { type: "elicitation", request_id: "r1", action: "accept", content: { a: 1, b: ["x"] } },
    });
    assert.deepEqual(parseClientFrame('{"type":"elicitation","request_id":"r1","action":"maybe"}'), {
      ok: false,
      error: 'an elicitation answer needs "action": "accept", "decline" or "cancel"',
    });
    assert.deepEqual(parseClientFrame('{"type":"elicitation","request_id":"r1","action":"accept","content":{"a":{"x":1}}}'), {
      ok: false,
      error: 'field "a" must be a string, number, boolean or list of strings',
    });
  });
});
