import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { type LedgerConfig, loadLedgerConfig, loadOrExit } from './config.js';
import { formatUsd } from './core/money.js';
import { modelLabel } from './core/models.js';
import { totalTokens } from './core/pricing.js';
import {
  answersText,
  botView,
  budgetShareText,
  type BotView,
  leftLine,
  periodPhrase,
  savingsText,
  serverView,
  type ServerView,
  shareOfTotal,
  spentLine,
  USAGE_PERIODS,
  usageWindow,
  viewForecastLine,
  type ViewFigures,
} from './core/reports.js';
import type { UsagePeriod } from './core/usage.js';
import { EXIT_CODES } from './exit-codes.js';

/**
 * `npm run report`: the operator's view from the command line, against the configured database
 * (DATABASE_URL or DATABASE_PATH), beside a running bot. The same figures as `/usage bot` (or, with
 * --server, `/usage server`) as tables in the terminal; --csv writes a server's calls as /usage export
 * does, --png the cumulative chart. It reads the database only: it opens it read-only, applies no
 * migration, registers no lease and sweeps no reservation, and needs neither Discord's settings nor the
 * model keys.
 */

const USAGE =
  'usage: npm run report -- [--period day|week|month|all] [--server ID] [--csv FILE] [--png FILE] [--help]';
const HELP = `${USAGE}

The operator's view of what tierbot spent, read from the database the bot uses (DATABASE_URL, else
DATABASE_PATH; environment or .env), safe to run while the bot runs: it writes nothing.

  --period P    day, week, month or all (default: a server's cap period, else BUDGET_PERIOD)
  --server ID   one server's view (its cap, forecast and top members) instead of every server's
  --csv FILE    with --server: that server's model calls in the period, as CSV, into FILE
  --png FILE    the cumulative spend chart, as PNG, into FILE
  -h, --help    show this help
`;

type Arguments =
  | { help: true }
  | {
      help: false;
      period: UsagePeriod | undefined;
      serverId: string | undefined;
      csvPath: string | undefined;
      pngPath: string | undefined;
    }
  | { problem: string };

const OPTIONS = {
  period: { type: 'string' },
  server: { type: 'string' },
  csv: { type: 'string' },
  png: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The command line, strictly: anything unknown or malformed is a usage error, told in one line. */
function parseReportArguments(args: readonly string[]): Arguments {
  const { values, tokens } = parseArgs({
    args: [...args],
    options: OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind === 'positional') return { problem: `unexpected argument "${token.value}"` };
    if (token.kind !== 'option') continue;
    if (!(token.name in OPTIONS)) return { problem: `unknown option ${token.rawName}` };
    if (token.name !== 'help' && (token.value === undefined || token.value.startsWith('-'))) {
      return { problem: `${token.rawName} needs a value` };
    }
  }
  if (values.help === true) return { help: true };
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  const period = text(values.period);
  if (period !== undefined && !(USAGE_PERIODS as readonly string[]).includes(period)) {
    return { problem: `--period must be one of ${USAGE_PERIODS.join(', ')}` };
  }
  const serverId = text(values.server);
  if (serverId !== undefined && !/^\d{17,20}$/.test(serverId)) {
    return { problem: '--server needs a server id (17 to 20 digits)' };
  }
  const csvPath = text(values.csv);
  if (csvPath !== undefined && serverId === undefined) {
    return { problem: "--csv needs --server: it writes one server's calls" };
  }
  return {
    help: false,
    period: period as UsagePeriod | undefined,
    serverId,
    csvPath,
    pngPath: text(values.png),
  };
}

async function main(): Promise<void> {
  const parsed = parseReportArguments(process.argv.slice(2));
  if ('problem' in parsed) {
    process.stderr.write(`npm run report: ${parsed.problem}\n${USAGE}\n`);
    process.exit(EXIT_CODES.usage);
  }
  if (parsed.help) {
    process.stdout.write(HELP);
    return;
  }
  const config = loadOrExit(() => loadLedgerConfig());
  const { openReportDatabase } = await import('./db/reader.js');
  let database: Awaited<ReturnType<typeof openReportDatabase>>;
  try {
    database = await openReportDatabase(config);
  } catch (error) {
    fail(`cannot open the database ${where(config)}: ${(error as Error).message}`);
  }
  try {
    const input = {
      period: parsed.period,
      defaultPeriod: config.defaultUserBudget.period,
      nowMs: Date.now(),
      smartModel: config.smartModel,
    };
    const view = parsed.serverId
      ? await serverView(database, {
          ...input,
          guildId: parsed.serverId,
          // Nobody asks: the cap is read with a member of no one's id. Roles are known only in Discord.
          askerId: '',
          rolesOf: () => undefined,
        })
      : await botView(database, input);
    process.stdout.write(`${isServerView(view) ? serverTable(view, config) : botTable(view, config)}\n`);
    if (parsed.pngPath) {
      const { renderSpendChart } = await import('./discord/usage-chart.js');
      const title = `${parsed.serverId ? `Server ${parsed.serverId}` : 'Every server'}: spend ${periodPhrase(view.period)} (UTC)`;
      await writeFile(
        parsed.pngPath,
        await renderSpendChart({
          title,
          data: view.chart,
          fastLabel: modelLabel(config.fastModel),
          smartLabel: modelLabel(config.smartModel),
        }),
      );
      process.stdout.write(`wrote the chart to ${parsed.pngPath}\n`);
    }
    if (parsed.csvPath && parsed.serverId) {
      const { writeCsv } = await import('./usage-csv.js');
      const window = usageWindow(view.period, input.nowMs);
      const calls = database.usage.calls({ guildId: parsed.serverId, window });
      const rows = await writeCsv(calls, createWriteStream(parsed.csvPath));
      process.stdout.write(`wrote ${rows.toLocaleString('en-US')} calls to ${parsed.csvPath}\n`);
    }
  } catch (error) {
    fail(`cannot read the report from ${where(config)}: ${(error as Error).message}`);
  } finally {
    await database.close();
  }
}

function isServerView(view: ServerView | BotView): view is ServerView {
  return 'doesCapApply' in view;
}

function where(config: LedgerConfig): string {
  // The URL holds a password: never printed.
  return config.databaseUrl ? '(DATABASE_URL)' : `${config.databasePath} (DATABASE_PATH)`;
}

function fail(message: string): never {
  process.stderr.write(`npm run report: ${message}\n`);
  process.exit(1);
}

/** A server's view as text: the lines of /usage server, with the members and models as tables. */
function serverTable(view: ServerView, config: LedgerConfig): string {
  const lines = [
    spentLine('Server spent', view.spentMicros, view.period, { noun: 'cap', standing: view.cap }),
  ];
  if (view.cap) lines.push(leftLine(view.cap));
  lines.push(...viewForecastLine(view, 'the cap'), '');
  if (view.top.length > 0) {
    lines.push(`Top members (${periodPhrase(view.period)}; each against their own budget)`);
    lines.push(
      columns(
        ['#', 'member', 'spent', 'share of their budget'],
        view.top.map((member, index) => [
          String(index + 1),
          member.userId,
          formatUsd(member.spentMicros),
          (member.budget ? budgetShareText(member.budget, (roleId) => roleId) : '') +
            (member.isBudgetCertain ? '' : ' · roles are known only in Discord'),
        ]),
        [true, false, true, false],
      ),
      '',
    );
  }
  return [...lines, ...figureTables(view, config)].join('\n');
}

/** Every server's view as text: the lines of /usage bot, with the servers and models as tables. */
function botTable(view: BotView, config: LedgerConfig): string {
  const lines = [spentLine('Bot spent', view.spentMicros, view.period)];
  lines.push(...viewForecastLine(view, 'the cap'), '');
  if (view.top.length > 0) {
    lines.push(`Top servers (${periodPhrase(view.period)})`);
    lines.push(
      columns(
        ['#', 'server', 'spent', 'share'],
        view.top.map((server, index) => [
          String(index + 1),
          server.id ?? 'direct messages',
          formatUsd(server.spentMicros),
          shareOfTotal(server.spentMicros, view.spentMicros),
        ]),
        [true, false, true, false],
      ),
      '',
    );
  }
  return [...lines, ...figureTables(view, config)].join('\n');
}

function figureTables(view: ViewFigures, config: LedgerConfig): string[] {
  if (view.byModel.length === 0) return ['No model calls in this period.'];
  const smartLabel = modelLabel(config.smartModel);
  return [
    'By model',
    columns(
      ['model', 'calls', 'tokens', 'cost', `same tokens on ${smartLabel}`],
      view.byModel.map((row) => [
        modelLabel(row.model),
        row.calls.toLocaleString('en-US'),
        totalTokens(row).toLocaleString('en-US'),
        formatUsd(row.costMicros),
        formatUsd(row.smartCostMicros),
      ]),
      [false, true, true, true, true],
    ),
    '',
    `Answers: ${answersText(view.answers, smartLabel)}`,
    `Saved ${savingsText(view.answers, smartLabel)}`,
  ];
}

/** Rows under a header, each column as wide as its widest cell; numbers right-aligned. */
function columns(header: readonly string[], rows: readonly string[][], isNumber: readonly boolean[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) =>
        isNumber[column] ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0),
      )
      .join('  ')
      .trimEnd();
  return ['  ' + line(header), ...rows.map((row) => '  ' + line(row))].join('\n');
}

await main();
