// A message's attachments to one user message of parts the model reads (text, image_url), and
// what each became, for people (AttachmentInfo). Files named by path are read from the user's
// workspace through the one path check; inline ones are written there first, so tools can
// work on them too. Every count, size and token total is capped here, before the model call.
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import type OpenAI from "openai";
import { workspaceUsage } from "../files/listing.ts";
import { formatBytes } from "../files/format.ts";
import { errorMessage, openInWorkspace, resolveInWorkspace } from "../filesystem/containment.ts";
import type { AttachmentInfo, AttachmentRef, ErrorCode } from "../protocol.ts";
import { imageTokens, pdfPages, prepareImage, sniff } from "./convert.ts";

/** The folder of the workspace inline attachments are written to. */
export const INLINE_FOLDER = "attachments";

export interface AttachmentSettings {
  /** limits.max_attachments */
  maxAttachments: number;
  /** limits.max_attachment_bytes: per file, as stored. */
  maxBytes: number;
  /** limits.max_inline_attachment_bytes: per inline file, decoded. */
  maxInlineBytes: number;
  /** limits.workspace_bytes: inline files are written to the workspace, under its quota. */
  workspaceBytes: number;
  /** limits.max_attachment_tokens: text sent per PDF or text file. */
  maxTokens: number;
  /** Whether the model takes image parts (openai.vision, else its name). */
  vision: boolean;
  model: string;
  /** The server's own files: never read, even inside a workspace. */
  deny: readonly string[];
}

export interface AttachmentContext {
  /** The user's workspace folder. */
  root: string;
  countTokens(text: string): number;
}

/** A refused attachment: the message says which file and why, naming the key that governs it. */
export class AttachmentError extends Error {
  override name = "AttachmentError";
  readonly code = "attachment_refused" satisfies ErrorCode;
}

type ContentPart = OpenAI.Chat.Completions.ChatCompletionContentPart;
/** The user message of a turn's attachments; `attachments` is ours (history), never sent to the model. */
export type AttachmentMessage = OpenAI.Chat.Completions.ChatCompletionUserMessageParam & { attachments: AttachmentInfo[] };

export interface PreparedAttachments {
  message: AttachmentMessage;
  infos: AttachmentInfo[];
  /** Workspace-relative paths of inline files written (for files_changed). */
  written: string[];
}

/** Models known to take no images; any other takes them unless openai.vision says otherwise. */
const TEXT_ONLY = /^(gpt-3\.5|o1-mini|o1-preview|o3-mini|deepseek-(chat|reasoner|coder)|text-)/;

export function takesImages(model: string, configured: boolean | undefined): boolean {
  return configured ?? !TEXT_ONLY.test(model.toLowerCase().replace(/^.*\//, ""));
}

const number = (value: number) => value.toLocaleString("en-US");

export async function prepareAttachments(
  refs: readonly AttachmentRef[],
  settings: AttachmentSettings,
  context: AttachmentContext,
): Promise<PreparedAttachments> {
  if (refs.length > settings.maxAttachments)
    throw new AttachmentError(`${refs.length} attachments: a message may have at most ${settings.maxAttachments} (limits.max_attachments)`);
  const parts: ContentPart[] = [];
  const infos: AttachmentInfo[] = [];
  const written: string[] = [];
  for (const ref of refs) {
    const file = "path" in ref ? await readWorkspaceFile(ref.path, settings, context) : await writeInline(ref, settings, context);
    if (!("path" in ref)) written.push(file.relative);
    const { info, content } = await convert(file, settings, context);
    infos.push(info);
    parts.push({ type: "text", text: `[Attachment ${infos.length}: ${info.summary}; in the workspace at ${info.path}]` }, ...content);
  }
  return { message: { role: "user", content: parts, attachments: infos }, infos, written };
}

interface AttachedFile {
  name: string;
  /** Workspace-relative. */
  relative: string;
  bytes: Buffer;
}

async function readWorkspaceFile(requested: string, settings: AttachmentSettings, context: AttachmentContext): Promise<AttachedFile> {
  const name = path.basename(requested);
  const resolved = await resolveInWorkspace(context.root, requested, { deny: settings.deny });
  if (!resolved.ok) throw new AttachmentError(`attachment ${requested}: ${resolved.error}`);
  let handle: fs.FileHandle | undefined;
  try {
    handle = await openInWorkspace(resolved.root, resolved.path, constants.O_RDONLY, { deny: settings.deny });
    const stat = await handle.stat();
    if (!stat.isFile()) throw new AttachmentError(`attachment ${requested}: not a file`);
    if (stat.size > settings.maxBytes) throw tooLarge(name, stat.size, settings.maxBytes, "limits.max_attachment_bytes");
    const bytes = await handle.readFile();
    return { name, relative: path.relative(resolved.root, resolved.path), bytes };
  } catch (error) {
    if (error instanceof AttachmentError) throw error;
    throw new AttachmentError(`attachment ${requested}: ${errorMessage(error)}`, { cause: error });
  } finally {
    await handle?.close();
  }
}

function tooLarge(name: string, bytes: number, max: number, key: string): AttachmentError {
  return new AttachmentError(`attachment ${name} is ${formatBytes(bytes)}: the limit is ${formatBytes(max)} (${key})`);
}

/** A file name that is safe in any folder: its last component, plain characters, 100 at most. */
export function safeName(name: string): string {
  const base = path
    .basename(name.replace(/\\/g, "/"))
    .replace(/[^\w.\- ]+/g, "_")
    .replace(/^\.+/, "")
    .slice(-100);
  return base === "" ? "attachment" : base;
}

async function writeInline(
  ref: { name: string; data: string },
  settings: AttachmentSettings,
  context: AttachmentContext,
): Promise<AttachedFile> {
  const name = safeName(ref.name);
  // Base64 is 4 characters per 3 bytes: a longer text is refused before it is decoded.
  if (ref.data.length > Math.ceil(settings.maxInlineBytes / 3) * 4 + 4)
    throw tooLarge(
      name,
      Math.floor((ref.data.length * 3) / 4),
      settings.maxInlineBytes,
      "limits.max_inline_attachment_bytes; upload larger files first, then send their path",
    );
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(ref.data.replace(/\s+/g, ""))) throw new AttachmentError(`attachment ${name}: "data" is not base64`);
  const bytes = Buffer.from(ref.data, "base64");
  if (bytes.length > settings.maxInlineBytes)
    throw tooLarge(name, bytes.length, settings.maxInlineBytes, "limits.max_inline_attachment_bytes");
  const folder = await resolveInWorkspace(context.root, INLINE_FOLDER, { allowMissing: true, deny: settings.deny });
  if (!folder.ok) throw new AttachmentError(`attachment ${name}: ${folder.error}`);
  const used = await workspaceUsage(folder.root);
  if (used + bytes.length > settings.workspaceBytes)
    throw new AttachmentError(
      `attachment ${name} was not saved: the workspace may hold ${formatBytes(settings.workspaceBytes)} (limits.workspace_bytes) and ${formatBytes(used)} are used. Delete files to make room`,
    );
  await fs.mkdir(folder.path, { recursive: true, mode: 0o700 });
  const dot = name.lastIndexOf(".");
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ""];
  for (let n = 1; n <= 100; n++) {
    const candidate = path.join(folder.path, n === 1 ? name : `${stem} (${n})${ext}`);
    let handle: fs.FileHandle | undefined;
    try {
      handle = await openInWorkspace(folder.root, candidate, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, {
        mode: 0o600,
        deny: settings.deny,
      });
      await handle.writeFile(bytes);
      return { name: path.basename(candidate), relative: path.relative(folder.root, candidate), bytes };
    } catch (error) {
      if (error instanceof Error && "code" in error && error.code === "EEXIST") continue;
      throw new AttachmentError(`attachment ${name} could not be saved in the workspace: ${errorMessage(error)}`, { cause: error });
    } finally {
      await handle?.close();
    }
  }
  throw new AttachmentError(`attachment ${name}: ${INLINE_FOLDER}/ already holds 100 files of that name`);
}

/** Text cut to `maxTokens`, with a note, and its token count. */
function capTokens(text: string, settings: AttachmentSettings, context: AttachmentContext): { text: string; tokens: number; cut: boolean } {
  const tokens = context.countTokens(text);
  if (tokens <= settings.maxTokens) return { text, tokens, cut: false };
  const kept = text.slice(0, Math.floor((text.length * settings.maxTokens) / tokens));
  return {
    text: `${kept}\n[… cut: only the first ${number(settings.maxTokens)} of ${number(tokens)} tokens were sent (limits.max_attachment_tokens)]`,
    tokens: settings.maxTokens,
    cut: true,
  };
}

async function convert(
  file: AttachedFile,
  settings: AttachmentSettings,
  context: AttachmentContext,
): Promise<{ info: AttachmentInfo; content: ContentPart[] }> {
  const kind = sniff(file.bytes);
  const base = { name: file.name, path: file.relative, bytes: file.bytes.length };
  if (kind.kind === "refused") throw new AttachmentError(`attachment ${file.name}: ${kind.reason}`);
  if (kind.kind === "image") {
    if (!settings.vision)
      throw new AttachmentError(
        `attachment ${file.name} is an image and the model "${settings.model}" does not take images (openai.vision): it was not sent. ` +
          "Use a model that sees images, or set openai.vision: true if this one does",
      );
    let image;
    try {
      image = await prepareImage(file.bytes, kind.mime);
    } catch (error) {
      throw new AttachmentError(`attachment ${file.name}: the image could not be read (${errorMessage(error)})`, { cause: error });
    }
    const tokens = imageTokens(image.width, image.height);
    const scaled = image.width !== image.originalWidth ? ` (from ${image.originalWidth}×${image.originalHeight})` : "";
    return {
      info: {
        ...base,
        kind: "image",
        summary: `${file.name} — image ${image.width}×${image.height}${scaled}, about ${number(tokens)} tokens`,
        tokens,
        width: image.width,
        height: image.height,
        original_width: image.originalWidth,
        original_height: image.originalHeight,
        thumbnail: image.thumbnail,
      },
      content: [{ type: "image_url", image_url: { url: `data:${image.mime};base64,${image.data.toString("base64")}` } }],
    };
  }
  if (kind.kind === "pdf") {
    let pdf;
    try {
      pdf = await pdfPages(file.bytes);
    } catch (error) {
      throw new AttachmentError(`attachment ${file.name}: the PDF could not be read (${errorMessage(error)})`, { cause: error });
    }
    const capped = capTokens(pdf.text, settings, context);
    const blank = pdf.withoutText > 0 ? ` (${pdf.withoutText} without text)` : "";
    return {
      info: {
        ...base,
        kind: "pdf",
        summary: `${file.name} — ${pdf.pages} page${pdf.pages === 1 ? "" : "s"}${blank}, ${number(capped.tokens)} tokens${capped.cut ? " (cut)" : ""}`,
        tokens: capped.tokens,
        pages: pdf.pages,
        pages_without_text: pdf.withoutText,
        ...(capped.cut ? { cut: true } : {}),
      },
      content: [{ type: "text", text: capped.text }],
    };
  }
  const capped = capTokens(file.bytes.toString("utf8"), settings, context);
  return {
    info: {
      ...base,
      kind: "text",
      summary: `${file.name} — ${number(capped.tokens)} tokens${capped.cut ? " (cut)" : ""}`,
      tokens: capped.tokens,
      ...(capped.cut ? { cut: true } : {}),
    },
    content: [{ type: "text", text: capped.text }],
  };
}
