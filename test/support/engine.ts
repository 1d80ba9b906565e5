import type { ChatMessage, StructuredRequest } from '../../src/core/chat.js';
import {
  CHECK_MAX_OUTPUT_TOKENS,
  CHECK_SCHEMA,
  CHECK_SCHEMA_NAME,
  CHECK_SYSTEM_PROMPT,
  checkPrompt,
  DEFAULT_POLICY,
  type EscalationPolicy,
} from '../../src/core/escalation.js';
import { DEFAULT_ROUTER, type RouterPolicy } from '../../src/core/router.js';
import type { CallPurpose } from '../../src/core/ledger.js';
import {
  answerTurn,
  questionText,
  type TurnDependencies,
  type TurnEvent,
  type TurnRequest,
  type TurnResult,
} from '../../src/core/turn.js';
import type { TurnBook } from '../../src/db/turns.js';
import type { FakeOpenAI } from '../fakes/openai.js';
import type { SplitOpenAI } from '../fakes/openai-router.js';
import { FAST_MODEL, SMART_MODEL } from './ledger.js';
import {
  type OpenAIEndpoint,
  type ProviderHarness,
  type ProviderHarnessOptions,
  startProviderHarness,
} from './providers.js';

export const SYSTEM_PROMPT = 'You are tierbot.';
export const MAX_OUTPUT_TOKENS = 512;

/** Who asks in the engine's tests: one person in one channel of one server. */
export const PERSON = {
  userId: 'user-1',
  guildId: 'guild-1',
  channelId: 'channel-1',
};

export interface EngineHarness<
  OpenAIFake extends OpenAIEndpoint = FakeOpenAI,
> extends ProviderHarness<OpenAIFake> {
  dependencies: TurnDependencies;
  turns: TurnBook;
}

export const modelLabel = (model: string) => (model.startsWith('claude') ? 'Claude Haiku' : 'GPT-4o Mini');

/**
 * The turn engine as the bot wires it: the provider harness (real SDK clients against the loopback fakes,
 * the real gateway and ledger on a temporary SQLite file) plus the turn log on the same database. The
 * router is off: tests script today's cascade call by call.
 */
export async function startEngine(options: ProviderHarnessOptions = {}): Promise<EngineHarness> {
  return withEngine(await startProviderHarness(options), DEFAULT_POLICY);
}

/**
 * The engine with the router on (or as `router` says), and a fake per kind of OpenAI call behind a router
 * that tells them apart by schema name: `openai.drafts`, `openai.triages`, `openai.checks`.
 */
export async function startRouterEngine(
  options: ProviderHarnessOptions & { router?: Partial<RouterPolicy> } = {},
): Promise<EngineHarness<SplitOpenAI>> {
  const harness = await startProviderHarness({ ...options, splitOpenAI: true });
  return withEngine(harness, { ...DEFAULT_POLICY, router: { ...DEFAULT_ROUTER, ...options.router } });
}

function withEngine<OpenAIFake extends OpenAIEndpoint>(
  harness: ProviderHarness<OpenAIFake>,
  policy: EscalationPolicy,
): EngineHarness<OpenAIFake> {
  const { turns, notices } = harness.storage;
  const dependencies: TurnDependencies = {
    models: harness.gateway,
    fastModel: FAST_MODEL,
    smartModel: SMART_MODEL,
    modelLabel,
    systemPrompt: SYSTEM_PROMPT,
    maxOutputTokens: MAX_OUTPUT_TOKENS,
    policy,
    budgetNotice: (member) => notices.forUser(member),
    turns,
  };
  return Object.assign(harness, { dependencies, turns });
}

/** `/ask` in auto mode with one question (or a whole conversation ending with it); override any field. */
export function turnRequest(
  question: string | readonly ChatMessage[],
  overrides: Partial<TurnRequest> = {},
): TurnRequest {
  return {
    turnId: 'turn-1',
    owner: PERSON,
    conversation: typeof question === 'string' ? [{ role: 'user', content: question }] : question,
    mode: 'auto',
    choice: 'auto',
    ...overrides,
  };
}

/** Runs one turn and keeps every event it emitted. */
export async function runTurn(
  engine: Pick<EngineHarness<OpenAIEndpoint>, 'dependencies'>,
  request: TurnRequest,
): Promise<{ result: TurnResult; events: TurnEvent[] }> {
  const events: TurnEvent[] = [];
  const result = await answerTurn(request, engine.dependencies, (event) => events.push(event));
  return { result, events };
}

export interface TurnLedgerRow {
  purpose: CallPurpose;
  provider: string;
  model: string;
  outcome: string;
  costMicros: number;
}

/** The ledger rows charged under one turn, oldest first. */
export async function turnLedgerRows(
  engine: EngineHarness<OpenAIEndpoint>,
  turnId: string,
): Promise<TurnLedgerRow[]> {
  await engine.storage.flush();
  return engine.database.query<TurnLedgerRow>(
    `SELECT purpose, provider, model, outcome, cost_micros AS "costMicros"
       FROM usage_ledger WHERE turn_id = $1 ORDER BY id`,
    [turnId],
  );
}

/** The row the turn log kept for one turn, as stored. */
export async function turnRow(
  engine: EngineHarness<OpenAIEndpoint>,
  turnId: string,
): Promise<Record<string, unknown> | undefined> {
  await engine.storage.flush();
  const [row] = await engine.database.query('SELECT * FROM turns WHERE turn_id = $1', [turnId]);
  return row;
}

/** What the draft of this conversation reserves: its input estimate and every allowed output token. */
export function draftWorstCaseMicros(
  engine: EngineHarness<OpenAIEndpoint>,
  conversation: readonly ChatMessage[],
): number {
  const request = {
    model: FAST_MODEL,
    system: SYSTEM_PROMPT,
    messages: conversation,
    maxOutputTokens: MAX_OUTPUT_TOKENS,
  };
  return engine.ledger.worstCaseMicros(
    FAST_MODEL,
    engine.openaiModel.estimateInputTokens(request),
    MAX_OUTPUT_TOKENS,
  );
}

/** What the check of a draft reserves. */
export function checkWorstCaseMicros(
  engine: EngineHarness<OpenAIEndpoint>,
  conversation: readonly ChatMessage[],
  draft: string,
): number {
  const request: StructuredRequest = {
    model: FAST_MODEL,
    system: CHECK_SYSTEM_PROMPT,
    messages: [{ role: 'user', content: checkPrompt(questionText(conversation), draft) }],
    maxOutputTokens: CHECK_MAX_OUTPUT_TOKENS,
    schemaName: CHECK_SCHEMA_NAME,
    schema: CHECK_SCHEMA,
  };
  return engine.ledger.worstCaseMicros(
    FAST_MODEL,
    engine.openaiModel.estimateInputTokens(request),
    CHECK_MAX_OUTPUT_TOKENS,
  );
}

/** The check's answer as the OpenAI fake sends it: a non-streaming completion holding the JSON verdict. */
export function checkSays(
  verdict: 'accept' | 'refine',
  reason: string,
  category: string,
  confidence: number,
  usage?: { promptTokens: number; completionTokens: number },
) {
  return {
    type: 'completion' as const,
    content: JSON.stringify({ verdict, reason, category, confidence }),
    ...(usage ? { usage } : {}),
  };
}

/** The triage's answer as the OpenAI fake sends it: a structured completion; confidence in whole percent. */
export function triageSays(
  route: 'fast' | 'smart',
  category: string,
  confidencePercent: number,
  usage?: { promptTokens: number; completionTokens: number },
) {
  return {
    type: 'completion' as const,
    content: JSON.stringify({ route: `${route} ${category}`, confidence: confidencePercent }),
    ...(usage ? { usage } : {}),
  };
}
