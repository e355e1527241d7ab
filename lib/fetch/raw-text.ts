// Markup read without a DOM, in time linear in its length: the scripts and styles cut out before
// conversion, how deeply elements nest (deep nesting makes the converter's recursion slow), and
// the page's text when it is not converted (too deep, or past its time budget). Pure.

/**
 * Cuts <script> and <style> elements (and comments) out of the markup before it is parsed: they
 * are never content, and on modern pages they are most of the bytes, while parsing, Readability
 * and turndown are synchronous (about 2 s per MB of markup here) and block the shared event loop.
 * JSON-LD scripts stay, as Readability reads the title from them. Comments are scanned in the same
 * pass so that a "<script>" inside a comment is not taken for one. Like the HTML parser, a script
 * or style runs to its first end tag (or the end of the input). Each search starts where the last
 * one ended, so the time is linear even for hostile markup.
 */
export function stripScriptsAndStyles(html: string): string {
  const opening = /<!--|<(script|style)\b/gi;
  let kept = "";
  let position = 0;
  for (let open = opening.exec(html); open; open = opening.exec(html)) {
    const [, name] = open;
    let contentStart = opening.lastIndex;
    let attributes = "";
    if (name !== undefined) {
      const tagEnd = html.indexOf(">", contentStart);
      if (tagEnd < 0) break; // no tag can be completed any more
      attributes = html.slice(contentStart, tagEnd);
      contentStart = tagEnd + 1;
    }
    const closing = name === undefined ? /-->/g : new RegExp(`</${name}\\s*>`, "gi");
    closing.lastIndex = contentStart;
    const end = closing.exec(html) ? closing.lastIndex : html.length;
    if (!/application\/ld\+json/i.test(attributes)) {
      kept += html.slice(position, open.index);
      position = end;
    }
    opening.lastIndex = end;
  }
  return kept + html.slice(position);
}

/** Elements that never have an end tag, so they do not nest. */
const VOID_ELEMENTS = new Set([
  "area",
  "base",
  "br",
  "col",
  "embed",
  "hr",
  "img",
  "input",
  "link",
  "meta",
  "param",
  "source",
  "track",
  "wbr",
]);

/**
 * Each tag of the markup, in order: the text between its `<` and `>` (the last `<` before each
 * `>`, so a run of stray `<` is read once), and the text before it. Linear in the length.
 */
function* tagsOf(html: string): Generator<{ tag: string; before: string }> {
  let position = 0;
  for (;;) {
    const open = html.indexOf("<", position);
    if (open < 0) break;
    const close = html.indexOf(">", open);
    if (close < 0) break;
    const start = html.lastIndexOf("<", close);
    yield { tag: html.slice(start + 1, close), before: html.slice(position, start) };
    position = close + 1;
  }
  yield { tag: "", before: html.slice(position) };
}

/**
 * How deeply elements nest, counted as a tolerant parser would at worst (every start tag not
 * void or self-closed opens a level, every end tag closes one); stops counting past `atMost`.
 */
export function nestingDepth(html: string, atMost = Infinity): number {
  let depth = 0;
  let deepest = 0;
  for (const { tag } of tagsOf(html)) {
    const name = /^\/?([A-Za-z][A-Za-z0-9-]{0,30})/.exec(tag)?.[1];
    if (name === undefined) continue;
    if (tag.startsWith("/")) depth = Math.max(0, depth - 1);
    else if (!tag.endsWith("/") && !VOID_ELEMENTS.has(name.toLowerCase())) {
      depth++;
      if (depth > deepest) deepest = depth;
      if (deepest > atMost) return deepest;
    }
  }
  return deepest;
}

const BLOCK_ELEMENTS = new Set(
  "address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table td th tr ul".split(
    " ",
  ),
);

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };

/** The page's text: scripts, styles, comments and tags removed, common entities decoded, blank runs collapsed. */
export function htmlToRawText(html: string): string {
  const parts: string[] = [];
  for (const { before, tag } of tagsOf(stripScriptsAndStyles(html))) {
    parts.push(before);
    // Block elements end a line; inline ones (b, a, span…) run on with the text around them.
    const name = /^\/?([A-Za-z][A-Za-z0-9]{0,15})/.exec(tag)?.[1]?.toLowerCase();
    if (name !== undefined && BLOCK_ELEMENTS.has(name)) parts.push("\n");
  }
  return parts
    .join("")
    .replace(/&(amp|lt|gt|quot|apos|nbsp);/g, (_, name: string) => ENTITIES[name] ?? "")
    .split("\n")
    .map((line) => line.replace(/[ \t\r]+/g, " ").trim())
    .filter((line) => line !== "")
    .join("\n");
}
