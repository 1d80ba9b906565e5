import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  applicationIdFromToken,
  ConfigError,
  DEFAULT_SYSTEM_PROMPT,
  loadCommandsConfig,
  loadConfig,
  loadLedgerConfig,
  loadModelConfig,
  readEnvironment,
} from '../src/config.js';
import { EXIT_CODES } from '../src/exit-codes.js';
import { PROJECT_ROOT, tsxArguments } from './support/process.js';

const APPLICATION_ID = '123456789012345678';
const TOKEN = `${Buffer.from(APPLICATION_ID).toString('base64url')}.GabcDE.${'x'.repeat(38)}`;
const OPENAI_KEY = 'sk-proj-abcdefghijklmnopqrstuvwxyz0123';
const ANTHROPIC_KEY = 'sk-ant-api03-abcdefghijklmnopqrstuvwxyz';
const REQUIRED = { DISCORD_TOKEN: TOKEN, OPENAI_API_KEY: OPENAI_KEY, ANTHROPIC_API_KEY: ANTHROPIC_KEY };

function problemsOf(environment: Record<string, string | undefined>): readonly string[] {
  try {
    loadConfig(environment);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the configuration to be refused');
}

function temporaryFile(name: string, content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tierbot-config-')), name);
  writeFileSync(path, content);
  return path;
}

describe('loadConfig', () => {
  it('when only the three secrets are set, then every other variable takes its documented default', () => {
    const config = loadConfig(REQUIRED);
    expect(config).toMatchObject({
      discord: { token: TOKEN, applicationId: APPLICATION_ID, guildId: undefined, apiUrl: undefined },
      databasePath: './data/tierbot.db',
      fastModel: 'gpt-4o-mini',
      smartModel: 'claude-haiku-4-5',
      defaultUserBudget: { amountMicros: 1_000_000, period: 'month' },
      defaultServerCap: undefined,
      maxOutputTokens: 1024,
      systemPrompt: DEFAULT_SYSTEM_PROMPT,
      operatorIds: [],
      logLevel: 'info',
    });
    expect(config.prices.get('claude-3-5-haiku')).toBeDefined();
  });

  it('when variables are set, then they are parsed into typed values', () => {
    const config = loadConfig({
      ...REQUIRED,
      DISCORD_APPLICATION_ID: '987654321098765432',
      DISCORD_GUILD_ID: '111111111111111111',
      DEFAULT_USER_BUDGET_USD: '2.5',
      BUDGET_PERIOD: 'week',
      SERVER_BUDGET_USD: '25',
      MAX_OUTPUT_TOKENS: '2048',
      BOT_OPERATOR_IDS: ' 222222222222222222, 333333333333333333 ',
      SMART_MODEL: 'claude-3-5-haiku',
      LOG_LEVEL: 'debug',
    });
    expect(config.discord.applicationId).toBe('987654321098765432');
    expect(config.defaultUserBudget).toEqual({ amountMicros: 2_500_000, period: 'week' });
    expect(config.defaultServerCap).toEqual({ amountMicros: 25_000_000, period: 'week' });
    expect(config.maxOutputTokens).toBe(2048);
    expect(config.operatorIds).toEqual(['222222222222222222', '333333333333333333']);
    expect(config.smartModel).toBe('claude-3-5-haiku');
  });

  it('when required variables are missing, then every one is named with what it is for', () => {
    const problems = problemsOf({ OPENAI_API_KEY: '' });
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/^DISCORD_TOKEN: required but not set — the bot token/);
    expect(problems[1]).toMatch(/^OPENAI_API_KEY: required but not set — /);
    expect(problems[2]).toMatch(/^ANTHROPIC_API_KEY: required but not set — /);
  });

  it('when several variables are wrong, then one error names them all', () => {
    const problems = problemsOf({
      ...REQUIRED,
      BUDGET_PERIOD: 'year',
      DEFAULT_USER_BUDGET_USD: '0.00001',
      SERVER_BUDGET_USD: '-1',
      MAX_OUTPUT_TOKENS: '99999',
      BOT_OPERATOR_IDS: '12',
      DISCORD_API_URL: 'not a url',
      SMART_MODEL: 'claude-9',
    });
    expect(problems.map((problem) => problem.split(':')[0])).toEqual([
      'DISCORD_API_URL',
      'DEFAULT_USER_BUDGET_USD',
      'BUDGET_PERIOD',
      'SERVER_BUDGET_USD',
      'MAX_OUTPUT_TOKENS',
      'BOT_OPERATOR_IDS',
      'SMART_MODEL',
    ]);
    expect(problems.join('\n')).toContain('"year" is not one of day, week, month');
    expect(problems.join('\n')).toContain('at most 4 decimals');
    expect(problems.join('\n')).toContain('no price for "claude-9"');
  });

  it('when a secret is malformed, then the error describes it without repeating its value', () => {
    const secretValue = 'my-very-secret-token-value';
    const error = (() => {
      try {
        loadConfig({ ...REQUIRED, DISCORD_TOKEN: secretValue });
      } catch (thrown) {
        return thrown as Error;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.message).toContain('DISCORD_TOKEN: set but is not shaped like a Discord bot token');
    expect(error?.message).not.toContain(secretValue);
  });

  it('when the application id cannot be read from the token, then it asks for DISCORD_APPLICATION_ID', () => {
    const opaqueToken = `${Buffer.from('not-an-id').toString('base64url')}.GabcDE.${'y'.repeat(38)}`;
    expect(problemsOf({ ...REQUIRED, DISCORD_TOKEN: opaqueToken })).toEqual([
      expect.stringMatching(/^DISCORD_APPLICATION_ID: could not be derived from DISCORD_TOKEN/),
    ]);
  });

  it('when PRICES_FILE adds a model, then that model can be chosen and is billed at its price', () => {
    const pricesFile = temporaryFile(
      'prices.json',
      JSON.stringify({
        'my-mini': { input: 0.2, output: 0.8 },
        'gpt-4o-mini': { input: 0.3, cachedInput: 0.15, output: 1.2 },
      }),
    );
    const config = loadConfig({ ...REQUIRED, PRICES_FILE: pricesFile, FAST_MODEL: 'my-mini' });
    expect(config.prices.get('my-mini')).toEqual({
      input: 200_000,
      cachedInput: 200_000,
      cacheWrite: null,
      output: 800_000,
    });
    expect(config.prices.get('gpt-4o-mini')?.input).toBe(300_000);
  });

  it('when PRICES_FILE has an implausible price or a bad shape, then start-up is refused naming the model', () => {
    const perToken = temporaryFile(
      'prices.json',
      JSON.stringify({ 'gpt-4o-mini': { input: 0.00000015, output: 0.6 } }),
    );
    expect(problemsOf({ ...REQUIRED, PRICES_FILE: perToken })[0]).toMatch(
      /^PRICES_FILE: gpt-4o-mini: input price/,
    );
    const badShape = temporaryFile('prices.json', JSON.stringify({ 'gpt-4o-mini': { input: '0.15' } }));
    expect(problemsOf({ ...REQUIRED, PRICES_FILE: badShape })[0]).toMatch(
      /^PRICES_FILE: .* at gpt-4o-mini\.input/,
    );
    expect(problemsOf({ ...REQUIRED, PRICES_FILE: '/nonexistent/prices.json' })[0]).toContain('no such file');
  });
});

describe('the metrics endpoints', () => {
  it('when METRICS_PORT is unset, then there are none; when set, they listen on it, on 127.0.0.1 unless METRICS_HOST says otherwise', () => {
    expect(loadConfig(REQUIRED).metrics).toBeUndefined();
    expect(loadConfig({ ...REQUIRED, METRICS_PORT: '9464' }).metrics).toEqual({
      port: 9464,
      host: '127.0.0.1',
    });
    expect(loadConfig({ ...REQUIRED, METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' }).metrics).toEqual({
      port: 9464,
      host: '0.0.0.0',
    });
  });

  it('when METRICS_PORT is not a port, then start-up names it; the terminal chat and deploy-commands never read it', () => {
    for (const port of ['metrics', '70000', '-1', '94.64']) {
      expect(problemsOf({ ...REQUIRED, METRICS_PORT: port })).toEqual([
        expect.stringMatching(
          new RegExp(`^METRICS_PORT: "${port.replace('.', '\\.')}" is .*/metrics \\(Prometheus\\)`),
        ),
      ]);
    }
    expect(() => loadModelConfig({ ...REQUIRED, METRICS_PORT: 'metrics' })).not.toThrow();
    expect(() => loadCommandsConfig({ ...REQUIRED, METRICS_PORT: 'metrics' })).not.toThrow();
  });
});

describe('sharding', () => {
  it('when DISCORD_SHARD_IDS lists shards, then they are read as numbers; empty, it means every shard', () => {
    const discordOf = (ids: string) =>
      loadConfig({ ...REQUIRED, DISCORD_SHARD_COUNT: '4', DISCORD_SHARD_IDS: ids }).discord;
    expect(discordOf(' 0, 2 ')).toMatchObject({ shardIds: [0, 2], shardCount: 4 });
    expect(discordOf('')).toMatchObject({ shardIds: undefined });
  });

  it('when DISCORD_SHARD_IDS has an empty entry, a shard twice or one past the count, then start-up names it', () => {
    const problems = (ids: string) =>
      problemsOf({ ...REQUIRED, DISCORD_SHARD_COUNT: '4', DISCORD_SHARD_IDS: ids }).join('\n');
    expect(problems(',')).toMatch(/^DISCORD_SHARD_IDS: .*must be shard numbers/);
    expect(problems('0,,2')).toMatch(/^DISCORD_SHARD_IDS: .*must be shard numbers/);
    expect(problems('1,1')).toMatch(/^DISCORD_SHARD_IDS: .*lists a shard twice/);
    expect(problems('0,4')).toMatch(/^DISCORD_SHARD_IDS: shard 4 is not below DISCORD_SHARD_COUNT \(4\)/);
  });
});

describe('what each entry point reads', () => {
  const MODEL_KEYS = { OPENAI_API_KEY: OPENAI_KEY, ANTHROPIC_API_KEY: ANTHROPIC_KEY };
  /** What a half-filled .env looks like: Discord's settings still placeholders. */
  const PLACEHOLDERS = {
    DISCORD_TOKEN: 'paste-your-token-here',
    DISCORD_GUILD_ID: 'my server',
    DISCORD_API_URL: 'not a url',
    BOT_OPERATOR_IDS: 'me',
    USER_COOLDOWN_SECONDS: 'soon',
  };

  it('when Discord settings are placeholders or missing, then the terminal chat configuration ignores them', () => {
    const config = loadModelConfig({ ...MODEL_KEYS, ...PLACEHOLDERS });
    expect(config.openai.apiKey).toBe(OPENAI_KEY);
    expect(config).not.toHaveProperty('discord');
    expect(() => loadModelConfig(MODEL_KEYS)).not.toThrow();
  });

  it('when only Discord settings are set, then the commands configuration is complete without model keys', () => {
    const config = loadCommandsConfig({ DISCORD_TOKEN: TOKEN, DISCORD_GUILD_ID: '111111111111111111' });
    expect(config).toEqual({
      discord: expect.objectContaining({
        token: TOKEN,
        applicationId: APPLICATION_ID,
        guildId: '111111111111111111',
      }),
      logLevel: 'info',
    });
  });

  it('when the model settings are wrong, then the commands configuration does not mention them', () => {
    expect(() =>
      loadCommandsConfig({ DISCORD_TOKEN: TOKEN, SMART_MODEL: 'claude-9', MAX_OUTPUT_TOKENS: 'lots' }),
    ).not.toThrow();
    try {
      loadCommandsConfig({ OPENAI_API_KEY: '' });
      expect.unreachable('DISCORD_TOKEN is required');
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([
        expect.stringMatching(/^DISCORD_TOKEN: required but not set/),
      ]);
    }
  });

  it('when `npm run report` reads its configuration, then the database and budgets are enough, and nothing else is checked', () => {
    const config = loadLedgerConfig({
      ...PLACEHOLDERS,
      DATABASE_PATH: '/srv/tierbot/tierbot.db',
      SERVER_BUDGET_USD: '25',
      BUDGET_PERIOD: 'week',
      MAX_OUTPUT_TOKENS: 'lots',
    });
    expect(config).toEqual({
      databaseUrl: undefined,
      databasePath: '/srv/tierbot/tierbot.db',
      fastModel: 'gpt-4o-mini',
      smartModel: 'claude-haiku-4-5',
      defaultUserBudget: { amountMicros: 1_000_000, period: 'week' },
      defaultServerCap: { amountMicros: 25_000_000, period: 'week' },
    });
    expect(() => loadLedgerConfig({ DATABASE_URL: 'mysql://nope' })).toThrow(
      /DATABASE_URL: .* is not a postgres:\/\/ URL/,
    );
  });

  it('when the bot reads placeholders, then it names every Discord problem beside the others', () => {
    expect(problemsOf({ ...MODEL_KEYS, ...PLACEHOLDERS }).map((problem) => problem.split(':')[0])).toEqual([
      'DISCORD_TOKEN',
      'DISCORD_GUILD_ID',
      'DISCORD_API_URL',
      'BOT_OPERATOR_IDS',
      'USER_COOLDOWN_SECONDS',
    ]);
  });
});

describe('.env.example', () => {
  it('when its three secrets are filled in, then it is a valid configuration with the documented defaults', () => {
    const example = readEnvironment(join(PROJECT_ROOT, '.env.example'));
    const fromExample = Object.fromEntries(
      Object.entries(example).filter(([name]) => !(name in process.env)),
    );
    const config = loadConfig({ ...fromExample, ...REQUIRED });
    expect(config).toMatchObject({
      fastModel: 'gpt-4o-mini',
      smartModel: 'claude-haiku-4-5',
      defaultUserBudget: { amountMicros: 1_000_000, period: 'month' },
      maxOutputTokens: 1024,
      policy: { confidenceThreshold: 0.6, alwaysRefine: ['code'] },
      providers: { firstTokenTimeoutMs: 20_000, deadlineMs: 60_000, retryAfterCapMs: 10_000 },
    });
  });
});

describe('readEnvironment', () => {
  it('when a .env file exists, then its values are used unless the real environment sets them', () => {
    const envFile = temporaryFile('.env', 'TIERBOT_TEST_FROM_FILE=file\nTIERBOT_TEST_BOTH=file\n');
    process.env.TIERBOT_TEST_BOTH = 'environment';
    try {
      const environment = readEnvironment(envFile);
      expect(environment.TIERBOT_TEST_FROM_FILE).toBe('file');
      expect(environment.TIERBOT_TEST_BOTH).toBe('environment');
    } finally {
      delete process.env.TIERBOT_TEST_BOTH;
    }
  });
});

describe('applicationIdFromToken', () => {
  it('when the token starts with the base64 of the bot id, then that id is returned', () => {
    expect(applicationIdFromToken(TOKEN)).toBe(APPLICATION_ID);
    expect(applicationIdFromToken('garbage')).toBeUndefined();
  });
});

describe('npm start with a bad configuration', () => {
  it('when a variable is missing, then the process prints every problem and exits with the configuration code', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'tierbot-start-'));
    const result = spawnSync(process.execPath, tsxArguments(join(PROJECT_ROOT, 'src/main.ts')), {
      cwd,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, OPENAI_API_KEY: OPENAI_KEY, BUDGET_PERIOD: 'fortnight' },
    });
    expect(result.status).toBe(EXIT_CODES.configuration);
    expect(result.stderr).toContain('DISCORD_TOKEN: required but not set');
    expect(result.stderr).toContain('ANTHROPIC_API_KEY: required but not set');
    expect(result.stderr).toContain('BUDGET_PERIOD: "fortnight" is not one of day, week, month');
    expect(result.stderr).not.toContain(OPENAI_KEY);
  });
});
