// The Range header of a download (RFC 9110 §14): one byte range, or none. Pure.

export type RangeDecision =
  /** No usable Range: send the whole file (also for several ranges, which RFC 9110 lets a server ignore). */
  | { kind: "whole" }
  /** Inclusive byte offsets. */
  | { kind: "partial"; start: number; end: number }
  /** Syntactically a range, but none of it is in the file: 416. */
  | { kind: "unsatisfiable" };

export function decideRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: "whole" };
  const found = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  // A malformed header or a multi-range request is ignored: the whole file is a valid answer.
  if (!found) return { kind: "whole" };
  const [, first = "", last = ""] = found;
  if (first === "" && last === "") return { kind: "whole" };
  if (first === "") {
    // `bytes=-N`: the last N bytes.
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return { kind: "unsatisfiable" };
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return { kind: "whole" };
  return { kind: "partial", start, end };
}

/** `Content-Disposition: attachment` with an ASCII fallback and the exact name in `filename*` (RFC 6266, RFC 8187). */
export function attachmentDisposition(name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%/]/g, "_");
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
