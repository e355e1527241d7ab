// Per-user tokens are stored hashed (the users file), with scrypt and a per-user salt, in the PHC
// string format other tools read too: `$scrypt$ln=14,r=8,p=1$<salt>$<hash>` (base64, no padding).
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

/** 2^14 × 8 × 128 B = 16 MiB and a few tens of ms per check: the tokens are long random strings, not passwords people pick. */
export const DEFAULT_PARAMS = { ln: 14, r: 8, p: 1 };
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** A hostile or mistyped users file must not make one check take gigabytes or minutes. */
const MAX_PARAMS = { ln: 20, r: 32, p: 16 };

function derive(token: string, salt: Buffer, params: { ln: number; r: number; p: number }, length: number): Promise<Buffer> {
  const options: ScryptOptions = { N: 2 ** params.ln, r: params.r, p: params.p, maxmem: 256 * 2 ** params.ln * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) => scrypt(token, salt, length, options, (error, key) => (error ? reject(error) : resolve(key))));
}

export async function hashToken(token: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(token, salt, DEFAULT_PARAMS, HASH_BYTES);
  const { ln, r, p } = DEFAULT_PARAMS;
  return `$scrypt$ln=${ln},r=${r},p=${p}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

export interface ParsedHash {
  params: { ln: number; r: number; p: number };
  salt: Buffer;
  hash: Buffer;
}

/** Parses a PHC scrypt string; an error message says what is wrong (for the users file's check at start). */
export function parseTokenHash(text: string): ParsedHash | string {
  const found = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/_-]{8,128})={0,2}\$([A-Za-z0-9+/_-]{16,256})={0,2}$/.exec(
    text,
  );
  if (!found) return 'not a scrypt hash in PHC form ("$scrypt$ln=14,r=8,p=1$<salt>$<hash>"): make one with `npm run hash-token`';
  const params = { ln: Number(found[1]), r: Number(found[2]), p: Number(found[3]) };
  if (params.ln < 10 || params.ln > MAX_PARAMS.ln || params.r < 1 || params.r > MAX_PARAMS.r || params.p < 1 || params.p > MAX_PARAMS.p) {
    return `scrypt parameters out of range (ln 10–${MAX_PARAMS.ln}, r 1–${MAX_PARAMS.r}, p 1–${MAX_PARAMS.p})`;
  }
  return { params, salt: Buffer.from(found[4] ?? "", "base64url"), hash: Buffer.from(found[5] ?? "", "base64url") };
}

export async function verifyToken(token: string, parsed: ParsedHash): Promise<boolean> {
  const derived = await derive(token, parsed.salt, parsed.params, parsed.hash.length);
  return timingSafeEqual(derived, parsed.hash);
}
