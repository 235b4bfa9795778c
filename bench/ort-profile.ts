import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';

/** One event of ONNX Runtime's Chrome-trace profile (times in microseconds). */
interface ProfileEvent {
  readonly cat: string;
  readonly name: string;
  readonly ts: number;
  readonly dur: number;
  readonly args?: { readonly op_name?: string };
}

export interface OpTime {
  readonly op: string;
  readonly ms: number;
  readonly nodes: number;
}

export interface RunProfile {
  /** The profiled run's wall time inside ONNX Runtime. */
  readonly runMs: number;
  /** Kernel time per phase, from the scope that prefixes each node's name (GraphBuilder.scoped). */
  readonly phaseMs: Record<string, number>;
  /** Kernel time per operator type, longest first. */
  readonly ops: readonly OpTime[];
}

/**
 * Runs `model` in a session with ONNX Runtime's profiler on (the same session options as
 * src/model/runtime/session.ts): a warm-up run, then `runs` more; sums the kernel times of the
 * fastest of those by operator type and by phase (the others are what load from other work
 * on the machine disturbed most). `phaseOf` maps a node name to its phase.
 */
export async function profileRun(
  model: Uint8Array,
  feeds: Record<string, ort.Tensor>,
  phaseOf: (node: string) => string,
  runs: number,
): Promise<RunProfile> {
  const folder = await mkdtemp(join(tmpdir(), 'tunebot-profile-'));
  try {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 0,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      enableProfiling: true,
      profileFilePrefix: join(folder, 'run'),
    });
    for (let run = 0; run < runs + 1; run++) await session.run(feeds);
    session.endProfiling();
    await session.release();
    const [file] = (await readdir(folder)).filter((name) => name.endsWith('.json'));
    if (!file) throw new Error(`ONNX Runtime wrote no profile into ${folder}`);
    return summarize(JSON.parse(await readFile(join(folder, file), 'utf8')) as ProfileEvent[], phaseOf);
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

function summarize(events: readonly ProfileEvent[], phaseOf: (node: string) => string): RunProfile {
  // The first model_run is the warm-up.
  const runs = events.filter((event) => event.cat === 'Session' && event.name === 'model_run').slice(1);
  if (runs.length === 0) throw new Error('the profile holds no timed model_run event');
  const fastest = runs.reduce((best, run) => (run.dur < best.dur ? run : best));
  const byOp = new Map<string, { us: number; nodes: number }>();
  const phaseUs = new Map<string, number>();
  for (const event of events) {
    if (event.cat !== 'Node' || !event.name.endsWith('_kernel_time')) continue;
    if (event.ts < fastest.ts || event.ts > fastest.ts + fastest.dur) continue;
    const op = event.args?.op_name ?? 'unknown';
    const entry = byOp.get(op) ?? { us: 0, nodes: 0 };
    entry.us += event.dur;
    entry.nodes++;
    byOp.set(op, entry);
    const phase = phaseOf(event.name.slice(0, -'_kernel_time'.length));
    phaseUs.set(phase, (phaseUs.get(phase) ?? 0) + event.dur);
  }
  const ops = [...byOp].map(([op, { us, nodes }]) => ({ op, ms: us / 1000, nodes })).sort((a, b) => b.ms - a.ms);
  return { runMs: fastest.dur / 1000, phaseMs: Object.fromEntries([...phaseUs].map(([phase, us]) => [phase, us / 1000])), ops };
}
