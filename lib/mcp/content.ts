// MCP tool results → what the model can use: a pure mapping, tested without a network.
// Chat-completions tool messages take text only, so (as the original mcp-agent does in its
// OpenAI multipart converter) images travel separately: the agent adds them, after the tool
// messages of a step, as one user message of image parts. Everything else becomes text.
import type { ToolImage } from "../agent/types.ts";
import { isRecord } from "../protocol.ts";

export type { ToolImage };

export interface MappedResult {
  ok: boolean;
  text: string;
  images: ToolImage[];
}

export interface ContentCaps {
  /** Each text part (text, resource text, structured JSON) longer than this is cut, with a note. */
  maxTextChars: number;
  /** An image whose decoded size is larger than this is not passed on; a note says so. */
  maxImageBytes: number;
}

/** MIME types the chat API accepts as image input. */
const MODEL_IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/** Bytes that base64 text of this length decodes to. */
export function base64Bytes(data: string): number {
  const padding = data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0;
  return Math.max(0, Math.floor((data.replace(/\s/g, "").length * 3) / 4) - padding);
}

export function capText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  return `${text.slice(0, maxChars)}\n\n[result cut: ${text.length} characters, only the first ${maxChars} are shown]`;
}

const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

function sizeNote(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** One content block (https://modelcontextprotocol.io/specification: tools, "Tool Result") to text and images. */
function mapBlock(block: Record<string, unknown>, caps: ContentCaps, images: ToolImage[]): string | undefined {
  switch (block.type) {
    case "text":
      return capText(str(block.text) ?? "", caps.maxTextChars);
    case "image": {
      const data = str(block.data) ?? "";
      const mimeType = str(block.mimeType) ?? "application/octet-stream";
      const bytes = base64Bytes(data);
      if (!MODEL_IMAGE_TYPES.has(mimeType)) return `[image: ${mimeType}, ${sizeNote(bytes)}; this image type cannot be shown to the model]`;
      if (bytes > caps.maxImageBytes)
        return `[image: ${mimeType}, ${sizeNote(bytes)}; larger than ${sizeNote(caps.maxImageBytes)} (limits.max_tool_image_bytes), not shown to the model]`;
      images.push({ mimeType, data });
      return `[image ${images.length}: ${mimeType}, ${sizeNote(bytes)}; attached below]`;
    }
    case "audio": {
      const data = str(block.data) ?? "";
      return `[audio: ${str(block.mimeType) ?? "unknown type"}, ${sizeNote(base64Bytes(data))}; audio is not passed to the model]`;
    }
    case "resource": {
      const resource = isRecord(block.resource) ? block.resource : {};
      const uri = str(resource.uri) ?? "(no uri)";
      const mimeType = str(resource.mimeType);
      const text = str(resource.text);
      if (text !== undefined) return `[resource ${uri}${mimeType ? ` (${mimeType})` : ""}]\n${capText(text, caps.maxTextChars)}`;
      const blob = str(resource.blob) ?? "";
      return `[binary resource ${uri}: ${mimeType ?? "unknown type"}, ${sizeNote(base64Bytes(blob))}]`;
    }
    case "resource_link": {
      const uri = str(block.uri) ?? "(no uri)";
      const details = [str(block.name) && `name: ${str(block.name)}`, str(block.mimeType) && `type: ${str(block.mimeType)}`]
        .filter(Boolean)
        .join(", ");
      const description = str(block.description);
      return `[resource link ${uri}${details ? ` (${details})` : ""}]${description ? ` ${description}` : ""}`;
    }
    default:
      return typeof block.type === "string" ? `[${block.type} content: not supported]` : undefined;
  }
}

/**
 * A `tools/call` result to what the model reads. `structuredContent` is given as JSON when there
 * is no text; `isError` makes the call a failed one (the model is told "Error: …").
 */
export function mapToolResult(result: unknown, caps: ContentCaps): MappedResult {
  if (!isRecord(result)) return { ok: false, text: "the server returned a result that is not an object", images: [] };
  const images: ToolImage[] = [];
  const parts: string[] = [];
  let hasText = false;
  for (const block of Array.isArray(result.content) ? result.content : []) {
    if (!isRecord(block)) continue;
    const text = mapBlock(block, caps, images);
    if (text === undefined) continue;
    if (block.type === "text" || (block.type === "resource" && isRecord(block.resource) && "text" in block.resource)) hasText = true;
    parts.push(text);
  }
  if (!hasText && result.structuredContent !== undefined) {
    parts.push(capText(JSON.stringify(result.structuredContent, null, 2), caps.maxTextChars));
  }
  // Legacy (2024-10-07) results carry `toolResult` instead of content.
  if (parts.length === 0 && "toolResult" in result) parts.push(capText(JSON.stringify(result.toolResult), caps.maxTextChars));
  // Each part is capped above; several parts are capped together too, so they cannot add up past
  // the limit (one part keeps its own, more precise note).
  const text = parts.length > 1 ? capText(parts.join("\n"), caps.maxTextChars) : (parts[0] ?? "");
  return { ok: result.isError !== true, text, images };
}
