import { afterEach, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/core/chat.js';
import {
  anthropicErrors,
  CONTEXT_WINDOW_TOKENS,
  isCountRequest,
  PDF_PAGE_TOKENS,
} from '../fakes/anthropic.js';
import {
  type EngineHarness,
  MAX_OUTPUT_TOKENS,
  PERSON,
  runTurn,
  startEngine,
  turnRequest,
} from '../support/engine.js';
import { FAST_MODEL, SMART_MODEL } from '../support/ledger.js';
import { escapedNamePdf, objectStreamPdf, plainPdf } from '../support/pdfs.js';

/**
 * What a question about a PDF reserves, through the engine as the bot runs it: answerTurn, the real
 * gateway and SDKs, the SQLite ledger, and the loopback Anthropic API, which counts and bills each PDF by
 * its real pages. Two crafted PDFs once passed for one page each, so their reservation was a fraction of
 * the bill and one message could carry a person past their budget.
 */

const PDFS = [
  { name: 'a normal 3-page PDF', pdf: plainPdf(3), pages: 3 },
  { name: 'a 50-page PDF whose pages spell their type /P#61ge', pdf: escapedNamePdf(50), pages: 50 },
  {
    name: 'a 50-page PDF whose pages sit in a predictor-encoded object stream',
    pdf: objectStreamPdf(50),
    pages: 50,
  },
];

let engine: EngineHarness | undefined;
afterEach(async () => {
  await engine?.close();
  engine = undefined;
});

async function restart(userBudgetMicros = 1_000_000): Promise<EngineHarness> {
  await engine?.close();
  engine = await startEngine({ userBudgetMicros });
  return engine;
}

const question = (pdf: Uint8Array): ChatMessage[] => [
  {
    role: 'user',
    content: [
      { type: 'text', text: 'Summarise this' },
      { type: 'pdf', data: pdf, name: 'report.pdf' },
    ],
  },
];

interface LedgerRow {
  purpose: string;
  model: string;
  outcome: string;
  inputTokens: number;
  reservedMicros: number;
  costMicros: number;
}

async function ledgerRows(current: EngineHarness): Promise<LedgerRow[]> {
  await current.storage.flush();
  return current.database.query<LedgerRow>(
    `SELECT purpose, model, outcome, input_tokens AS "inputTokens", reserved_micros AS "reservedMicros",
            cost_micros AS "costMicros"
       FROM usage_ledger ORDER BY id`,
  );
}

/** The person's spending this period, held reservations included: never above their budget. */
async function expectWithinBudget(current: EngineHarness, budgetMicros: number) {
  const own = (await current.storage.budgets.standings(PERSON)).find((limit) => limit.kind === 'user');
  expect(own?.budget.amountMicros).toBe(budgetMicros);
  expect((own?.spentMicros ?? 0) + (own?.reservedMicros ?? 0)).toBeLessThanOrEqual(budgetMicros);
}

const messageRequests = (current: EngineHarness) =>
  current.anthropic.requests.filter((request) => !isCountRequest(request));

/** Asks about the PDF with a plentiful budget; what Anthropic billed for the answer. */
async function billFor(pdf: Uint8Array, pages: number): Promise<number> {
  const current = await restart();
  current.anthropic.knowPdf(pdf, pages);
  current.anthropic.script({ type: 'stream', text: 'A summary.' });
  await runTurn(current, turnRequest(question(pdf)));
  const [row] = await ledgerRows(current);
  return row?.costMicros ?? 0;
}

describe.each(PDFS)('$name', ({ pdf, pages }) => {
  it('when a person asks about it, then the call reserves at least what Anthropic bills for every real page, from its count', async () => {
    const current = await restart();
    current.anthropic.knowPdf(pdf, pages);
    current.anthropic.script({ type: 'stream', text: 'A summary.' });

    const { result } = await runTurn(current, turnRequest(question(pdf)));

    expect(result).toMatchObject({ status: 'answered', text: 'A summary.', models: [SMART_MODEL] });
    const [row, ...others] = await ledgerRows(current);
    expect(others).toEqual([]);
    expect(row).toMatchObject({ purpose: 'direct', model: SMART_MODEL, outcome: 'settled' });
    // Anthropic billed every page, and the reservation covered the bill.
    expect(row?.inputTokens).toBeGreaterThanOrEqual(pages * PDF_PAGE_TOKENS);
    expect(row?.reservedMicros).toBeGreaterThanOrEqual(row?.costMicros ?? Infinity);
    await expectWithinBudget(current, 1_000_000);
    // Counted first (free), then asked.
    expect(current.anthropic.requests.map(isCountRequest)).toEqual([true, false]);
    expect(current.anthropic.unexpected).toEqual([]);
  });

  it('when the person has one micro-dollar less than Anthropic would bill for it, then the turn is refused before any generation and nothing is spent', async () => {
    const billMicros = await billFor(pdf, pages);
    const current = await restart(billMicros - 1);
    current.anthropic.knowPdf(pdf, pages);

    const { result } = await runTurn(current, turnRequest(question(pdf)));

    expect(result.status).toBe('denied');
    expect(result.warnings[0]).toMatch(/^Not enough left in your budget: /);
    // Only the free count reached Anthropic: no message was generated, none billed.
    expect(current.anthropic.requests.length).toBeGreaterThan(0);
    expect(messageRequests(current)).toEqual([]);
    expect(await ledgerRows(current)).toEqual([]);
    expect(current.anthropic.unexpected).toEqual([]);
    await expectWithinBudget(current, billMicros - 1);
  });
});

describe('when the count cannot be had', () => {
  const pdf = escapedNamePdf(50);
  const windowWorthMicros = (current: EngineHarness) =>
    current.ledger.worstCaseMicros(SMART_MODEL, CONTEXT_WINDOW_TOKENS, MAX_OUTPUT_TOKENS);

  it('when Anthropic fails to count the PDF, then the call reserves the context window’s worth and is answered', async () => {
    const current = await restart();
    current.anthropic.knowPdf(pdf, 50);
    current.anthropic.scriptCount(anthropicErrors.server());
    current.anthropic.script({ type: 'stream', text: 'A summary.' });

    const { result } = await runTurn(current, turnRequest(question(pdf)));

    expect(result.status).toBe('answered');
    const [row] = await ledgerRows(current);
    expect(row?.reservedMicros).toBe(windowWorthMicros(current));
    expect(row?.reservedMicros).toBeGreaterThanOrEqual(row?.costMicros ?? Infinity);
    await expectWithinBudget(current, 1_000_000);
  });

  it('when Anthropic fails to count the PDF and the budget cannot cover the context window, then the turn is refused with a note before any generation', async () => {
    // Enough for the 50 pages as counted (about $0.21 reserved), not for the whole window ($0.2526).
    const current = await restart(240_000);
    current.anthropic.knowPdf(pdf, 50);
    current.anthropic.scriptCount(anthropicErrors.overloaded());

    const { result } = await runTurn(current, turnRequest(question(pdf)));

    expect(result.status).toBe('denied');
    expect(result.warnings[0]).toMatch(
      /^Not enough left in your budget: \$0\.0000 of \$0\.2400 spent this month; \$0\.2400 left, and this answer could cost up to \$0\.2526\./,
    );
    expect(messageRequests(current)).toEqual([]);
    expect(await ledgerRows(current)).toEqual([]);
  });

  it('when the PDF is longer than the context window, then the call reserves the window’s worth, Anthropic refuses it as too long, and nothing is charged', async () => {
    const current = await restart();
    const long = plainPdf(100);
    current.anthropic.knowPdf(long, 100);
    current.anthropic.script({ type: 'stream', text: 'never sent' });

    await expect(runTurn(current, turnRequest(question(long)))).rejects.toMatchObject({
      provider: 'anthropic',
      kind: 'invalid_request',
      status: 400,
    });

    const [row] = await ledgerRows(current);
    expect(row).toMatchObject({ reservedMicros: windowWorthMicros(current), costMicros: 0 });
    expect(await current.ledger.openReservationCount()).toBe(0);
    await expectWithinBudget(current, 1_000_000);
  });
});

describe('a PDF sent to GPT-4o Mini (escalation off)', () => {
  it('when escalation is off, then the PDF goes to GPT-4o Mini under a reservation of its whole context window, and nothing is counted', async () => {
    const current = await restart();
    const pdf = escapedNamePdf(50);
    current.openai.script({ type: 'stream', text: 'A summary.' });

    const { result } = await runTurn(current, turnRequest(question(pdf), { mode: 'off' }));

    expect(result).toMatchObject({ status: 'answered', models: [FAST_MODEL] });
    expect(current.anthropic.requests).toEqual([]);
    const [row] = await ledgerRows(current);
    expect(row?.reservedMicros).toBe(current.ledger.worstCaseMicros(FAST_MODEL, 128_000, MAX_OUTPUT_TOKENS));
  });
});
