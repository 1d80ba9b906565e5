import { pipeline, Readable, type Writable } from 'node:stream';
import { pipeline as pipelineToEnd } from 'node:stream/promises';
import { stringify } from 'csv-stringify';
import { microsToDecimal } from './core/money.js';
import type { CallRecord } from './core/usage.js';

/**
 * A server's calls as CSV, for /usage export and `npm run report -- --csv`: one row per model call, written
 * by csv-stringify as the rows come from the database, so a busy month is never one string in memory.
 * Times are UTC in ISO 8601; cost is USD with all six decimals (exact micro-dollars, no float between);
 * route_reason is why the call's turn went to the smart model (its escalation source), empty if it did not.
 */

export const CSV_COLUMNS = [
  'time_utc',
  'member_id',
  'channel_id',
  'model',
  'purpose',
  'input_tokens',
  'cached_input_tokens',
  'cache_write_tokens',
  'output_tokens',
  'cost_usd',
  'route_reason',
] as const;

type CsvRecord = Record<(typeof CSV_COLUMNS)[number], string | number>;

export function toCsvRecord(call: CallRecord): CsvRecord {
  return {
    time_utc: new Date(call.chargedAt).toISOString(),
    member_id: call.userId,
    channel_id: call.channelId ?? '',
    model: call.model,
    purpose: call.purpose,
    input_tokens: call.inputTokens,
    cached_input_tokens: call.cachedInputTokens,
    cache_write_tokens: call.cacheWriteTokens,
    output_tokens: call.outputTokens,
    cost_usd: microsToDecimal(call.costMicros),
    route_reason: call.routeReason ?? '',
  };
}

/**
 * The calls as a stream of CSV bytes, with a header row; reads the calls only as fast as it is read, and
 * destroying it (a reader that stops early) ends the read of the calls too.
 */
export function callsCsv(calls: AsyncIterable<CallRecord>): Readable {
  async function* records() {
    for await (const call of calls) yield toCsvRecord(call);
  }
  const csv = stringify({ header: true, columns: [...CSV_COLUMNS] });
  // A failure on either side (or the CSV destroyed early) destroys the other: the reader sees the error.
  pipeline(Readable.from(records()), csv, () => {});
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
  await pipelineToEnd(callsCsv(counted), destination);
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
