import { readdirSync, readFileSync } from 'node:fs';

/*
 * The memory of a whole process tree, as `npm start` makes one (npm → sh → node, and the pre-script's node
 * while it runs): the sum of every process's resident set, read from /proc. Linux only.
 */

const BYTES_PER_KIB = 1_024;

export interface TreeProcess {
  pid: number;
  /** The command line, shortened: what the process is. */
  command: string;
  rssBytes: number;
}

/** `root` and every process descended from it, with their RSS now; gone processes are left out. */
export function processTree(root: number): TreeProcess[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = parentOf(Number(entry));
    if (parent === undefined) continue;
    children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const tree: TreeProcess[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    const rssBytes = rssOf(pid);
    if (rssBytes !== undefined) tree.push({ pid, command: commandOf(pid), rssBytes });
    pending.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** Samples the tree's total RSS on an interval, keeping the largest total and what made it up. */
export class TreeRssSampler {
  #peakBytes = 0;
  #atPeak: TreeProcess[] = [];
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly root: number,
    intervalMs: number,
  ) {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
  }

  /** Stops sampling; the largest total seen, in bytes, and the processes of that sample. */
  stop(): { peakBytes: number; atPeak: TreeProcess[] } {
    clearInterval(this.#timer);
    this.#sample();
    return { peakBytes: this.#peakBytes, atPeak: this.#atPeak };
  }

  #sample(): void {
    const tree = processTree(this.root);
    const total = tree.reduce((sum, process) => sum + process.rssBytes, 0);
    if (total > this.#peakBytes) {
      this.#peakBytes = total;
      this.#atPeak = tree;
    }
  }
}

function parentOf(pid: number): number | undefined {
  try {
    // Fields after the command name, which is in parentheses and may itself hold spaces or parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function rssOf(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * BYTES_PER_KIB : undefined;
  } catch {
    return undefined;
  }
}

function commandOf(pid: number): string {
  try {
    const words = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    // Absolute paths (the node and npm binaries) by their last part.
    return words
      .map((word) => (word.startsWith('/') ? word.slice(word.lastIndexOf('/') + 1) : word))
      .join(' ')
      .slice(0, 80);
  } catch {
    return '?';
  }
}
