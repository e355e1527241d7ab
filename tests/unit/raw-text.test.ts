// Markup read without a DOM: nesting depth and the page's text, in linear time even for hostile input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { htmlToRawText, nestingDepth } from "../../lib/fetch/raw-text.ts";

test("nesting depth counts open elements; void and self-closed ones do not nest; counting stops past the cap", () => {
  assert.equal(nestingDepth("<html><body><div><p>a<br>b<img src=x></p></div></body></html>"), 4);
  assert.equal(nestingDepth("<div><span/><span/></div>"), 1);
  assert.equal(nestingDepth("</div></div><p>x"), 1, "stray end tags do not go below zero");
  assert.equal(nestingDepth("<div>".repeat(100_000), 256), 257);
});

test("the page's text: no scripts, styles, comments or tags; entities decoded; blank runs collapsed", () => {
  const html =
    "<html><head><style>p{}</style><script>alert(1)</script></head><body><h1>Title</h1>\n\n  <p>One &amp; two&nbsp;<b>three</b></p><!-- hidden --></body></html>";
  assert.equal(htmlToRawText(html), "Title\nOne & two three");
});

test("hostile markup is read in linear time: runs of '<' without '>', deep nesting, long blank runs", () => {
  for (const hostile of ["<".repeat(300_000), `${"<a".repeat(200_000)}>`, "<div>".repeat(200_000), `a${" ".repeat(500_000)}b`]) {
    const started = performance.now();
    nestingDepth(hostile);
    htmlToRawText(hostile);
    assert.ok(performance.now() - started < 2000, `${(performance.now() - started).toFixed(0)} ms`);
  }
});
