// Comparing a presented token with an expected one without leaking anything through timing.
import { createHash, timingSafeEqual } from "node:crypto";

/** Constant-time comparison: hashing first makes the lengths equal, so nothing leaks through timing. */
export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** A digest to remember a verified token by, without keeping the token itself. */
export function tokenDigest(userId: string, token: string): string {
  return createHash("sha256").update(userId).update("\0").update(token).digest("base64url");
}
