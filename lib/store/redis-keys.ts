// The names of everything this server keeps in Redis: the store's sessions and history, and the
// cluster's leases, fences, presence and channels. One list, so the two never disagree.
export const KEY_PREFIX = "mcpws:";

export const keys = {
  session: (userId: string) => `${KEY_PREFIX}session:${userId}`,
  entries: (sessionId: string) => `${KEY_PREFIX}entries:${sessionId}`,
  statuses: (sessionId: string) => `${KEY_PREFIX}status:${sessionId}`,
  /** A user's usage totals (a hash of TokenUsage fields), all time. */
  usage: (userId: string) => `${KEY_PREFIX}usage:${userId}`,
  /** A user's newest model calls (JSON), capped. */
  usageCalls: (userId: string) => `${KEY_PREFIX}usage_calls:${userId}`,
  /** Tokens a user used on one UTC day (the quota's counter); expires after the day is over. */
  usageDay: (userId: string, day: string) => `${KEY_PREFIX}tokens:${userId}:${day}`,
  /** Every stored session by last activity, for the retention purge. */
  index: () => `${KEY_PREFIX}sessions`,
  /** A user's own records of one kind (a hash: name → value). */
  userData: (userId: string, kind: string) => `${KEY_PREFIX}userdata:${userId}:${kind}`,
  /** The kinds of a user's records (a set), so all of them can be deleted with the user. */
  userDataKinds: (userId: string) => `${KEY_PREFIX}userdata_kinds:${userId}`,
  /** A short lock every instance honours (one OAuth refresh in flight per user and server). */
  lock: (name: string) => `${KEY_PREFIX}lock:${name}`,
  lease: (userId: string) => `${KEY_PREFIX}lease:${userId}`,
  fence: (userId: string) => `${KEY_PREFIX}fence:${userId}`,
  /** Users with a live session on some instance, scored by when that claim expires. */
  presence: () => `${KEY_PREFIX}live`,
  /** The pub/sub channel of one user's frames, cancels and approval answers. */
  channel: (userId: string) => `${KEY_PREFIX}user:${userId}`,
};
