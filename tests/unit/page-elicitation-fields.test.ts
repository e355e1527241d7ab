// An MCP server's question as form controls (page/elicitation-fields.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { controlType, elicitationOutcome, safeHref } from "../../page/elicitation-fields.js";
import type { ElicitationField, ElicitationResolvedFrame } from "../../lib/protocol.ts";

const field = (fields: Partial<ElicitationField>): ElicitationField => ({
  name: "x",
  type: "string",
  title: "X",
  required: false,
  ...fields,
});

test("each field type gets its control, string formats the browser checks", () => {
  assert.deepEqual(
    [
      field({ type: "boolean" }),
      field({ type: "enum" }),
      field({ type: "multiselect" }),
      field({ type: "number" }),
      field({ type: "integer" }),
      field({}),
      field({ format: "email" }),
      field({ format: "uri" }),
      field({ format: "date" }),
      field({ format: "date-time" }),
      field({ format: "hostname" }),
    ].map(controlType),
    ["checkbox", "select", "multiselect", "number", "number", "text", "email", "url", "date", "datetime-local", "text"],
  );
});

test("a URL-mode link opens only http(s)", () => {
  assert.equal(safeHref("https://example.com/x"), "https://example.com/x");
  assert.equal(safeHref("HTTP://example.com"), "HTTP://example.com");
  assert.equal(safeHref("javascript:alert(1)"), "#");
  assert.equal(safeHref(undefined), "#");
});

test("outcomes", () => {
  const resolved = (action: ElicitationResolvedFrame["action"], by: ElicitationResolvedFrame["by"]): ElicitationResolvedFrame => ({
    type: "elicitation_resolved",
    request_id: "r1",
    action,
    by,
  });
  assert.equal(elicitationOutcome(resolved("accept", "user")), "Answered");
  assert.equal(elicitationOutcome(resolved("decline", "user")), "Declined");
  assert.equal(elicitationOutcome(resolved("decline", "timeout")), "Declined: nobody answered in time");
  assert.equal(elicitationOutcome(resolved("cancel", "cancel")), "Cancelled");
});
