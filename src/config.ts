import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { BUDGET_PERIODS, type Budget } from './core/budget.js';
import { CHECK_CATEGORIES, DEFAULT_POLICY, type EscalationPolicy } from './core/escalation.js';
import { parseUsdAmount } from './core/money.js';
import { DEFAULT_ROUTER, ROUTER_MODES, type RouterPolicy } from './core/router.js';
import { EXIT_CODES } from './exit-codes.js';
import {
  buildPriceTable,
  DEFAULT_PRICES,
  type PriceInUsdPerMillion,
  type PriceTable,
} from './core/pricing.js';
import { DEFAULT_ABORT_MARGIN_TOKENS } from './providers/limits.js';

export const DEFAULT_SYSTEM_PROMPT =
  'You are tierbot, a helpful assistant chatting in Discord. Answer clearly and concisely. ' +
  'Format with Discord markdown (bold, italics, lists, `code` and fenced code blocks with a language); ' +
  'Discord shows no tables or headings beyond ###, so avoid them. Messages from several people may be ' +
  'labelled with their display names.';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const snowflake = z.string().regex(/^\d{17,20}$/, 'must be a Discord id (17 to 20 digits)');

const usdAmount = z.string().transform((text, context) => {
  const parsed = parseUsdAmount(text);
  if (!parsed.ok) {
    context.addIssue({ code: 'custom', message: parsed.reason });
    return z.NEVER;
  }
  return parsed.micros;
});

const optionalText = z
  .string()
  .optional()
  .transform((text) => (text?.trim() ? text.trim() : undefined));

/** A comma-separated list of question categories, or "none"; unset: the default. */
const categoryList = (defaults: readonly (typeof CHECK_CATEGORIES)[number][]) =>
  z
    .string()
    .optional()
    .transform((text) =>
      text === undefined
        ? [...defaults]
        : text.trim() === 'none'
          ? []
          : text
              .split(',')
              .map((category) => category.trim())
              .filter((category) => category !== ''),
    )
    .pipe(z.array(z.enum(CHECK_CATEGORIES)));

/**
 * Every variable tierbot reads: its schema, whether it is a secret (its value is never repeated in an error
 * message), and what it is for, told to the admin when it is missing or wrong.
 */
const VARIABLES = {
  DISCORD_TOKEN: {
    part: 'discord',
    secret: true,
    purpose: 'the bot token (Discord developer portal → your application → Bot → Reset Token)',
    schema: z.string().regex(/^[\w-]+\.[\w-]+\.[\w-]+$/, 'is not shaped like a Discord bot token'),
  },
  DISCORD_APPLICATION_ID: {
    part: 'discord',
    secret: false,
    purpose: 'the application id, to register slash commands (derived from the token when unset)',
    schema: snowflake.optional(),
  },
  DISCORD_GUILD_ID: {
    part: 'discord',
    secret: false,
    purpose: 'a server to register slash commands in, for instant updates while developing',
    schema: snowflake.optional(),
  },
  DISCORD_API_URL: {
    part: 'discord',
    secret: false,
    purpose: "a base URL for Discord's REST API, for REST proxies and tests",
    schema: z.url().optional(),
  },
  OPENAI_API_KEY: {
    part: 'models',
    secret: true,
    purpose: 'the OpenAI API key that pays for the fast model (platform.openai.com → API keys)',
    schema: z.string().min(1),
  },
  ANTHROPIC_API_KEY: {
    part: 'models',
    secret: true,
    purpose: 'the Anthropic API key that pays for the smart model (console.anthropic.com → API keys)',
    schema: z.string().min(1),
  },
  OPENAI_BASE_URL: {
    part: 'models',
    secret: false,
    purpose: 'a base URL for the OpenAI API (a proxy or compatible gateway); read by the openai SDK',
    schema: z.url().optional(),
  },
  ANTHROPIC_BASE_URL: {
    part: 'models',
    secret: false,
    purpose: 'a base URL for the Anthropic API (a proxy); read by the @anthropic-ai/sdk SDK',
    schema: z.url().optional(),
  },
  DATABASE_URL: {
    part: 'ledger',
    secret: true,
    purpose:
      'a PostgreSQL database (postgres://user:password@host:5432/tierbot) for the ledger and every record, ' +
      'shared by bot processes on several hosts; unset: the SQLite file at DATABASE_PATH',
    schema: z
      .string()
      .regex(/^postgres(ql)?:\/\/\S+$/, 'is not a postgres:// URL')
      .optional(),
  },
  LEASE_SECONDS: {
    part: 'models',
    secret: false,
    purpose:
      "how long a bot process's lease lasts: when it stops renewing it (a crash, a lost host), its " +
      'reservations are charged at their worst case and freed by another process after this long (5 to 600)',
    schema: z.coerce.number().min(5).max(600).default(30),
  },
  DISCORD_SHARD_COUNT: {
    part: 'discord',
    secret: false,
    purpose:
      'how many gateway shards the bot runs in all: "auto" (Discord\'s recommendation) or a number from 1',
    schema: z.union([z.literal('auto'), z.coerce.number().int().min(1).max(100_000)]).optional(),
  },
  DISCORD_SHARD_IDS: {
    part: 'discord',
    secret: false,
    purpose:
      'the shards this process runs, comma-separated (e.g. 0,2), each below DISCORD_SHARD_COUNT; unset: all',
    schema: z
      .string()
      .optional()
      .transform((text) =>
        text === undefined || text.trim() === '' ? undefined : text.split(',').map((id) => id.trim()),
      )
      .pipe(
        z
          .array(z.string().regex(/^\d+$/, 'must be shard numbers'))
          .refine((ids) => new Set(ids.map(Number)).size === ids.length, 'lists a shard twice')
          .optional(),
      )
      .transform((ids) => ids?.map(Number)),
  },
  DATABASE_PATH: {
    part: 'ledger',
    secret: false,
    purpose: 'where the SQLite database lives (its directory is created)',
    schema: z.string().min(1).default('./data/tierbot.db'),
  },
  FAST_MODEL: {
    part: 'ledger',
    secret: false,
    purpose: 'the OpenAI model that answers first',
    schema: z.string().min(1).default('gpt-4o-mini'),
  },
  SMART_MODEL: {
    part: 'ledger',
    secret: false,
    purpose: 'the Anthropic model that answers when a question needs more',
    schema: z.string().min(1).default('claude-haiku-4-5'),
  },
  DEFAULT_USER_BUDGET_USD: {
    part: 'ledger',
    secret: false,
    purpose: "each user's budget per period unless a server sets another (0 to 10000, at most 4 decimals)",
    schema: usdAmount.default(1_000_000),
  },
  BUDGET_PERIOD: {
    part: 'ledger',
    secret: false,
    purpose: 'how often default budgets reset: calendar day, ISO week or month, in UTC',
    schema: z.enum(BUDGET_PERIODS).default('month'),
  },
  SERVER_BUDGET_USD: {
    part: 'ledger',
    secret: false,
    purpose: "a default cap on each server's total spend per period (unset: no cap)",
    schema: usdAmount.optional(),
  },
  MAX_OUTPUT_TOKENS: {
    part: 'models',
    secret: false,
    purpose: 'the most tokens one answer may have (a whole number from 1 to 16384)',
    schema: z.coerce.number().int().min(1).max(16_384).default(1024),
  },
  SYSTEM_PROMPT: {
    part: 'models',
    secret: false,
    purpose: 'the instructions every conversation starts with',
    schema: optionalText.transform((text) => text ?? DEFAULT_SYSTEM_PROMPT),
  },
  BOT_OPERATOR_IDS: {
    part: 'discord',
    secret: false,
    purpose: 'comma-separated Discord user ids allowed to run operator commands in any server',
    schema: z
      .string()
      .optional()
      .transform((text) =>
        (text ?? '')
          .split(',')
          .map((id) => id.trim())
          .filter((id) => id !== ''),
      )
      .pipe(z.array(snowflake)),
  },
  PRICES_FILE: {
    part: 'models',
    secret: false,
    purpose:
      'a JSON file of model prices (USD per million tokens) that overrides or adds to the built-in table',
    schema: optionalText,
  },
  USER_COOLDOWN_SECONDS: {
    part: 'discord',
    secret: false,
    purpose: 'seconds a person must leave between questions in Discord (0 to 3600; 0: no cooldown)',
    schema: z.coerce.number().int().min(0).max(3_600).default(0),
  },
  CHECK_CONFIDENCE_THRESHOLD: {
    part: 'models',
    secret: false,
    purpose: 'a draft the check accepts with less confidence than this is refined anyway (0 to 1)',
    schema: z.coerce.number().min(0).max(1).default(DEFAULT_POLICY.confidenceThreshold),
  },
  ALWAYS_REFINE: {
    part: 'models',
    secret: false,
    purpose: `comma-separated question categories whose drafts are always refined, or "none" (${CHECK_CATEGORIES.join(', ')})`,
    schema: categoryList(DEFAULT_POLICY.alwaysRefine),
  },
  ROUTER: {
    part: 'models',
    secret: false,
    purpose:
      'the router in front of the cascade: on (a triage sends hard questions straight to the smart model), ' +
      'shadow (the triage runs and is recorded, never acts) or off',
    schema: z.enum(ROUTER_MODES).default(DEFAULT_ROUTER.mode),
  },
  ROUTER_CONFIDENCE_THRESHOLD: {
    part: 'models',
    secret: false,
    purpose: 'a triage at least this sure sends a question to the smart model (0 to 1)',
    schema: z.coerce.number().min(0).max(1).default(DEFAULT_ROUTER.confidenceThreshold),
  },
  ROUTER_TIMEOUT_SECONDS: {
    part: 'models',
    secret: false,
    purpose: 'how long the draft is held back for the triage before it is shown anyway (0.1 to 10)',
    schema: z.coerce
      .number()
      .min(0.1)
      .max(10)
      .default(DEFAULT_ROUTER.timeoutMs / 1000),
  },
  ROUTER_UNCHECKED_CATEGORIES: {
    part: 'models',
    secret: false,
    purpose: `comma-separated categories whose drafts a confident fast triage sends without the check, or "none" (${CHECK_CATEGORIES.join(', ')})`,
    schema: categoryList(DEFAULT_ROUTER.uncheckedCategories),
  },
  ABORT_MARGIN_TOKENS: {
    part: 'models',
    secret: false,
    purpose:
      'output tokens charged beyond what an aborted answer delivered, for what the provider wrote before it noticed (0 to 1024)',
    schema: z.coerce.number().int().min(0).max(1_024).default(DEFAULT_ABORT_MARGIN_TOKENS),
  },
  FIRST_TOKEN_TIMEOUT_SECONDS: {
    part: 'models',
    secret: false,
    purpose: 'how long to wait for a model to start answering before aborting the request (1 to 120)',
    schema: z.coerce.number().min(1).max(120).default(20),
  },
  PROVIDER_DEADLINE_SECONDS: {
    part: 'models',
    secret: false,
    purpose: 'how long a model call may keep retrying before giving up or falling back (5 to 600)',
    schema: z.coerce.number().min(5).max(600).default(60),
  },
  RETRY_AFTER_CAP_SECONDS: {
    part: 'models',
    secret: false,
    purpose: "the longest wait honoured from a provider's retry-after before retrying (1 to 60)",
    schema: z.coerce.number().min(1).max(60).default(10),
  },
  METRICS_PORT: {
    part: 'metrics',
    secret: false,
    purpose:
      "a port for the operator's HTTP endpoints: /metrics (Prometheus), /healthz and /readyz (0 to 65535; " +
      '0: any free port; unset: no endpoints)',
    schema: z.coerce.number().int().min(0).max(65_535).optional(),
  },
  METRICS_HOST: {
    part: 'metrics',
    secret: false,
    purpose:
      'the address METRICS_PORT listens on (default 127.0.0.1, this host only; 0.0.0.0 for every interface)',
    schema: z.string().trim().min(1).default('127.0.0.1'),
  },
  LOG_LEVEL: {
    part: 'logging',
    secret: false,
    purpose: 'how much to log',
    schema: z.enum(LOG_LEVELS).default('info'),
  },
} as const;

type VariableName = keyof typeof VARIABLES;

/**
 * Which entry point needs a variable: the bot reads every part (the metrics endpoints are its alone),
 * `npm run deploy-commands` only Discord's (and logging), the terminal chat the models' and the ledger's
 * (and logging), `npm run report` only the ledger's: the database and the budgets. A part an entry point
 * does not read is not validated either: a placeholder DISCORD_TOKEN in .env does not stop the terminal
 * chat, nor a missing API key the report.
 */
type Part = (typeof VARIABLES)[VariableName]['part'];

type Variables = { [Name in VariableName]: z.output<(typeof VARIABLES)[Name]['schema']> };
type NamesIn<P extends Part> = {
  [Name in VariableName]: (typeof VARIABLES)[Name]['part'] extends P ? Name : never;
}[VariableName];
/** The parsed values of the variables of some parts. */
type VariablesOf<P extends Part> = Pick<Variables, NamesIn<P>>;

export interface DiscordConfig {
  token: string;
  applicationId: string;
  guildId: string | undefined;
  apiUrl: string | undefined;
  userCooldownMs: number;
  /** 'auto': Discord's recommendation; undefined: one shard unless shard ids are given. */
  shardCount: 'auto' | number | undefined;
  /** The shards this process runs; undefined: all of them. */
  shardIds: number[] | undefined;
}

type LogLevel = (typeof LOG_LEVELS)[number];

/** What reading the ledger needs: the database, the models' names and the default budgets. `npm run report` runs on this alone. */
export interface LedgerConfig {
  /** PostgreSQL, when set; otherwise the SQLite file at databasePath. */
  databaseUrl: string | undefined;
  databasePath: string;
  fastModel: string;
  smartModel: string;
  defaultUserBudget: Budget;
  defaultServerCap: Budget | undefined;
}

/** What the engine needs: models, keys, database, budgets. The terminal chat runs on this alone. */
export interface ModelConfig extends LedgerConfig {
  openai: { apiKey: string; baseUrl: string | undefined };
  anthropic: { apiKey: string; baseUrl: string | undefined };
  /** How long a process's lease on its reservations lasts unless renewed. */
  leaseMs: number;
  prices: PriceTable;
  maxOutputTokens: number;
  systemPrompt: string;
  providers: {
    firstTokenTimeoutMs: number;
    deadlineMs: number;
    retryAfterCapMs: number;
    abortMarginTokens: number;
  };
  policy: EscalationPolicy & { router: RouterPolicy };
  logLevel: LogLevel;
}

/** What registering the slash commands needs: Discord alone. */
export interface CommandsConfig {
  discord: DiscordConfig;
  logLevel: LogLevel;
}

/** Where the operator's HTTP endpoints (/metrics, /healthz, /readyz) listen. */
export interface MetricsConfig {
  port: number;
  host: string;
}

/** The bot's: everything. */
export interface Config extends ModelConfig, CommandsConfig {
  operatorIds: readonly string[];
  /** undefined: no metrics and no health endpoints (the default). */
  metrics: MetricsConfig | undefined;
}

/** Thrown when configuration is missing or invalid; its message names every problem and never a secret. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(
      `tierbot cannot start: ${problems.length === 1 ? 'a configuration problem' : `${problems.length} configuration problems`}\n` +
        problems.map((problem) => `  - ${problem}`).join('\n') +
        '\nSet these in the environment or in .env (see .env.example).',
    );
    this.name = 'ConfigError';
  }
}

/**
 * Runs a configuration loader; on a {@link ConfigError}, prints its message (every problem, no secret, no
 * stack trace) and ends the process with the configuration exit code.
 */
export function loadOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(EXIT_CODES.configuration);
  }
}

/**
 * The environment as tierbot sees it: `.env` in the working directory, if there is one, under the real
 * environment (a variable set in the environment wins).
 */
export function readEnvironment(envFile = '.env'): Record<string, string | undefined> {
  const fromFile = existsSync(envFile) ? parseEnv(readFileSync(envFile, 'utf8')) : {};
  return { ...fromFile, ...process.env };
}

/** The bot's configuration; throws a {@link ConfigError} naming every problem. */
export function loadConfig(environment: Record<string, string | undefined> = readEnvironment()): Config {
  const problems: string[] = [];
  const variables = readVariables(
    ['discord', 'models', 'ledger', 'logging', 'metrics'],
    environment,
    problems,
  );
  const prices = readPrices(environment, problems);
  const discord = variables && discordConfig(variables, problems);
  if (!variables || !prices || !discord || problems.length > 0) throw new ConfigError(unique(problems));
  return {
    ...modelConfig(variables, prices),
    discord,
    operatorIds: variables.BOT_OPERATOR_IDS,
    metrics:
      variables.METRICS_PORT === undefined
        ? undefined
        : { port: variables.METRICS_PORT, host: variables.METRICS_HOST },
  };
}

/** The configuration `npm run deploy-commands` needs: Discord's alone, no model keys. */
export function loadCommandsConfig(
  environment: Record<string, string | undefined> = readEnvironment(),
): CommandsConfig {
  const problems: string[] = [];
  const variables = readVariables(['discord', 'logging'], environment, problems);
  const discord = variables && discordConfig(variables, problems);
  if (!variables || !discord || problems.length > 0) throw new ConfigError(unique(problems));
  return { discord, logLevel: variables.LOG_LEVEL };
}

/** The configuration without Discord, for the terminal chat: the models' alone. */
export function loadModelConfig(
  environment: Record<string, string | undefined> = readEnvironment(),
): ModelConfig {
  const problems: string[] = [];
  const variables = readVariables(['models', 'ledger', 'logging'], environment, problems);
  const prices = readPrices(environment, problems);
  if (!variables || !prices || problems.length > 0) throw new ConfigError(unique(problems));
  return modelConfig(variables, prices);
}

/** The configuration `npm run report` needs: the database and the budgets, no keys and no Discord. */
export function loadLedgerConfig(
  environment: Record<string, string | undefined> = readEnvironment(),
): LedgerConfig {
  const problems: string[] = [];
  const variables = readVariables(['ledger'], environment, problems);
  if (!variables || problems.length > 0) throw new ConfigError(unique(problems));
  return ledgerConfig(variables);
}

/**
 * Parses the variables of `parts`, adding a problem for each one missing or wrong (in the order they are
 * declared); undefined when any is.
 */
function readVariables<P extends Part>(
  parts: readonly P[],
  environment: Record<string, string | undefined>,
  problems: string[],
): VariablesOf<P> | undefined {
  const names = (Object.keys(VARIABLES) as VariableName[]).filter((name) =>
    (parts as readonly Part[]).includes(VARIABLES[name].part),
  );
  // An empty value counts as unset, as a blank line in .env means "not configured".
  const present = Object.fromEntries(names.map((name) => [name, blankToUndefined(environment[name])]));
  const schema = z.object(Object.fromEntries(names.map((name) => [name, VARIABLES[name].schema])));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    problems.push(...parsed.error.issues.map((issue) => describeIssue(issue, present)));
    return undefined;
  }
  return parsed.data as VariablesOf<P>;
}

/**
 * The price table, and a problem for each configured model without a price. It runs on the raw values
 * even when other variables are wrong, so that one start-up names every problem at once.
 */
function readPrices(
  environment: Record<string, string | undefined>,
  problems: string[],
): PriceTable | undefined {
  const prices = loadPrices(blankToUndefined(environment.PRICES_FILE), problems);
  for (const name of ['FAST_MODEL', 'SMART_MODEL'] as const) {
    const model = blankToUndefined(environment[name]) ?? VARIABLES[name].schema.parse(undefined);
    if (prices && !prices.has(model)) {
      problems.push(
        `${name}: there is no price for "${clip(model)}", so its calls could not be charged — add it to PRICES_FILE ` +
          `or choose a model with a built-in price (${[...prices.keys()].join(', ')})`,
      );
    }
  }
  return prices;
}

function discordConfig(variables: VariablesOf<'discord'>, problems: string[]): DiscordConfig | undefined {
  const token = variables.DISCORD_TOKEN;
  const applicationId = variables.DISCORD_APPLICATION_ID ?? applicationIdFromToken(token);
  if (!applicationId) {
    problems.push(
      `DISCORD_APPLICATION_ID: could not be derived from DISCORD_TOKEN; set it — ${VARIABLES.DISCORD_APPLICATION_ID.purpose}`,
    );
    return undefined;
  }
  const shardIds = variables.DISCORD_SHARD_IDS;
  const shardCount = variables.DISCORD_SHARD_COUNT;
  if (shardIds !== undefined && shardCount === undefined) {
    problems.push(
      `DISCORD_SHARD_COUNT: required with DISCORD_SHARD_IDS — ${VARIABLES.DISCORD_SHARD_COUNT.purpose}`,
    );
  }
  const outside = typeof shardCount === 'number' ? (shardIds ?? []).filter((id) => id >= shardCount) : [];
  if (outside.length > 0) {
    problems.push(
      `DISCORD_SHARD_IDS: shard ${outside.join(', ')} is not below DISCORD_SHARD_COUNT (${String(shardCount)}) — ${VARIABLES.DISCORD_SHARD_IDS.purpose}`,
    );
  }
  return {
    token,
    applicationId,
    guildId: variables.DISCORD_GUILD_ID,
    apiUrl: variables.DISCORD_API_URL,
    userCooldownMs: variables.USER_COOLDOWN_SECONDS * 1000,
    shardCount,
    shardIds,
  };
}

function ledgerConfig(variables: VariablesOf<'ledger'>): LedgerConfig {
  return {
    databaseUrl: variables.DATABASE_URL,
    databasePath: variables.DATABASE_PATH,
    fastModel: variables.FAST_MODEL,
    smartModel: variables.SMART_MODEL,
    defaultUserBudget: { amountMicros: variables.DEFAULT_USER_BUDGET_USD, period: variables.BUDGET_PERIOD },
    defaultServerCap:
      variables.SERVER_BUDGET_USD === undefined
        ? undefined
        : { amountMicros: variables.SERVER_BUDGET_USD, period: variables.BUDGET_PERIOD },
  };
}

function modelConfig(
  variables: VariablesOf<'models' | 'ledger' | 'logging'>,
  prices: PriceTable,
): ModelConfig {
  return {
    ...ledgerConfig(variables),
    openai: { apiKey: variables.OPENAI_API_KEY, baseUrl: variables.OPENAI_BASE_URL },
    anthropic: { apiKey: variables.ANTHROPIC_API_KEY, baseUrl: variables.ANTHROPIC_BASE_URL },
    leaseMs: variables.LEASE_SECONDS * 1000,
    prices,
    maxOutputTokens: variables.MAX_OUTPUT_TOKENS,
    systemPrompt: variables.SYSTEM_PROMPT,
    providers: {
      firstTokenTimeoutMs: variables.FIRST_TOKEN_TIMEOUT_SECONDS * 1000,
      deadlineMs: variables.PROVIDER_DEADLINE_SECONDS * 1000,
      retryAfterCapMs: variables.RETRY_AFTER_CAP_SECONDS * 1000,
      abortMarginTokens: variables.ABORT_MARGIN_TOKENS,
    },
    policy: {
      confidenceThreshold: variables.CHECK_CONFIDENCE_THRESHOLD,
      alwaysRefine: variables.ALWAYS_REFINE,
      router: {
        mode: variables.ROUTER,
        confidenceThreshold: variables.ROUTER_CONFIDENCE_THRESHOLD,
        timeoutMs: Math.round(variables.ROUTER_TIMEOUT_SECONDS * 1000),
        uncheckedCategories: variables.ROUTER_UNCHECKED_CATEGORIES,
      },
    },
    logLevel: variables.LOG_LEVEL,
  };
}

function unique(problems: readonly string[]): string[] {
  return [...new Set(problems)];
}

function blankToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

function describeIssue(issue: z.core.$ZodIssue, present: Record<string, string | undefined>): string {
  const name = String(issue.path[0]) as VariableName;
  const variable = VARIABLES[name];
  const value = present[name];
  let problem: string;
  if (value === undefined) {
    problem = 'required but not set';
  } else if (variable.secret) {
    // Never repeat a secret: only our own format messages, which do not contain the value, are shown.
    problem = issue.code === 'invalid_format' ? `set but ${issue.message}` : 'set but not valid';
  } else {
    problem = `"${clip(value)}" ${describeProblem(issue)}`;
  }
  return `${name}: ${problem} — ${variable.purpose}`;
}

function describeProblem(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_value':
      return `is not one of ${issue.values.join(', ')}`;
    case 'invalid_type':
      return `is not a ${issue.expected}`;
    case 'too_small':
      return `is out of range (at least ${issue.minimum})`;
    case 'too_big':
      return `is out of range (at most ${issue.maximum})`;
    case 'invalid_format':
      return issue.format === 'url' ? 'is not a URL' : issue.message;
    default:
      return `is not valid: ${issue.message}`;
  }
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

/**
 * A bot token's first segment is the bot's user id in base64, and a bot's user id is its application id.
 * https://discord.com/developers/docs/reference#authentication
 */
export function applicationIdFromToken(token: string): string | undefined {
  const firstSegment = token.split('.')[0] ?? '';
  const decoded = Buffer.from(firstSegment, 'base64url').toString('utf8');
  return /^\d{17,20}$/.test(decoded) ? decoded : undefined;
}

const priceFileSchema = z.record(
  z.string().min(1),
  z.strictObject({
    input: z.number(),
    cachedInput: z.number().nullable().optional(),
    cacheWrite: z.number().nullable().optional(),
    output: z.number(),
  }),
);

function loadPrices(path: string | undefined, problems: string[]): PriceTable | undefined {
  let overrides: Record<string, PriceInUsdPerMillion> = {};
  if (path?.trim()) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      const reason =
        (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
      problems.push(`PRICES_FILE: cannot read ${path} (${reason}) — ${VARIABLES.PRICES_FILE.purpose}`);
      return undefined;
    }
    const parsed = priceFileSchema.safeParse(json);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        problems.push(
          `PRICES_FILE: ${path} at ${issue.path.join('.') || 'the top level'}: ${issue.message}; expected ` +
            '{ "model": { "input": 0.15, "cachedInput": 0.075, "cacheWrite": null, "output": 0.6 } } in USD per million tokens',
        );
      }
      return undefined;
    }
    overrides = parsed.data;
  }
  const built = buildPriceTable({ ...DEFAULT_PRICES, ...overrides });
  if (!built.ok) {
    for (const problem of built.problems) problems.push(`PRICES_FILE: ${problem}`);
    return undefined;
  }
  return built.table;
}
