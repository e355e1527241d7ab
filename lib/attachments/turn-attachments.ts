// A turn's attachments as the model's user message: read from the user's workspace (inline ones
// written there first), their summaries to every tab of the turn, files_changed for what was written.
import type { ChatMessage } from "../agent/types.ts";
import type { TokenCounter } from "../model/tokens.ts";
import { attachmentsFrame, filesChangedFrame, type AttachmentRef } from "../protocol.ts";
import type { UserSockets } from "../session/fanout.ts";
import type { Workspaces } from "../workspace/workspaces.ts";
import { AttachmentError, prepareAttachments, type AttachmentSettings } from "./prepare.ts";

export interface TurnAttachmentsContext {
  /** undefined: this server takes no attachments. */
  settings: AttachmentSettings | undefined;
  workspaces: Workspaces;
  userId: string;
  sockets: UserSockets;
  turnId: string;
  tokens: TokenCounter;
}

export async function turnAttachments(refs: AttachmentRef[], context: TurnAttachmentsContext): Promise<ChatMessage> {
  const { settings, workspaces, userId, sockets, turnId, tokens } = context;
  if (!settings) throw new AttachmentError("this server takes no attachments");
  const root = workspaces.ensure(userId);
  const prepared = await prepareAttachments(refs, settings, { root, countTokens: (text) => tokens.text(text) });
  sockets.turnFrame(attachmentsFrame(turnId, prepared.infos));
  if (prepared.written.length > 0) sockets.broadcast(filesChangedFrame(userId, "upload", prepared.written));
  return prepared.message;
}
