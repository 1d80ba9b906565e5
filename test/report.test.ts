import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY_MS, HOUR_MS, periodWindow } from '../src/core/budget.js';
import { formatUsd } from '../src/core/money.js';
import { chartDataOf } from '../src/discord/usage-chart.js';
import { BACKENDS, temporaryDatabase } from './support/databases.js';
import { temporaryStorage } from './support/ledger.js';
import { buildProject } from './support/process.js';
import { seedUsage } from './support/usage.js';

/**
 * `npm run report` as an operator runs it: npm, its pre-script, the compiled entry point, on a database
 * seeded with known calls, with only the database's variables set (no Discord, no model keys), while the
 * bot's storage is open on the same database.
 */

const GUILD = '111111111111111111';
const OTHER_GUILD = '222222222222222222';
const MEMBERS = ['300000000000000001', '300000000000000002', '300000000000000003'];

let project: string;
let output: string;

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), 'tierbot-report-'));
  output = mkdtempSync(join(tmpdir(), 'tierbot-report-output-'));
  buildProject(project);
}, 180_000);
afterAll(() => {
  rmSync(project, { recursive: true, force: true });
  rmSync(output, { recursive: true, force: true });
});

/** Text matched as it is, inside a pattern. */
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function report(environment: Record<string, string>, ...args: string[]) {
  return spawnSync('npm', ['run', '--silent', 'report', '--', ...args], {
    cwd: project,
    encoding: 'utf8',
    // Nothing but the database's variables (and npm's own): no Discord token, no API keys.
    env: { PATH: process.env.PATH, HOME: project, npm_config_update_notifier: 'false', ...environment },
  });
}

describe.each(BACKENDS)('on %s', (backend) => {
  it('when `npm run report` runs beside the bot on a seeded database, then its totals are the SQL totals, and it writes nothing', async () => {
    const database = await temporaryDatabase(backend);
    // The bot's storage, open (its instance under a lease) while the report runs.
    const bot = await temporaryStorage(backend, {}, database);
    try {
      const nowMs = Date.now();
      const month = periodWindow('month', nowMs);
      // Calls an hour apart back from now, within the month: three members, another server, DMs, last month.
      const at = (hoursAgo: number) => Math.max(month.startMs, nowMs - hoursAgo * HOUR_MS - 60_000);
      const calls = [
        ...MEMBERS.flatMap((userId, index) => [
          {
            userId,
            guildId: GUILD,
            model: 'gpt-4o-mini',
            chargedAt: at(index + 1),
            costMicros: 100_000 * (index + 1),
          },
          {
            userId,
            guildId: GUILD,
            model: 'claude-haiku-4-5',
            purpose: 'refine',
            chargedAt: at(index + 1),
            costMicros: 7_777,
          },
        ]),
        {
          userId: MEMBERS[0]!,
          guildId: OTHER_GUILD,
          model: 'gpt-4o-mini',
          chargedAt: at(5),
          costMicros: 2_000_000,
        },
        { userId: MEMBERS[0]!, guildId: null, model: 'gpt-4o-mini', chargedAt: at(6), costMicros: 1_000 },
        {
          userId: MEMBERS[0]!,
          guildId: GUILD,
          model: 'gpt-4o-mini',
          chargedAt: month.startMs - DAY_MS,
          costMicros: 9_000_000,
        },
      ];
      await seedUsage(database, { calls, nowMs });
      const instancesBefore = await database.value('SELECT COUNT(*) FROM instances');

      const png = join(output, `${backend}.png`);
      const csv = join(output, `${backend}.csv`);
      const server = report(
        database.environment,
        '--server',
        GUILD,
        '--period',
        'month',
        '--csv',
        csv,
        '--png',
        png,
      );
      expect(server.stderr).toBe('');
      expect(server.status).toBe(0);

      const inMonth = [month.startMs, month.endMs];
      const serverSpent = Number(
        await database.value(
          'SELECT SUM(cost_micros) FROM usage_ledger WHERE guild_id = $1 AND charged_at >= $2 AND charged_at < $3',
          [GUILD, ...inMonth],
        ),
      );
      const lines = server.stdout.split('\n');
      expect(lines[0]).toBe(`Server spent ${formatUsd(serverSpent)} of no cap this month`);
      const byModel = await database.query<{ model: string; calls: number; cost: number }>(
        `SELECT model, COUNT(*) AS calls, SUM(cost_micros) AS cost FROM usage_ledger
         WHERE guild_id = $1 AND charged_at >= $2 AND charged_at < $3 GROUP BY model`,
        [GUILD, ...inMonth],
      );
      for (const row of byModel) {
        const label = row.model === 'gpt-4o-mini' ? 'GPT-4o Mini' : 'Claude Haiku';
        expect(lines.find((line) => line.trimStart().startsWith(label))).toMatch(
          new RegExp(
            `^\\s+${label}\\s+${Number(row.calls)}\\s+[\\d,]+\\s+${literal(formatUsd(Number(row.cost)))}\\s`,
          ),
        );
      }
      // The biggest spender first, against the bot's default budget (no roles outside Discord, none set).
      expect(lines.find((line) => /^\s+1\s/.test(line))).toMatch(
        new RegExp(`^\\s+1\\s+${MEMBERS[2]}\\s+\\$0\\.3078\\s+31% of \\$1\\.0000 a month \\(bot default\\)$`),
      );

      const records = parse(readFileSync(csv), { columns: true }) as { cost_usd: string }[];
      const rows = Number(
        await database.value(
          'SELECT COUNT(*) FROM usage_ledger WHERE guild_id = $1 AND charged_at >= $2 AND charged_at < $3',
          [GUILD, ...inMonth],
        ),
      );
      expect(server.stdout).toContain(`wrote ${rows} calls to ${csv}`);
      expect(records).toHaveLength(rows);
      expect(records.reduce((sum, record) => sum + Number(record.cost_usd.replace('.', '')), 0)).toBe(
        serverSpent,
      );
      expect(chartDataOf(readFileSync(png))?.totalMicros).toBe(serverSpent);

      const everything = report(database.environment, '--period', 'all');
      expect(everything.status).toBe(0);
      const allSpent = Number(await database.value('SELECT SUM(cost_micros) FROM usage_ledger'));
      expect(everything.stdout.split('\n')[0]).toBe(`Bot spent ${formatUsd(allSpent)} all time`);
      expect(everything.stdout).toMatch(
        new RegExp(`^\\s+1\\s+${GUILD}\\s+${literal(formatUsd(allSpent - 2_001_000))}\\s`, 'm'),
      );
      expect(everything.stdout).toMatch(/^\s+3\s+direct messages\s+\$0\.0010\s/m);

      // Read-only: no instance of its own, no lease, nothing swept.
      expect(await database.value('SELECT COUNT(*) FROM instances')).toBe(instancesBefore);
    } finally {
      await bot.cleanup();
      await database.cleanup();
    }
  });
});

describe('npm run report, refused', () => {
  it('when a flag is wrong or --csv comes without --server, then it says so in one line and exits 64', () => {
    const environment = { DATABASE_PATH: join(output, 'none.db') };
    const wrongPeriod = report(environment, '--period', 'year');
    expect(wrongPeriod.status).toBe(64);
    expect(wrongPeriod.stderr.split('\n')[0]).toBe(
      'npm run report: --period must be one of day, week, month, all',
    );
    const csvAlone = report(environment, '--csv', join(output, 'x.csv'));
    expect(csvAlone.status).toBe(64);
    expect(csvAlone.stderr.split('\n')[0]).toBe(
      "npm run report: --csv needs --server: it writes one server's calls",
    );
  });

  it('when the database file does not exist, then it says which and exits 1, creating nothing', () => {
    const path = join(output, 'missing.db');
    const missing = report({ DATABASE_PATH: path });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe(
      `npm run report: cannot open the database ${path} (DATABASE_PATH): unable to open database file\n`,
    );
    expect(() => readFileSync(path)).toThrow();
  });
});
