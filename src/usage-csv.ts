import { once } from 'node:events';
import type { Duplex, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stringify } from 'csv-stringify';
import { microsToDecimal } from './core/money.js';
import type { CallRecord } from './core/usage.js';

/**
 * A server's calls as CSV, for /usage export and `npm run report -- --csv`: one row per model call, written
 * by csv-stringify as the rows come from the database, so a busy month is never one string in memory.
 * Times are UTC in ISO 8601; cost is USD with all six decimals (exact micro-dollars, no float between);
 * route_reason is why the call's turn went to the smart model (its escalation source), empty if it did not.
 */

/** The columns, in order, and how each is written from a call. */
const CSV_FIELDS: readonly (readonly [name: string, value: (call: CallRecord) => string | number])[] = [
  ['time_utc', (call) => new Date(call.chargedAt).toISOString()],
  ['member_id', (call) => call.userId],
  ['channel_id', (call) => call.channelId ?? ''],
  ['model', (call) => call.model],
  ['purpose', (call) => call.purpose],
  ['input_tokens', (call) => call.inputTokens],
  ['cached_input_tokens', (call) => call.cachedInputTokens],
  ['cache_write_tokens', (call) => call.cacheWriteTokens],
  ['output_tokens', (call) => call.outputTokens],
  ['cost_usd', (call) => microsToDecimal(call.costMicros)],
  ['route_reason', (call) => call.routeReason ?? ''],
];

export const CSV_COLUMNS: readonly string[] = CSV_FIELDS.map(([name]) => name);

/** A call as a CSV row, in CSV_COLUMNS' order (arrays, not objects: csv-stringify writes them a third faster). */
export function toCsvRow(call: CallRecord): (string | number)[] {
  return CSV_FIELDS.map(([, value]) => value(call));
}

/**
 * The calls as a stream of CSV bytes, with a header row; reads the calls only as fast as the stream is
 * read (it waits for 'drain'), and destroying it (a reader that stops early) ends the read of the calls.
 * A failure to read them destroys it with the error, which its reader sees.
 */
export function callsCsv(calls: AsyncIterable<CallRecord>): Readable {
  const csv = stringify({ header: true, columns: [...CSV_COLUMNS] });
  void (async () => {
    for await (const call of calls) {
      if (csv.destroyed) return;
      if (!csv.write(toCsvRow(call))) {
        await drainedOrClosed(csv);
        if (csv.destroyed) return;
      }
    }
    csv.end();
  })().catch((error: unknown) => csv.destroy(error as Error));
  return csv;
}

export type CollectedCsv =
  | { ok: true; csv: Buffer; rows: number }
  /** Over the limit: reading stopped there, after about `rows` calls. */
  | { ok: false; rows: number; limitBytes: number };

/**
 * The CSV of some calls in memory, for an upload: stops reading (and ends the database read) as soon as it
 * passes `limitBytes`, so an export too large to upload costs no more than the limit to find out.
 */
export async function collectCsv(
  calls: AsyncIterable<CallRecord>,
  limitBytes: number,
): Promise<CollectedCsv> {
  const counted = counting(calls);
  const csv = callsCsv(counted);
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of csv) {
      const piece = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      bytes += piece.length;
      if (bytes > limitBytes) return { ok: false, rows: counted.rows, limitBytes };
      chunks.push(piece);
    }
  } finally {
    csv.destroy();
  }
  return { ok: true, csv: Buffer.concat(chunks, bytes), rows: counted.rows };
}

/** Writes the calls as CSV into a file (or any stream); resolves to how many calls it wrote. */
export async function writeCsv(calls: AsyncIterable<CallRecord>, destination: Writable): Promise<number> {
  const counted = counting(calls);
  await pipeline(callsCsv(counted), destination);
  return counted.rows;
}

/** The calls, counting how many went by. */
function counting(calls: AsyncIterable<CallRecord>): AsyncIterable<CallRecord> & { rows: number } {
  const counted = {
    rows: 0,
    async *[Symbol.asyncIterator]() {
      for await (const call of calls) {
        counted.rows += 1;
        yield call;
      }
    },
  };
  return counted;
}

/** Waits until a stream can take more, or is gone; the listener of the other event is removed either way. */
async function drainedOrClosed(stream: Duplex): Promise<void> {
  const done = new AbortController();
  try {
    await Promise.race([
      once(stream, 'drain', { signal: done.signal }),
      once(stream, 'close', { signal: done.signal }),
    ]);
  } finally {
    done.abort();
  }
}
