// The attachment settings of a config: its limits, whether the model sees images, and the
// server's own files (never attached, even from inside a workspace).
import type { Config } from "../config.ts";
import { serverOwnFiles } from "../workspace/workspaces.ts";
import { takesImages, type AttachmentSettings } from "./prepare.ts";

export function attachmentSettingsFrom(config: Config): AttachmentSettings {
  return {
    maxAttachments: config.limits.max_attachments,
    maxBytes: config.limits.max_attachment_bytes,
    maxInlineBytes: config.limits.max_inline_attachment_bytes,
    maxTokens: config.limits.max_attachment_tokens,
    workspaceBytes: config.limits.workspace_bytes,
    vision: takesImages(config.openai.default_model, config.openai.vision),
    model: config.openai.default_model,
    deny: serverOwnFiles(config),
  };
}
