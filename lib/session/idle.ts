// The idle sweep's decision: pure, tested without a server.

/** Pure: which sessions the sweep ends at `now`. */
export function idleSessionIds(
  sessions: Iterable<{ userId: string; openSockets: number; busy: boolean; lastActivity: number }>,
  now: number,
  idleMs: number,
): string[] {
  const idle: string[] = [];
  for (const session of sessions) {
    if (session.openSockets === 0 && !session.busy && now - session.lastActivity > idleMs) idle.push(session.userId);
  }
  return idle;
}
