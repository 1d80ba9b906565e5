import { cpus, loadavg, platform, release, totalmem } from 'node:os';

/** A bound a figure is judged against. Missing one is reported, never fatal: benchmarks print figures. */
export type Target = { atMost: number } | { atLeast: number } | { equals: boolean };

/** One measured number (or yes/no fact) with its unit and, where the issue set one, its target. */
export interface Figure {
  name: string;
  value: number | boolean;
  /** 'µs', 'ms', 's', 'ops/s', 'MB', 'rows', '%', or '' for a fact. */
  unit: string;
  target?: Target;
}

/** A benchmark module: `run` sets up everything it measures and removes it again before it returns. */
export interface Benchmark {
  name: string;
  run(): Promise<Figure[]>;
}

export interface MachineInfo {
  node: string;
  cpuModel: string;
  cores: number;
  platform: string;
  totalMemoryMb: number;
  /** The 1, 5 and 15 minute load averages when the run started: a busy machine skews every figure. */
  loadAverageAtStart: number[];
  date: string;
}

export function machineInfo(): MachineInfo {
  const processors = cpus();
  return {
    node: process.version,
    cpuModel: processors[0]?.model.trim() ?? 'unknown',
    cores: processors.length,
    platform: `${platform()} ${release()}`,
    totalMemoryMb: Math.round(totalmem() / 2 ** 20),
    loadAverageAtStart: loadavg().map((load) => Math.round(load * 100) / 100),
    date: new Date().toISOString(),
  };
}

/** Progress for the person watching; stderr, so stdout stays the figures. */
export function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

export function nowNs(): bigint {
  return process.hrtime.bigint();
}

export function elapsedNs(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs);
}

/** Runs `work` once and returns how long it took in nanoseconds, and its result. */
export function timed<T>(work: () => T): { ns: number; result: T } {
  const start = nowNs();
  const result = work();
  return { ns: elapsedNs(start), result };
}

/** The nearest-rank percentile (p in 0–100) of samples, which it sorts in place. */
export function percentile(samples: Float64Array, p: number): number {
  if (samples.length === 0) throw new RangeError('percentile of no samples');
  samples.sort();
  const rank = Math.min(samples.length, Math.max(1, Math.ceil((p / 100) * samples.length)));
  return samples[rank - 1] ?? Number.NaN;
}

export const NS_PER_US = 1_000;
export const NS_PER_MS = 1_000_000;

export function isMet(figure: Figure): boolean | undefined {
  const { target, value } = figure;
  if (!target) return undefined;
  if ('equals' in target) return value === target.equals;
  if (typeof value !== 'number') return false;
  return 'atMost' in target ? value <= target.atMost : value >= target.atLeast;
}

export function formatValue(value: number | boolean, unit: string): string {
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  const digits = Math.abs(value) >= 100 || Number.isInteger(value) ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  const text = value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  return unit === '' ? text : `${text} ${unit}`;
}

export function formatTarget(figure: Figure): string {
  const { target, unit } = figure;
  if (!target) return '';
  if ('equals' in target) return formatValue(target.equals, unit);
  return 'atMost' in target
    ? `≤ ${formatValue(target.atMost, unit)}`
    : `≥ ${formatValue(target.atLeast, unit)}`;
}

/** The figures as a plain-text table: figure / target / measured, a missed target marked beside its value. */
export function formatTable(figures: readonly Figure[]): string {
  const rows = figures.map((figure) => {
    const met = isMet(figure);
    const measured = formatValue(figure.value, figure.unit);
    return [figure.name, formatTarget(figure), met === false ? `${measured}  ← missed` : measured];
  });
  return formatColumns(['figure', 'target', 'measured'], rows);
}

/** Rows of text as left-aligned columns under a header and a rule, for the tables benchmarks print. */
export function formatColumns(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

/** A small seeded generator (mulberry32), so every run seeds the same data. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** `array[index]`, for code that knows the index is in range (noUncheckedIndexedAccess cannot). */
export function item<T>(array: ArrayLike<T>, index: number): T {
  const value = array[index];
  if (value === undefined) throw new RangeError(`index ${index} is outside 0–${array.length - 1}`);
  return value;
}
