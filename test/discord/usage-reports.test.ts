import { MessageFlags, PermissionFlagsBits } from 'discord.js';
import { parse } from 'csv-parse/sync';
import { afterEach, describe, expect, it } from 'vitest';
import { DAY_MS, formatResetTime, HOUR_MS, periodWindow } from '../../src/core/budget.js';
import { formatUsd } from '../../src/core/money.js';
import { registerCommands } from '../../src/discord/commands/register.js';
import { chartDataOf } from '../../src/discord/usage-chart.js';
import { CSV_COLUMNS } from '../../src/usage-csv.js';
import type { InteractionRecord } from '../fakes/discord/index.js';
import { type BotHarness, startBotHarness, until } from '../support/bot.js';
import { BACKENDS } from '../support/databases.js';
import { type SeedCall, type SeedTurn, seedUsage } from '../support/usage.js';

/**
 * /usage server, /usage export and /usage bot through the loopback Discord, on known ledger rows written
 * into each database, with the views' clock set by the test. The times are in the current month: the
 * budgets' running totals follow the ledger's own clock, which a test cannot move.
 */

const EDIT_ORIGINAL = 'PATCH /webhooks/:application_id/:interaction_token/messages/:message_id';
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const MONTH = periodWindow('month', Date.now());
const DAYS_IN_MONTH = (MONTH.endMs - MONTH.startMs) / DAY_MS;
/** "Dec 31" (UTC). */
const dayOf = (ms: number) =>
  new Date(ms).toLocaleString('en-US', { month: 'short', day: 'numeric', timeZone: 'UTC' });
const FAST = 'gpt-4o-mini';
const SMART = 'claude-haiku-4-5';
const OTHER_GUILD = '999999999999999999';

let harness: BotHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

/** A bot whose /usage views read `clock`, with an operator (BOT_OPERATOR_IDS) who is a plain member. */
async function start(backend: (typeof BACKENDS)[number], clock: { nowMs: number }) {
  let operatorId = '';
  harness = await startBotHarness({
    backend,
    environment: (discord) => {
      operatorId = discord.addUser({ username: 'operator' }).id;
      discord.addMember(operatorId);
      return { BOT_OPERATOR_IDS: operatorId };
    },
    before: (_discord, config) => registerCommands(config.discord).then(() => {}),
    bot: { clock: () => clock.nowMs },
  });
  return { harness, operatorId };
}

/** What the person saw: the final content of the private reply, and the files uploaded with it. */
async function reply(bot: BotHarness, interaction: InteractionRecord, isDone: (text: string) => boolean) {
  let content = '';
  await until(() => {
    content = bot.discord.interactionResponses(interaction.id).original?.content ?? '';
    return isDone(content);
  });
  const { original } = bot.discord.interactionResponses(interaction.id);
  expect(((original?.flags ?? 0) & MessageFlags.Ephemeral) !== 0).toBe(true);
  const files = bot.discord.requests
    .filter(
      (request) => request.route === EDIT_ORIGINAL && request.params.interaction_token === interaction.token,
    )
    .flatMap((request) => request.files);
  return { content, lines: content.split('\n'), files };
}

function sqlSum(bot: BotHarness, where: string, parameters: unknown[]): Promise<number> {
  return bot.database
    .value<number>(
      `SELECT COALESCE(SUM(cost_micros), 0) AS spent FROM usage_ledger WHERE ${where}`,
      parameters,
    )
    .then(Number);
}

/**
 * Twelve members of the server who spent 1.2, 1.1, … 0.1 dollars this month (the first two partly on the
 * smart model), a call last month, calls in another server and in DMs, and turns with reasons: each
 * member's calls belong to their turn, so a call's route reason is its turn's escalation source.
 */
function history(bot: BotHarness, memberIds: readonly string[], nowMs: number) {
  const guildId = bot.discord.guild.id;
  const calls: SeedCall[] = [];
  const turns: SeedTurn[] = [];
  memberIds.forEach((userId, index) => {
    const spentMicros = (12 - index) * 100_000;
    const at = MONTH.startMs + HOUR_MS * (index + 1);
    const turnId = `turn-${index}`;
    if (index < 2) {
      // Split unevenly to the micro-dollar, each member's total and each model's the same: costs past the
      // cent, over a dollar and under two cents, for the export to carry exactly.
      const shiftMicros = index === 0 ? 534_567 : -534_567;
      calls.push({
        userId,
        guildId,
        model: FAST,
        chargedAt: at,
        costMicros: spentMicros / 2 + shiftMicros,
        smartCostMicros: spentMicros * 3,
        inputTokens: 700,
        cachedInputTokens: 300,
        outputTokens: 400,
        turnId,
      });
      calls.push({
        userId,
        guildId,
        model: SMART,
        purpose: 'refine',
        chargedAt: at + 60_000,
        costMicros: spentMicros / 2 - shiftMicros,
        inputTokens: 1_200,
        cachedInputTokens: 500,
        cacheWriteTokens: 300,
        outputTokens: 500,
        turnId,
      });
    } else {
      calls.push({
        userId,
        guildId,
        model: FAST,
        chargedAt: at,
        costMicros: spentMicros,
        smartCostMicros: spentMicros * 6,
        inputTokens: 700,
        outputTokens: 300,
        turnId,
      });
    }
    turns.push({
      turnId,
      userId,
      guildId,
      escalationSource: index === 0 ? 'check' : index === 1 ? 'router' : null,
      costMicros: spentMicros,
      smartOnlyCostMicros: spentMicros * 4,
      createdAt: at,
    });
  });
  const first = memberIds[0]!;
  // Outside the view: last month, another server, DMs.
  calls.push({
    userId: first,
    guildId,
    model: FAST,
    chargedAt: MONTH.startMs - HOUR_MS,
    costMicros: 5_000_000,
  });
  calls.push({
    userId: first,
    guildId: OTHER_GUILD,
    model: FAST,
    chargedAt: MONTH.startMs + HOUR_MS,
    costMicros: 3_000_000,
  });
  calls.push({
    userId: first,
    guildId: null,
    model: SMART,
    chargedAt: MONTH.startMs + 2 * HOUR_MS,
    costMicros: 700_000,
  });
  return { calls: calls.filter((call) => call.chargedAt <= nowMs), turns, nowMs };
}

describe.each(BACKENDS)('on %s', (backend) => {
  it('when an admin asks for /usage server, then the first line, the top 10 against their own budgets, models, reasons, savings and the chart match the ledger', async () => {
    const clock = { nowMs: MONTH.startMs + 17 * DAY_MS + 15 * HOUR_MS };
    const { harness: bot } = await start(backend, clock);
    const { discord } = bot;
    const guildId = discord.guild.id;
    const pro = discord.addRole({ name: 'Pro', permissions: 0n });
    const members = Array.from({ length: 12 }, (_, index) => {
      const user = discord.addUser({ username: `member${index}` });
      discord.addMember(user.id, { roleIds: index === 1 ? [pro.id] : [] });
      return user.id;
    });
    await seedUsage(bot.database, history(bot, members, clock.nowMs));
    const changedBy = discord.owner.id;
    await bot.app.storage.budgets.setBudget(
      { guildId, scope: 'server-total', changedBy },
      { amountMicros: 5_000_000, period: 'month' },
    );
    await bot.app.storage.budgets.setBudget(
      { guildId, scope: 'user', userId: members[0]!, changedBy },
      { amountMicros: 2_400_000, period: 'month' },
    );
    await bot.app.storage.budgets.setBudget(
      { guildId, scope: 'role', roleId: pro.id, changedBy },
      { amountMicros: 4_400_000, period: 'month' },
    );
    // The Pro member uses a command once: the bot has seen their roles (no REST call, no members intent).
    const seen = discord.chatInputCommand({ commandName: 'usage', subcommand: 'me', userId: members[1]! });
    await reply(bot, seen, (text) => text.startsWith('Spent'));

    const interaction = discord.chatInputCommand({
      commandName: 'usage',
      subcommand: 'server',
      userId: discord.owner.id,
    });
    const { content, lines, files } = await reply(bot, interaction, (text) =>
      text.startsWith('Server spent'),
    );

    const spentMicros = await sqlSum(bot, 'guild_id = $1 AND charged_at >= $2 AND charged_at < $3', [
      guildId,
      MONTH.startMs,
      MONTH.endMs,
    ]);
    expect(spentMicros).toBe(7_800_000);
    expect(lines[0]).toBe(`Server spent ${formatUsd(spentMicros)} of $5.0000 this month`);
    expect(lines[1]).toBe(`$0.0000 left; resets ${formatResetTime(MONTH.endMs)}`);
    // $7.80 in 17 days and 15 hours: the cap is already spent.
    const projected = Math.round((spentMicros * DAYS_IN_MONTH * 24) / (17 * 24 + 15));
    expect(lines[2]).toBe(
      `at this pace: ${formatUsd(projected)} by ${dayOf(MONTH.endMs - 1)} — the cap is reached`,
    );

    const top = lines.filter((line) => /^\d+\. /.test(line));
    expect(top).toEqual([
      `1. <@${members[0]}> $1.2000 · 50% of $2.4000 a month (own budget)`,
      `2. <@${members[1]}> $1.1000 · 25% of $4.4000 a month (role <@&${pro.id}>)`,
      ...members.slice(2, 10).map((userId, index) => {
        const spent = (10 - index) * 100_000;
        // No budget of their own, and the bot has not seen their roles: the server has role budgets, so it says so.
        return `${index + 3}. <@${userId}> ${formatUsd(spent)} · ${spent / 10_000}% of $1.0000 a month (bot default) · roles not seen lately`;
      }),
    ]);
    expect(content).toContain('- GPT-4o Mini: 12 calls · 12,800 tokens · $6.6500');
    expect(content).toContain('- Claude Haiku: 2 calls · 5,000 tokens · $1.1500');
    expect(content).toContain('**Answers**: 12 · escalated to Claude Haiku: 2 (check 1, triage 1)');
    // Each answer would have cost four times as much on Claude Haiku alone.
    expect(content).toContain(
      `**Saved** ${formatUsd(spentMicros * 3)} against sending every answer to Claude Haiku (${formatUsd(spentMicros * 4)})`,
    );

    expect(files.map((file) => [file.name, file.contentType])).toEqual([['spend.png', 'image/png']]);
    const png = files[0]!.data;
    expect(png.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([800, 400]);
    const chart = chartDataOf(png);
    expect(chart?.totalMicros).toBe(spentMicros);
    expect(chart?.limit).toEqual({ micros: 5_000_000, label: 'cap' });
    expect(chart?.forecast).toMatchObject({ fromMs: clock.nowMs, toMs: MONTH.endMs, toMicros: projected });
  });

  it('when less than two days of the month have passed, then no forecast is stated; from two days in, it is', async () => {
    const clock = { nowMs: MONTH.startMs + DAY_MS + 12 * HOUR_MS };
    const { harness: bot } = await start(backend, clock);
    const { discord } = bot;
    const guildId = discord.guild.id;
    await seedUsage(bot.database, {
      calls: [
        {
          userId: discord.user.id,
          guildId,
          model: FAST,
          chargedAt: MONTH.startMs + 9 * HOUR_MS,
          costMicros: 300_000,
        },
        {
          userId: discord.user.id,
          guildId,
          model: FAST,
          chargedAt: MONTH.startMs + 33 * HOUR_MS,
          costMicros: 200_000,
        },
      ],
      nowMs: clock.nowMs,
    });
    await bot.app.storage.budgets.setBudget(
      { guildId, scope: 'server-total', changedBy: discord.owner.id },
      { amountMicros: 5_000_000, period: 'month' },
    );

    const early = await reply(
      bot,
      discord.chatInputCommand({ commandName: 'usage', subcommand: 'server', userId: discord.owner.id }),
      (text) => text.startsWith('Server spent'),
    );
    expect(early.lines.slice(0, 3)).toEqual([
      'Server spent $0.5000 of $5.0000 this month',
      `$4.5000 left; resets ${formatResetTime(MONTH.endMs)}`,
      `no forecast before ${formatResetTime(MONTH.startMs + 2 * DAY_MS)}: too early in the month to tell`,
    ]);
    expect(early.content).not.toContain('at this pace');
    expect(chartDataOf(early.files[0]!.data)?.forecast).toBeUndefined();

    clock.nowMs = MONTH.startMs + 2 * DAY_MS;
    const onTime = await reply(
      bot,
      discord.chatInputCommand({ commandName: 'usage', subcommand: 'server', userId: discord.owner.id }),
      (text) => text.startsWith('Server spent'),
    );
    // $0.50 in two days, $0.25 a day: the $5 cap on day 20, and 25 cents for each day of the month.
    expect(onTime.lines[2]).toBe(
      `at this pace: ${formatUsd(DAYS_IN_MONTH * 250_000)} by ${dayOf(MONTH.endMs - 1)} — the cap is reached around ${dayOf(MONTH.startMs + 20 * DAY_MS)}`,
    );
    expect(chartDataOf(onTime.files[0]!.data)?.forecast?.toMicros).toBe(DAYS_IN_MONTH * 250_000);
  });

  it('when a member asks for /usage me, then their chart is the same cumulative chart, with their budget as its line and their forecast', async () => {
    const clock = { nowMs: MONTH.startMs + 9 * DAY_MS };
    const { harness: bot } = await start(backend, clock);
    const { discord } = bot;
    await seedUsage(bot.database, history(bot, [discord.user.id, discord.owner.id], clock.nowMs));

    const { lines, files } = await reply(
      bot,
      discord.chatInputCommand({ commandName: 'usage', subcommand: 'me' }),
      (text) => text.startsWith('Spent'),
    );
    // $1.20 of the $1 default: spent, and at this pace far more by the end.
    expect(lines.slice(0, 3)).toEqual([
      'Spent $1.2000 of $1.0000 this month',
      `$0.0000 left; resets ${formatResetTime(MONTH.endMs)}`,
      `at this pace: ${formatUsd((1_200_000 * DAYS_IN_MONTH) / 9)} by ${dayOf(MONTH.endMs - 1)} — the budget is reached`,
    ]);
    const chart = chartDataOf(files[0]!.data);
    const spentMicros = await sqlSum(
      bot,
      'guild_id = $1 AND user_id = $2 AND charged_at >= $3 AND charged_at < $4',
      [discord.guild.id, discord.user.id, MONTH.startMs, MONTH.endMs],
    );
    expect(chart?.totalMicros).toBe(spentMicros);
    expect(chart?.limit).toEqual({ micros: 1_000_000, label: 'budget' });
    expect(chart?.forecast).toMatchObject({ fromMicros: spentMicros, toMs: MONTH.endMs });
  });

  it('when a member without Manage Server asks for /usage server, then they are refused, privately, and shown nothing of it', async () => {
    const clock = { nowMs: MONTH.startMs + 17 * DAY_MS };
    const { harness: bot } = await start(backend, clock);
    await seedUsage(bot.database, history(bot, [bot.discord.user.id], clock.nowMs));
    const interaction = bot.discord.chatInputCommand({ commandName: 'usage', subcommand: 'server' });
    const { content, files } = await reply(bot, interaction, (text) => text !== '');
    expect(content).toBe(
      "/usage server needs the Manage Server permission (or being one of the bot's operators). Nothing was changed.",
    );
    expect(files).toEqual([]);
    expect(
      bot.discord.requests.every((request) => !JSON.stringify(request.body ?? '').includes('$1.2000')),
    ).toBe(true);
  });

  it('when an admin exports the month, then the CSV parsed back is the ledger, row for row, to the micro-dollar', async () => {
    const clock = { nowMs: MONTH.startMs + 17 * DAY_MS + 15 * HOUR_MS };
    const { harness: bot } = await start(backend, clock);
    const members = [bot.discord.user.id, bot.discord.owner.id];
    await seedUsage(bot.database, history(bot, members, clock.nowMs));

    const interaction = bot.discord.chatInputCommand({
      commandName: 'usage',
      subcommand: 'export',
      userId: bot.discord.owner.id,
    });
    const { content, files } = await reply(bot, interaction, (text) => text.includes('model calls'));

    expect(content).toBe('4 model calls this month (times in UTC, cost in USD).');
    expect(files).toHaveLength(1);
    const today = new Date(clock.nowMs).toISOString().slice(0, 10);
    expect(files[0]!.name).toBe(`tierbot-calls-${bot.discord.guild.id}-month-${today}.csv`);
    const records = parse(files[0]!.data, { columns: true }) as Record<string, string>[];
    expect(Object.keys(records[0] ?? {})).toEqual([...CSV_COLUMNS]);
    // The two escalated answers' calls as seeded: model, cache read and write tokens, cost, route reason.
    expect(
      records.map((record) => [
        record.model,
        record.cached_input_tokens,
        record.cache_write_tokens,
        record.cost_usd,
        record.route_reason,
      ]),
    ).toEqual([
      [FAST, '300', '0', '1.134567', 'check'],
      [SMART, '500', '300', '0.065433', 'check'],
      [FAST, '300', '0', '0.015433', 'router'],
      [SMART, '500', '300', '1.084567', 'router'],
    ]);
    const ledger = await bot.database.query<Record<string, unknown>>(
      `SELECT l.charged_at, l.user_id, l.channel_id, l.model, l.purpose, l.input_tokens, l.cached_input_tokens,
              l.cache_write_tokens, l.output_tokens, l.cost_micros, t.escalation_source
       FROM usage_ledger l LEFT JOIN turns t ON t.turn_id = l.turn_id
       WHERE l.guild_id = $1 AND l.charged_at >= $2 AND l.charged_at < $3 ORDER BY l.charged_at, l.id`,
      [bot.discord.guild.id, MONTH.startMs, MONTH.endMs],
    );
    expect(
      records.map((record) => ({
        ...record,
        // Dollars with six decimals, read back as whole micro-dollars without a float between.
        cost_usd: Number(record.cost_usd!.replace('.', '')),
      })),
    ).toEqual(
      ledger.map((row) => ({
        time_utc: new Date(Number(row.charged_at)).toISOString(),
        member_id: row.user_id,
        channel_id: row.channel_id,
        model: row.model,
        purpose: row.purpose,
        input_tokens: String(row.input_tokens),
        cached_input_tokens: String(row.cached_input_tokens),
        cache_write_tokens: String(row.cache_write_tokens),
        output_tokens: String(row.output_tokens),
        cost_usd: Number(row.cost_micros),
        route_reason: row.escalation_source ?? '',
      })),
    );
  });

  it('when a server admin who is not an operator asks for /usage bot, then it is refused; an operator sees every server', async () => {
    const clock = { nowMs: MONTH.startMs + 17 * DAY_MS + 15 * HOUR_MS };
    const { harness: bot, operatorId } = await start(backend, clock);
    await seedUsage(bot.database, history(bot, [bot.discord.user.id, bot.discord.owner.id], clock.nowMs));
    expect(
      bot.discord.world.permissionsIn(bot.discord.channel.id, bot.discord.owner.id) &
        PermissionFlagsBits.ManageGuild,
    ).toBe(PermissionFlagsBits.ManageGuild);

    const refused = await reply(
      bot,
      bot.discord.chatInputCommand({ commandName: 'usage', subcommand: 'bot', userId: bot.discord.owner.id }),
      (text) => text !== '',
    );
    expect(refused.content).toBe("/usage bot is only for the bot's operators (BOT_OPERATOR_IDS).");
    expect(refused.files).toEqual([]);

    const shown = await reply(
      bot,
      bot.discord.chatInputCommand({ commandName: 'usage', subcommand: 'bot', userId: operatorId }),
      (text) => text.startsWith('Bot spent'),
    );
    const spentMicros = await sqlSum(bot, 'charged_at >= $1 AND charged_at < $2', [
      MONTH.startMs,
      MONTH.endMs,
    ]);
    expect(spentMicros).toBe(1_200_000 + 1_100_000 + 3_000_000 + 700_000);
    expect(shown.lines[0]).toBe(`Bot spent ${formatUsd(spentMicros)} this month`);
    // A server this process does not run goes by its id; this one by its name too.
    expect(shown.lines.filter((line) => /^\d+\. /.test(line))).toEqual([
      `1. ${OTHER_GUILD} $3.0000 · 50% of all spend`,
      `2. ${bot.discord.guild.name} (${bot.discord.guild.id}) $2.3000 · 38% of all spend`,
      '3. direct messages $0.7000 · 12% of all spend',
    ]);
    expect(chartDataOf(shown.files[0]!.data)?.totalMicros).toBe(spentMicros);
  });
});

describe('/usage export over the attachment limit', () => {
  it('when a month of calls comes to more than 10 MiB, then nothing is uploaded and the admin is told to take a week', async () => {
    const clock = { nowMs: MONTH.startMs + 17 * DAY_MS + 15 * HOUR_MS };
    const { harness: bot } = await start('sqlite', clock);
    // 120,000 calls ten seconds apart from the month's first day: about 12.5 MB of CSV.
    await bot.database.query(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 119999)
       INSERT INTO usage_ledger (request_id, turn_id, user_id, guild_id, channel_id, provider, model, purpose, outcome,
         input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_micros, smart_cost_micros,
         reserved_micros, charged_at, created_at)
       SELECT 'bulk-' || i, 'bulk-turn-' || i, $1, $2, $3, 'openai', 'gpt-4o-mini', 'draft', 'settled',
         1000 + i % 500, 0, 0, 300, 450, 2000, 2000, $4 + i * 10000, $4 + i * 10000 + 5 FROM n`,
      [bot.discord.user.id, bot.discord.guild.id, bot.discord.channel.id, MONTH.startMs],
    );
    const interaction = bot.discord.chatInputCommand({
      commandName: 'usage',
      subcommand: 'export',
      userId: bot.discord.owner.id,
    });
    const { content, files } = await reply(bot, interaction, (text) => text !== '');
    expect(content).toMatch(
      /^This server's calls this month come to more than 10 MiB, the most Discord lets the bot upload here \(stopped after about [\d,]+ calls\); try a shorter period: `\/usage export period:week`\. Nothing was uploaded\.$/,
    );
    expect(files).toEqual([]);
  }, 60_000);
});
