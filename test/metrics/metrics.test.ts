import { once } from 'node:events';
import { createServer } from 'node:net';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { MeteredLedger } from '../../src/core/telemetry.js';
import { NO_USAGE } from '../../src/core/pricing.js';
import { registerCommands } from '../../src/discord/commands/register.js';
import { EXIT_CODES } from '../../src/exit-codes.js';
import { type FakeAnthropic, startFakeAnthropic } from '../fakes/anthropic.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/index.js';
import { type FakeOpenAI, openaiErrors, startFakeOpenAI } from '../fakes/openai.js';
import { type BotHarness, botPerTest, until } from '../support/bot.js';
import { type BotProcess, startBotProcess } from '../support/bot-process.js';
import { BACKENDS, temporaryDatabase, type TemporaryDatabase } from '../support/databases.js';
import { loopbackEnvironment, TEST_KEYS } from '../support/environment.js';
import { scrape } from '../support/prometheus.js';
import { assertNoSecrets } from '../support/secrets.js';
import { ACCEPT, REFINE } from '../support/verdicts.js';

/*
 * The operator's endpoints of the real bot: /metrics scraped over HTTP and read by a Prometheus
 * text-format parser, compared with what the ledger and the bot's own log hold; /healthz and /readyz as
 * an orchestrator probes them, while the database goes away and comes back, and while the bot logs in.
 * METRICS_PORT=0: the system picks a free port, which the bot says.
 */

const startBot = botPerTest();
const withMetrics = { METRICS_PORT: '0' };

const turnsDone = (harness: BotHarness) => harness.logs.filter((line) => line.msg === 'turn done');

/** Asks in #general and waits until the bot has logged the turn as done. */
async function mention(harness: BotHarness, content: string, authorId?: string): Promise<void> {
  const before = turnsDone(harness).length;
  harness.discord.messageCreate({ authorId, content: `<@${harness.discord.bot.id}> ${content}` });
  await until(() => turnsDone(harness).length > before);
}

async function probe(url: string, path: '/healthz' | '/readyz'): Promise<{ status: number; text: string }> {
  const response = await fetch(`${url}${path}`);
  return { status: response.status, text: await response.text() };
}

describe.each(BACKENDS)('/metrics, on %s', (backend) => {
  it('when a scripted set of turns has run, then the counters equal the ledger (calls, tokens, cost), the turns the log, and no label names anyone', async () => {
    const harness = await startBot({
      backend,
      environment: withMetrics,
      before: (_discord, config) => registerCommands(config.discord).then(() => {}),
    });
    const { discord, openai, anthropic, app } = harness;
    const url = harness.metrics?.url ?? '';
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // Accepted: a draft (part of its input read from OpenAI's cache) and a check.
    openai.script(
      {
        type: 'stream',
        text: 'A monad chains computations.',
        usage: { promptTokens: 30, completionTokens: 12, cachedTokens: 10 },
      },
      { type: 'completion', content: ACCEPT },
    );
    await mention(harness, 'what is a monad?');
    // Refined: the check asks for Claude, whose prompt is partly read from and written to its cache.
    openai.script({ type: 'stream', text: 'Thin answer.' }, { type: 'completion', content: REFINE });
    anthropic.script({
      type: 'stream',
      text: 'A fuller answer.',
      usage: { inputTokens: 50, outputTokens: 20, cacheReadInputTokens: 100, cacheCreationInputTokens: 40 },
    });
    await mention(harness, 'and a functor?');
    // Asked of Claude directly.
    anthropic.script({ type: 'stream', text: 'Directly.' });
    const before = turnsDone(harness).length;
    discord.chatInputCommand({ commandName: 'ask', options: { prompt: 'why?', model: 'smart' } });
    await until(() => turnsDone(harness).length > before);
    // Denied: a member whose own budget cannot cover a draft.
    const broke = discord.addUser({ username: 'broke' });
    discord.addMember(broke.id);
    await app.storage.budgets.setBudget(
      { guildId: discord.guild.id, scope: 'user', userId: broke.id, changedBy: discord.owner.id },
      { amountMicros: 100, period: 'month' },
    );
    await mention(harness, 'can I ask?', broke.id);
    // OpenAI overloaded five times (no wait asked): its circuit opens and Claude answers instead.
    for (let attempt = 0; attempt < 5; attempt += 1) {
      openai.script({ ...openaiErrors.unavailable(), headers: { 'retry-after-ms': '0' } });
    }
    anthropic.script({ type: 'stream', text: 'Claude, standing in.' });
    await mention(harness, 'anyone there?');

    await app.storage.flush();
    const scraped = await scrape(url);

    // Calls, by model, purpose and outcome: one per ledger row.
    const rows = await harness.database.query<{
      model: string;
      purpose: string;
      outcome: string;
      calls: number;
    }>(
      `SELECT model, purpose, outcome, COUNT(*) AS calls FROM usage_ledger
       GROUP BY model, purpose, outcome ORDER BY model, purpose, outcome`,
    );
    expect(rows.length).toBeGreaterThanOrEqual(6);
    const counted = scraped
      .samples('tierbot_model_calls_total')
      .map(({ labels, value }) => ({
        model: labels.model ?? '',
        purpose: labels.purpose ?? '',
        outcome: labels.outcome ?? '',
        calls: value,
      }))
      .sort((a, b) =>
        `${a.model} ${a.purpose} ${a.outcome}`.localeCompare(`${b.model} ${b.purpose} ${b.outcome}`),
      );
    expect(counted).toEqual(rows.map((row) => ({ ...row, calls: Number(row.calls) })));
    expect(rows).toContainEqual({ model: 'gpt-4o-mini', purpose: 'draft', outcome: 'failed', calls: 5 });
    expect(rows).toContainEqual(expect.objectContaining({ purpose: 'fallback', outcome: 'settled' }));

    // Tokens by kind and cost, by model and purpose, to the micro-dollar.
    const sums = await harness.database.query<Record<string, string | number>>(
      `SELECT model, purpose, SUM(input_tokens) AS input, SUM(cached_input_tokens) AS cached_input,
              SUM(cache_write_tokens) AS cache_write, SUM(output_tokens) AS output,
              SUM(cost_micros) AS cost_micros
       FROM usage_ledger GROUP BY model, purpose`,
    );
    for (const sum of sums) {
      const labels = { model: String(sum.model), purpose: String(sum.purpose) };
      for (const kind of ['input', 'cached_input', 'cache_write', 'output']) {
        expect(
          scraped.total('tierbot_model_tokens_total', { ...labels, kind }),
          `${kind} of ${labels.purpose}`,
        ).toBe(Number(sum[kind]));
      }
      expect(Math.round(scraped.total('tierbot_model_cost_usd_total', labels) * 1_000_000)).toBe(
        Number(sum.cost_micros),
      );
    }
    expect(scraped.total('tierbot_model_tokens_total', { kind: 'cached_input' })).toBe(110);
    expect(scraped.total('tierbot_model_tokens_total', { kind: 'cache_write' })).toBe(40);
    const ledgerCost = await harness.database.value('SELECT SUM(cost_micros) FROM usage_ledger');
    expect(Math.round(scraped.total('tierbot_model_cost_usd_total') * 1_000_000)).toBe(Number(ledgerCost));

    // Turns by route and outcome, as the bot logged each one.
    const logged = new Map<string, number>();
    for (const line of turnsDone(harness)) {
      const key = `${String(line.route ?? 'fast')} ${String(line.status)}`;
      logged.set(key, (logged.get(key) ?? 0) + 1);
    }
    const turns = new Map(
      scraped
        .samples('tierbot_turns_total')
        .map(({ labels, value }) => [`${labels.route} ${labels.outcome}`, value] as const),
    );
    expect(turns).toEqual(logged);
    expect(turns).toEqual(
      new Map([
        ['fast answered', 1],
        ['check answered', 1],
        ['user answered', 1],
        ['fast denied', 1],
        ['fallback answered', 1],
      ]),
    );

    // Reservations: every granted one wrote a row and is closed; the denial names its limit.
    expect(scraped.samples('tierbot_budget_denials_total')).toEqual([
      { value: 1, labels: { limit: 'user', source: 'own' } },
    ]);
    const ledgerRows = await harness.database.value('SELECT COUNT(*) FROM usage_ledger');
    expect(scraped.histogramCount('tierbot_reservation_duration_seconds', { outcome: 'granted' })).toBe(
      Number(ledgerRows),
    );
    expect(scraped.histogramCount('tierbot_reservation_duration_seconds', { outcome: 'denied' })).toBe(1);
    expect(scraped.total('tierbot_open_reservations')).toBe(0);

    // The providers: five overloaded attempts, then one skipped by the open circuit.
    expect(scraped.samples('tierbot_provider_errors_total')).toEqual(
      expect.arrayContaining([
        { value: 5, labels: { provider: 'openai', kind: 'overloaded' } },
        { value: 1, labels: { provider: 'openai', kind: 'circuit_open' } },
      ]),
    );
    expect(scraped.total('tierbot_provider_errors_total')).toBe(6);
    expect(scraped.total('tierbot_provider_circuit_state', { provider: 'openai' })).toBe(2);
    expect(scraped.total('tierbot_provider_circuit_state', { provider: 'anthropic' })).toBe(0);
    // Node's own process metrics come too.
    expect(scraped.total('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(scraped.total('nodejs_heap_size_used_bytes')).toBeGreaterThan(0);

    // No label value is anyone's id (or any Discord id), or anything shaped like a secret.
    const ids = new Set([
      ...discord.world.users.keys(),
      discord.guild.id,
      discord.channel.id,
      ...discord.requests.flatMap((request) => Object.values(request.params)),
    ]);
    const labels = scraped.labelValues();
    expect(labels.length).toBeGreaterThan(20);
    expect(labels.filter(({ value }) => ids.has(value) || /^\d{15,}$/.test(value))).toEqual([]);
    assertNoSecrets(
      labels.map(({ where, value }) => ({ where, text: value })),
      [harness.environment.DISCORD_TOKEN ?? '', TEST_KEYS.OPENAI_API_KEY, TEST_KEYS.ANTHROPIC_API_KEY],
    );
    assertNoSecrets(
      [{ where: '/metrics', text: scraped.text }],
      [harness.environment.DISCORD_TOKEN ?? '', TEST_KEYS.OPENAI_API_KEY, TEST_KEYS.ANTHROPIC_API_KEY],
    );
    for (const id of ids) expect(scraped.text).not.toContain(id);
  });
});

describe('Discord rate limits', () => {
  it("when Discord answers 429 to the bot's reply, then the rate-limit counter counts the wait discord.js made", async () => {
    const harness = await startBot({ environment: withMetrics });
    const { discord, openai } = harness;
    openai.script({ type: 'stream', text: 'Patience.' }, { type: 'completion', content: ACCEPT });
    discord.rateLimits.reject('POST /channels/:channel_id/messages', { retryAfterSeconds: 0.2 });
    await mention(harness, 'are you there?');

    expect(discord.rateLimits.count).toBe(1);
    const scraped = await scrape(harness.metrics?.url ?? '');
    expect(scraped.samples('tierbot_discord_rate_limits_total')).toEqual([
      { value: 1, labels: { scope: 'route' } },
    ]);
  });
});

describe('the servers near their cap', () => {
  it("when a server's spending reaches 90% of its cap, then it is counted at 0.8 and 0.9, and a server far from its cap is not", async () => {
    // Small answers (50 output tokens at most), asked for the fast model alone: no check, so each turn
    // is one call of a few dozen micro-dollars, and the cap is reached in small steps.
    const harness = await startBot({
      environment: { ...withMetrics, MAX_OUTPUT_TOKENS: '50' },
      before: (_discord, config) => registerCommands(config.discord).then(() => {}),
    });
    const { discord, openai, app } = harness;
    const capMicros = 500;
    const other = discord.addGuild({ name: 'roomy' });
    for (const [guildId, amountMicros] of [
      [discord.guild.id, capMicros],
      [other.id, 10_000_000],
    ] as const) {
      await app.storage.budgets.setBudget(
        { guildId, scope: 'server-total', changedBy: discord.owner.id },
        { amountMicros, period: 'month' },
      );
    }
    const ask = async (channelId: string) => {
      const before = turnsDone(harness).length;
      discord.chatInputCommand({ commandName: 'ask', options: { prompt: 'hi', model: 'fast' }, channelId });
      await until(() => turnsDone(harness).length > before);
      return turnsDone(harness).at(-1)?.status;
    };
    const answer = () =>
      openai.script({ type: 'stream', text: 'Hello.', usage: { promptTokens: 20, completionTokens: 45 } });

    discord.addMember(discord.user.id, { guildId: other.id });
    answer();
    expect(await ask(discord.world.guild(other.id).channelIds[0] ?? '')).toBe('answered');
    // Asked until the cap turns a question away: by then what is left is less than one small answer.
    for (let turn = 0; turn < 40; turn += 1) {
      answer();
      if ((await ask(discord.channel.id)) === 'denied') break;
    }
    await app.storage.flush();
    const spent = Number(
      await harness.database.value('SELECT SUM(cost_micros) FROM usage_ledger WHERE guild_id = $1', [
        discord.guild.id,
      ]),
    );
    expect(spent).toBeGreaterThanOrEqual(0.9 * capMicros);
    expect(spent).toBeLessThanOrEqual(capMicros);

    const scraped = await scrape(harness.metrics?.url ?? '');
    expect(scraped.total('tierbot_servers_near_cap', { threshold: '0.8' })).toBe(1);
    expect(scraped.total('tierbot_servers_near_cap', { threshold: '0.9' })).toBe(1);
    expect(scraped.samples('tierbot_budget_denials_total')).toEqual([
      { value: 1, labels: { limit: 'server', source: 'server-cap' } },
    ]);
  });
});

describe('/readyz', () => {
  it('when the database stops taking connections, then /readyz says so with 503 while /healthz stays 200, and it is ready again once the database is back', async () => {
    const harness = await startBot({ backend: 'postgres', environment: withMetrics });
    const url = harness.metrics?.url ?? '';
    expect(await probe(url, '/readyz')).toEqual({ status: 200, text: 'ready\n' });
    expect(await probe(url, '/healthz')).toEqual({ status: 200, text: 'alive\n' });

    // From an admin connection to the suite's server: no new connections, and the bot's own ended.
    const name = new URL(harness.database.location.databaseUrl ?? '').pathname.slice(1);
    const admin = new pg.Client({ connectionString: inject('postgresUrl') });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
      let down = await probe(url, '/readyz');
      await until(async () => {
        down = await probe(url, '/readyz');
        return down.status === 503;
      });
      expect(down.text).toMatch(/^not ready: the database does not answer \(.+\)\n$/);
      expect(await probe(url, '/healthz')).toEqual({ status: 200, text: 'alive\n' });

      await admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true`);
      await until(async () => (await probe(url, '/readyz')).status === 200);
      expect(await probe(url, '/readyz')).toEqual({ status: 200, text: 'ready\n' });
    } finally {
      await admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true`);
      await admin.end();
    }
  });
});

describe.each(BACKENDS)('the open reservations, on %s', (backend) => {
  it('when the database fails the release or cancel of a reservation, then the close throws and the gauge still comes back to 0', async () => {
    const harness = await startBot({ backend, environment: withMetrics });
    const { discord, app, metrics, database } = harness;
    const url = metrics?.url ?? '';
    // The bot's own ledger and telemetry, reserved through directly: a turn cannot be held between its
    // reservation and a circuit-open cancel, and what is measured here is the wrapper, not the turn.
    const ledger = new MeteredLedger(app.storage.ledger, metrics!.telemetry);
    const reserve = async (requestId: string) => {
      const result = await ledger.reserve({
        requestId,
        turnId: `turn-of-${requestId}`,
        userId: discord.user.id,
        guildId: discord.guild.id,
        channelId: discord.channel.id,
        provider: 'openai',
        model: 'gpt-4o-mini',
        purpose: 'draft',
        amountMicros: ledger.worstCaseMicros('gpt-4o-mini', 100, 100),
      });
      expect(result.ok).toBe(true);
    };
    await reserve('released-while-failing');
    await reserve('cancelled-while-failing');
    expect((await scrape(url)).total('tierbot_open_reservations')).toBe(2);

    // The reservations table out of the bot's reach: every close fails in the database, as when it drops.
    // (Ending the bot's connections instead, as /readyz does, can also end a pg client with no error listener.)
    await database.query('ALTER TABLE reservations RENAME TO reservations_away');
    try {
      await expect(
        ledger.release('released-while-failing', { ...NO_USAGE, inputTokens: 40, outputTokens: 3 }),
      ).rejects.toThrow();
      await expect(ledger.cancel('cancelled-while-failing')).rejects.toThrow();
    } finally {
      await database.query('ALTER TABLE reservations_away RENAME TO reservations');
    }
    // Both stay in the database for the sweep to charge; this process holds neither any more.
    let scraped = await scrape(url);
    expect(scraped.total('tierbot_open_reservations')).toBe(0);
    expect(scraped.total('tierbot_model_calls_total')).toBe(0);
    expect(await database.value('SELECT COUNT(*) FROM reservations')).toBe(2);

    // Closed once the database answers again (the sweep's job, done here by hand): not counted twice.
    await ledger.release('released-while-failing');
    await ledger.cancel('cancelled-while-failing');
    expect(await database.value('SELECT COUNT(*) FROM reservations')).toBe(0);
    scraped = await scrape(url);
    expect(scraped.total('tierbot_open_reservations')).toBe(0);
  });
});

describe('the metrics endpoints of src/main.ts, as its own process', () => {
  let discord: FakeDiscord;
  let openai: FakeOpenAI;
  let anthropic: FakeAnthropic;
  let database: TemporaryDatabase;
  let bot: BotProcess | undefined;

  const environment = (extra: Record<string, string>) => ({
    ...loopbackEnvironment({ discord, openai, anthropic, database }),
    ...extra,
  });

  const start = async () => {
    [discord, openai, anthropic] = await Promise.all([
      startFakeDiscord(),
      startFakeOpenAI(),
      startFakeAnthropic(),
    ]);
    database = await temporaryDatabase('sqlite');
  };

  afterEach(async () => {
    await bot?.stop();
    bot = undefined;
    await Promise.all([discord.close(), openai.close(), anthropic.close()]);
    await database.cleanup();
  });

  it('when the bot is still logging in, then /readyz answers 503 "not connected yet" and /healthz 200; once it is connected, 200; SIGTERM closes them', async () => {
    await start();
    // @discordjs/rest tries a 5xx four times before giving up: the first login fails, the next is 1 s later.
    discord.failNext('GET /gateway/bot', { status: 502, code: 0, message: '502: Bad Gateway', times: 4 });
    bot = startBotProcess(environment(withMetrics));
    const running = bot;
    await until(
      () => running.logs.some((line) => typeof line.url === 'string') || running.child.exitCode !== null,
    );
    const url = String(running.logs.find((line) => typeof line.url === 'string')?.url);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const early = await probe(url, '/readyz');
    expect(early).toEqual({
      status: 503,
      text: 'not ready: the Discord gateway is not connected yet (logging in)\n',
    });
    expect(await probe(url, '/healthz')).toEqual({ status: 200, text: 'alive\n' });
    await running.ready;
    expect(await probe(url, '/readyz')).toEqual({ status: 200, text: 'ready\n' });
    const scraped = await scrape(url);
    expect(scraped.total('tierbot_open_reservations')).toBe(0);
    expect(scraped.total('process_resident_memory_bytes')).toBeGreaterThan(0);

    expect(await running.stop()).toBe(0);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it('when METRICS_PORT is taken, then it says so in one line and exits with the configuration code', async () => {
    await start();
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as { port: number };
    try {
      bot = startBotProcess(environment({ METRICS_PORT: String(port) }));
      // It never gets ready: that is the point.
      bot.ready.catch(() => {});
      expect(await bot.exited).toBe(EXIT_CODES.configuration);
      const stderr = bot
        .output()
        .split('\n')
        .filter((line) => line.startsWith('tierbot cannot start'));
      expect(stderr).toEqual([
        `tierbot cannot start: METRICS_PORT: cannot listen on 127.0.0.1:${port} (EADDRINUSE); choose a free port, or leave METRICS_PORT unset to run without metrics`,
      ]);
    } finally {
      taken.close();
    }
  });
});
