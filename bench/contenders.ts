// Servers measured side by side: started together, taking turns in blocks (so drift in the
// machine hits them alike), with the CPU each block cost counted per turn.
import { tempDir } from "./cleanup.ts";
import { CpuMeter } from "../tests/helpers/proc.ts";
import { startTarget, writeConfig, type Target } from "./targets.ts";

export interface CpuAccount {
  /** CPU ms of the server process, its MCP children, and the bench process (model server and clients). */
  server: number;
  children: number;
  bench: number;
  /** CPU ms of everything else on the machine meanwhile, and the machine's capacity (ms × CPUs). */
  other: number;
  capacity: number;
  turns: number;
}

export interface Contender<Name extends string> {
  name: Name;
  target: Target;
  /** By what was measured, e.g. `concurrent.50ms`. */
  cpu: Map<string, CpuAccount>;
  /** Turn durations, by the same keys. */
  samples: Map<string, number[]>;
  /** Removes its temp folder (config, log, database, workspaces). */
  removeDir: () => Promise<void>;
}

export interface ContenderSpec<Name extends string> {
  name: Name;
  kind: "ours" | "baseline";
  label: string;
  config: Record<string, unknown>;
}

/** Starts every contender at once (each takes seconds to load); all or none. */
export async function startContenders<Name extends string>(
  prefix: string,
  specs: readonly ContenderSpec<Name>[],
): Promise<Contender<Name>[]> {
  const outcomes = await Promise.allSettled(
    specs.map(async (spec): Promise<Contender<Name>> => {
      const { dir, remove } = tempDir(`${prefix}-${spec.name}`);
      try {
        const target = await startTarget(spec.kind, spec.label, writeConfig(dir, spec.config));
        return { name: spec.name, target, cpu: new Map(), samples: new Map(), removeDir: remove };
      } catch (error) {
        await remove();
        throw error;
      }
    }),
  );
  const started = outcomes.flatMap((outcome) => (outcome.status === "fulfilled" ? [outcome.value] : []));
  const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
  if (failed) {
    await stopContenders(started);
    throw failed.reason;
  }
  return started;
}

/** Stops every contender; returns how many processes they had left behind (killed). */
export async function stopContenders(contenders: readonly Contender<string>[]): Promise<number> {
  const left = await Promise.all(contenders.map((contender) => contender.target.stop()));
  for (const contender of contenders) await contender.removeDir();
  return left.reduce((sum, count) => sum + count, 0);
}

/** Runs `work` (returning turn durations), keeps the durations and the CPU it took under `key`. */
export async function measure(contender: Contender<string>, key: string, work: () => Promise<number[]>): Promise<number[]> {
  const meter = new CpuMeter(contender.target.pid);
  const durations = await work();
  const used = meter.used();
  const account = contender.cpu.get(key) ?? { server: 0, children: 0, bench: 0, other: 0, capacity: 0, turns: 0 };
  account.server += used.server;
  account.children += used.children;
  account.bench += used.bench;
  account.other += used.other;
  account.capacity += used.capacity;
  account.turns += durations.length;
  contender.cpu.set(key, account);
  const samples = contender.samples.get(key) ?? [];
  samples.push(...durations);
  contender.samples.set(key, samples);
  return durations;
}

/** The list rotated by `by`: who goes first changes from block to block. */
export function rotate<T>(list: readonly T[], by: number): T[] {
  const at = by % list.length;
  return [...list.slice(at), ...list.slice(0, at)];
}

export const round2 = (value: number) => Math.round(value * 100) / 100;

export interface CpuPerTurn {
  server: number;
  children: number;
  bench: number;
  /** Share of the machine's CPU that other programs used while this was measured: noise. */
  other_work_percent: number;
}

/** CPU ms per turn of each contender, by key. */
export function cpuPerTurn(contenders: readonly Contender<string>[]): Record<string, Record<string, CpuPerTurn>> {
  return Object.fromEntries(
    contenders.map((contender) => [
      contender.name,
      Object.fromEntries(
        [...contender.cpu].map(([key, account]): [string, CpuPerTurn] => {
          const per = (ms: number) => round2(ms / Math.max(1, account.turns));
          return [
            key,
            {
              server: per(account.server),
              children: per(account.children),
              bench: per(account.bench),
              other_work_percent: Math.round((100 * account.other) / Math.max(1, account.capacity)),
            },
          ];
        }),
      ),
    ]),
  );
}

export function byName<Name extends string>(contenders: readonly Contender<Name>[], name: Name): Contender<Name> {
  const found = contenders.find((contender) => contender.name === name);
  if (!found) throw new Error(`no contender ${name}`);
  return found;
}
