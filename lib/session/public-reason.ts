// Error reasons as a client may read them: what failed, never where on the server.
import path from "node:path";

/**
 * An error's reason as a client may read it: never an absolute server path. A file error names
 * the path relative to `base` (the user's own folder), anything else has its paths elided.
 */
export function publicReason(error: unknown, base?: string): string {
  if (error instanceof Error && "code" in error && "path" in error && typeof error.path === "string") {
    const where = base && error.path.startsWith(base) ? path.relative(base, error.path) || "." : path.basename(error.path);
    return `${String(error.code)} on ${where}`;
  }
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/(?<![\w:/.])\/(?:[^\s'"/]+\/)*[^\s'"/]*/g, "<server path>");
}
