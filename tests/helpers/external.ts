// External programs some tests need (chromium, redis-server, nginx): find them, or skip the
// tests that need them — unless REQUIRE_EXTERNAL=1, where a missing program is a failure.
import { accessSync, constants } from "node:fs";
import path from "node:path";

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The program's path: `process.env[envVar]` when set (and only it, so a wrong setting is not
 * hidden by a fallback), else the first candidate that is executable. A candidate without a
 * slash is looked up on PATH.
 */
export function findExecutable(envVar: string, candidates: string[]): string | undefined {
  const fromEnv = process.env[envVar];
  if (fromEnv) return isExecutable(fromEnv) ? fromEnv : undefined;
  for (const candidate of candidates) {
    if (candidate.includes("/")) {
      if (isExecutable(candidate)) return candidate;
      continue;
    }
    for (const dir of (process.env.PATH ?? "").split(path.delimiter).filter(Boolean)) {
      const full = path.join(dir, candidate);
      if (isExecutable(full)) return full;
    }
  }
  return undefined;
}

/**
 * The `skip` option for tests that need the program: false when it was found, else the reason.
 * With REQUIRE_EXTERNAL=1 a missing program throws instead, so the test file fails.
 */
export function externalSkip(name: string, found: string | undefined, aptPackage: string): string | false {
  if (found) return false;
  const reason = `${name} not found: apt-get install -y ${aptPackage}`;
  if (process.env.REQUIRE_EXTERNAL === "1") throw new Error(`${reason} (REQUIRE_EXTERNAL=1 makes this a failure)`);
  return reason;
}
