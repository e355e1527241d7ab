// An attachment's bytes to what the model reads: images downscaled (sharp), PDFs to text with
// their page numbers (unpdf), text and code files as text. Kinds are told by content, not name.
import sharp from "sharp";
import { extractText, getDocumentProxy } from "unpdf";

/** Longest side of an image sent to the model: past it vision models scale down anyway (and bill for it). */
export const IMAGE_MAX_SIDE = 1568;
/** Longest side of the thumbnail in the message and the history. */
export const THUMBNAIL_SIDE = 256;
/** Images with more pixels than this are refused before they are decoded (a decompression bomb costs memory). */
export const MAX_INPUT_PIXELS = 50_000_000;

export type Kind = { kind: "image"; mime: "image/png" | "image/jpeg" | "image/gif" | "image/webp" } | { kind: "pdf" } | { kind: "text" };

/** Pure: what the bytes are; undefined for a type that is not taken (with the reason a person reads). */
export function sniff(bytes: Buffer): Kind | { kind: "refused"; reason: string } {
  const starts = (...values: number[]) => values.every((value, index) => bytes[index] === value);
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return { kind: "image", mime: "image/png" };
  if (starts(0xff, 0xd8, 0xff)) return { kind: "image", mime: "image/jpeg" };
  if (bytes.subarray(0, 6).toString("latin1") === "GIF87a" || bytes.subarray(0, 6).toString("latin1") === "GIF89a")
    return { kind: "image", mime: "image/gif" };
  if (bytes.subarray(0, 4).toString("latin1") === "RIFF" && bytes.subarray(8, 12).toString("latin1") === "WEBP")
    return { kind: "image", mime: "image/webp" };
  if (bytes.subarray(0, 5).toString("latin1") === "%PDF-") return { kind: "pdf" };
  if (isText(bytes)) return { kind: "text" };
  return { kind: "refused", reason: "its type is not taken: images (PNG, JPEG, GIF, WebP), PDFs and text or code files are" };
}

/** Valid UTF-8 without NUL bytes: a text or code file. */
function isText(bytes: Buffer): boolean {
  if (bytes.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export interface PreparedImage {
  mime: string;
  data: Buffer;
  width: number;
  height: number;
  originalWidth: number;
  originalHeight: number;
  /** A data: URL of at most THUMBNAIL_SIDE on its longer side. */
  thumbnail: string;
}

/** Downscaled to IMAGE_MAX_SIDE (never up); a GIF's first frame, as PNG. EXIF rotation applied. */
export async function prepareImage(bytes: Buffer, mime: string): Promise<PreparedImage> {
  const input = () => sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, pages: 1 }).rotate();
  const meta = await input().metadata();
  const originalWidth = meta.autoOrient?.width ?? meta.width ?? 0;
  const originalHeight = meta.autoOrient?.height ?? meta.height ?? 0;
  const resized = input().resize({ width: IMAGE_MAX_SIDE, height: IMAGE_MAX_SIDE, fit: "inside", withoutEnlargement: true });
  const out = mime === "image/jpeg" ? "image/jpeg" : mime === "image/webp" ? "image/webp" : "image/png";
  const encoded =
    out === "image/jpeg" ? resized.jpeg({ quality: 85 }) : out === "image/webp" ? resized.webp({ quality: 85 }) : resized.png();
  const { data, info } = await encoded.toBuffer({ resolveWithObject: true });
  const thumb = await input()
    .resize({ width: THUMBNAIL_SIDE, height: THUMBNAIL_SIDE, fit: "inside", withoutEnlargement: true })
    .webp({ quality: 70 })
    .toBuffer();
  return {
    mime: out,
    data,
    width: info.width,
    height: info.height,
    originalWidth,
    originalHeight,
    thumbnail: `data:image/webp;base64,${thumb.toString("base64")}`,
  };
}

/**
 * Pure: what an image costs as OpenAI counts a high-detail image — 85 tokens plus 170 per
 * 512-pixel tile after fitting into 2048 and scaling the shorter side to 768.
 */
export function imageTokens(width: number, height: number): number {
  if (width <= 0 || height <= 0) return 85;
  let w = width;
  let h = height;
  const fit = Math.min(1, 2048 / Math.max(w, h));
  w *= fit;
  h *= fit;
  const shorter = Math.min(1, 768 / Math.min(w, h));
  w *= shorter;
  h *= shorter;
  return 85 + 170 * Math.ceil(w / 512) * Math.ceil(h / 512);
}

/** A PDF's text page by page; pages without text (scans) say so. */
export async function pdfPages(bytes: Buffer): Promise<{ pages: number; withoutText: number; text: string }> {
  const pdf = await getDocumentProxy(new Uint8Array(bytes));
  try {
    const { totalPages, text } = await extractText(pdf, { mergePages: false });
    let withoutText = 0;
    const parts = text.map((page, index) => {
      const trimmed = page.trim();
      if (trimmed === "") {
        withoutText++;
        return `[page ${index + 1}: no text on this page (a scanned page or an image); its content was not read]`;
      }
      return `[page ${index + 1}]\n${trimmed}`;
    });
    return { pages: totalPages, withoutText, text: parts.join("\n\n") };
  } finally {
    await pdf.destroy();
  }
}
