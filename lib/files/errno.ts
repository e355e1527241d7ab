// A file system error as the files API answers it: the status its errno means (a missing file is
// 404, a full disk 507…), worded with the path as the client named it, never the server's
// absolute path (which an fs error message carries). Pure.
import { errorCode } from "../filesystem/containment.ts";
import type { ErrorCode } from "../protocol.ts";

export interface FileErrorAnswer {
  status: number;
  error: string;
  code: ErrorCode;
}

const ERRNO: Record<string, { status: number; code: ErrorCode; says: (where: string) => string }> = {
  ENOENT: { status: 404, code: "not_found", says: (where) => `no such file or folder: ${where}` },
  ENOTDIR: { status: 409, code: "conflict", says: (where) => `a file is in the way: part of ${where} is a file, not a folder` },
  EISDIR: { status: 409, code: "conflict", says: (where) => `${where} is a folder: name a file inside it` },
  EEXIST: { status: 409, code: "conflict", says: (where) => `${where} already exists` },
  ENOTEMPTY: { status: 409, code: "conflict", says: (where) => `the folder ${where} is not empty: delete what is in it first` },
  EACCES: { status: 403, code: "forbidden", says: (where) => `access denied: ${where} cannot be read or written by the server` },
  EPERM: { status: 403, code: "forbidden", says: (where) => `access denied: ${where} cannot be changed` },
  EROFS: { status: 403, code: "forbidden", says: (where) => `${where} is on a read-only file system` },
  ELOOP: { status: 403, code: "forbidden", says: (where) => `access denied: ${where} leads through too many symlinks` },
  ENAMETOOLONG: { status: 400, code: "invalid_request", says: (where) => `the name is too long: ${where.slice(0, 200)}` },
  ENOSPC: { status: 507, code: "disk_full", says: (where) => `the server's disk is full: ${where} could not be written` },
  EDQUOT: { status: 507, code: "disk_full", says: (where) => `the server's disk quota is full: ${where} could not be written` },
  EFBIG: { status: 413, code: "file_too_large", says: (where) => `${where} is too large for the server's file system` },
  EMFILE: { status: 503, code: "server_busy", says: () => "the server has too many files open; try again shortly" },
  ENFILE: { status: 503, code: "server_busy", says: () => "the server has too many files open; try again shortly" },
  EBUSY: { status: 409, code: "conflict", says: (where) => `${where} is busy; try again` },
};

/** Undefined when `error` is not a file system error with a known errno (then it is a 500). */
export function fileErrorAnswer(error: unknown, clientPath: string): FileErrorAnswer | undefined {
  // The containment check reports its failures as text that starts with the errno ("ENOENT: …").
  const code = typeof error === "string" ? /^(E[A-Z]+)\b/.exec(error)?.[1] : errorCode(error);
  const known = code === undefined ? undefined : ERRNO[code];
  if (!known) return undefined;
  const where = clientPath === "" ? "the workspace" : clientPath;
  return { status: known.status, code: known.code, error: known.says(where) };
}
