import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { discordBenchmark } from './discord.bench.js';
import { economicsBenchmark } from './economics.bench.js';
import { engineBenchmark } from './engine.bench.js';
import { ledgerBenchmark } from './ledger.bench.js';
import { reportsBenchmark } from './reports.bench.js';
import { routerBenchmark } from './router.bench.js';
import { startupBenchmark } from './startup.bench.js';
import { type Benchmark, type Figure, formatTable, isMet, machineInfo, progress } from './support.js';

/** Every benchmark, run in this order: adding one is one line here. */
const BENCHMARKS: readonly Benchmark[] = [
  ledgerBenchmark,
  reportsBenchmark,
  engineBenchmark,
  economicsBenchmark,
  discordBenchmark,
  routerBenchmark,
  startupBenchmark,
];

const RESULTS_PATH = fileURLToPath(new URL('./results.json', import.meta.url));

/** `npm run bench -- engine ledger` runs only the benchmarks named; no names runs them all. */
const chosen = process.argv.slice(2);
const selected =
  chosen.length === 0 ? BENCHMARKS : BENCHMARKS.filter((benchmark) => chosen.includes(benchmark.name));

const machine = machineInfo();
const figures: Figure[] = [];
const crashed: string[] = [];

for (const benchmark of selected) {
  progress(`== ${benchmark.name}`);
  try {
    const measured = await benchmark.run();
    figures.push(...measured.map((figure) => ({ ...figure, name: `${benchmark.name}: ${figure.name}` })));
  } catch (error) {
    // A crashed benchmark is a bug in it, not a slow result: report it, run the others, exit non-zero.
    crashed.push(benchmark.name);
    console.error(`benchmark ${benchmark.name} crashed:`, error);
  }
}

console.log(
  `\nnode ${machine.node} on ${machine.cpuModel} × ${machine.cores}, load ${machine.loadAverageAtStart.join(' ')} at start, ${machine.date}\n`,
);
console.log(formatTable(figures));

// A run of some benchmarks keeps the others' figures from the last run (each figure names its benchmark).
const ran = new Set(selected.map((benchmark) => `${benchmark.name}: `));
const kept = keptFigures().filter((figure) => ![...ran].some((prefix) => figure.name.startsWith(prefix)));
writeFileSync(
  RESULTS_PATH,
  `${JSON.stringify(
    {
      machine,
      figures: [...kept, ...figures.map((figure) => ({ ...figure, met: isMet(figure) ?? null }))],
      crashed,
    },
    null,
    2,
  )}\n`,
);
progress(`\nwrote ${RESULTS_PATH}`);

if (crashed.length > 0) process.exitCode = 1;

/** The figures of the last run, if results.json has any. */
function keptFigures(): (Figure & { met: boolean | null })[] {
  if (!existsSync(RESULTS_PATH)) return [];
  try {
    const last = JSON.parse(readFileSync(RESULTS_PATH, 'utf8')) as {
      figures?: (Figure & { met: boolean | null })[];
    };
    return last.figures ?? [];
  } catch {
    return [];
  }
}
