// Secrets at rest (OAuth tokens, a user's server headers): AES-256-GCM with a random IV per value,
// bound to the record it belongs to (user, kind, name) so a value copied to another user's record
// does not decrypt. The key comes from the secrets file (oauth.encryption_key) or an owner-only key file.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";

const VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class VaultError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "VaultError";
  }
}

export class Vault {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new VaultError("the vault key must be 32 bytes");
    this.#key = key;
  }

  /** A key from `oauth.encryption_key` (any string, hashed to 256 bits), else from `keyFile`, made owner-only with a random key when absent. */
  static open(options: { secret?: string; keyFile: string }): Vault {
    if (options.secret) return new Vault(createHash("sha256").update(options.secret).digest());
    const file = options.keyFile;
    if (!existsSync(file)) {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, randomBytes(32).toString("base64") + "\n", { mode: 0o600, flag: "wx" });
    }
    chmodSync(file, 0o600);
    const key = Buffer.from(readFileSync(file, "utf8").trim(), "base64");
    if (key.length !== 32 || statSync(file).size === 0)
      throw new VaultError(`the OAuth key file ${file} does not hold a base64 256-bit key (oauth.key_file); delete it to make a new one`);
    return new Vault(key);
  }

  seal(plain: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64")}`;
  }

  open(sealed: string, context: string): string {
    if (!sealed.startsWith(`${VERSION}:`)) throw new VaultError("not a sealed value");
    const raw = Buffer.from(sealed.slice(VERSION.length + 1), "base64");
    if (raw.length < IV_BYTES + TAG_BYTES) throw new VaultError("a sealed value is cut short");
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
    } catch (error) {
      throw new VaultError("a sealed value does not open with this key (oauth.encryption_key or oauth.key_file changed?)", {
        cause: error,
      });
    }
  }
}
