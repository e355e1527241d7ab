// robots.txt path patterns (RFC 9309: `*` matches any run of characters, a final `$` anchors the
// end, a pattern otherwise matches a prefix of the path) without a regular expression. A
// backtracking regex takes exponential time on a crafted rule ("/*a*a*a…*b") and the fetch tool
// runs on the server's main thread; this matcher is linear in the path and the pattern.
//
// Leftmost-first is exact for `*`-only globs: each literal segment is found (KMP) at its first
// place after the previous one, so every character of the path is looked at once per rule.

/** Thrown when evaluating a robots.txt would cost more than its budget of character steps. */
export class RobotsTooComplex extends Error {
  override name = "RobotsTooComplex";
}

/** Character steps left for one robots.txt verdict, shared by all of its rules. */
export interface MatchBudget {
  steps: number;
}

/** Does `pattern` (already normalised) match `path`? Spends steps from `budget`. */
export function robotsPatternMatches(pattern: string, path: string, budget: MatchBudget): boolean {
  const anchored = pattern.endsWith("$");
  const segments = (anchored ? pattern.slice(0, -1) : pattern).split("*");
  const first = segments[0] ?? "";
  spend(budget, first.length);
  if (!path.startsWith(first)) return false;
  if (segments.length === 1) return !anchored || path.length === first.length;
  let position = first.length;
  for (let index = 1; index < segments.length - 1; index++) {
    const segment = segments[index] ?? "";
    if (segment === "") continue;
    const found = find(path, segment, position, budget);
    if (found === -1) return false;
    position = found + segment.length;
  }
  const last = segments[segments.length - 1] ?? "";
  if (anchored) {
    spend(budget, last.length);
    return path.length - last.length >= position && path.endsWith(last);
  }
  return last === "" || find(path, last, position, budget) !== -1;
}

function spend(budget: MatchBudget, steps: number): void {
  budget.steps -= steps;
  if (budget.steps < 0) throw new RobotsTooComplex("robots.txt is too complex to evaluate");
}

/** Knuth–Morris–Pratt: the first index ≥ `from` where `needle` occurs in `text`, or -1. */
function find(text: string, needle: string, from: number, budget: MatchBudget): number {
  const failure = new Int32Array(needle.length);
  for (let i = 1, k = 0; i < needle.length; i++) {
    while (k > 0 && needle[i] !== needle[k]) k = failure[k - 1] ?? 0;
    if (needle[i] === needle[k]) k++;
    failure[i] = k;
  }
  spend(budget, needle.length);
  let matched = 0;
  for (let i = from; i < text.length; i++) {
    while (matched > 0 && text[i] !== needle[matched]) matched = failure[matched - 1] ?? 0;
    if (text[i] === needle[matched]) matched++;
    if (matched === needle.length) {
      spend(budget, i + 1 - from);
      return i - needle.length + 1;
    }
  }
  spend(budget, text.length - from);
  return -1;
}
