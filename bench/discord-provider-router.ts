import { type CallKind, startOpenAIRouter } from '../test/fakes/openai-router.js';

/*
 * What the bot takes for api.openai.com during the Discord benchmarks: the loopback router of test/fakes in the
 * benchmark's process, in front of OpenAI fakes. Streaming requests (drafts) go to one and structured
 * completions to the one for their schema (checks, triages), so that concurrent turns never take each
 * other's script; bytes pass through as
 * the fakes wrote them. On the way it times each call per question (the question's number is in every
 * request body), because the bot runs in another process and cannot be asked.
 */

/** Per question: time inside provider calls, and when its first content token was handed to the bot. */
export interface ProviderRecord {
  /** From the request's arrival here to the response's last byte handed to the bot, summed over calls. */
  spanMs: number;
  /** Date.now() when the first non-empty content delta was written to the bot. */
  firstContentAt?: number;
}

export interface ProviderRouter {
  /** The OpenAI base URL (with /v1) to give the bot. */
  readonly url: string;
  readonly records: ReadonlyMap<number, ProviderRecord>;
  /** Check calls that have finished, in total. */
  readonly checksDone: number;
  close(): Promise<void>;
}

// The role delta carries `"content":""`; the first real token is the first non-empty one.
const FIRST_CONTENT = /"delta":\{"content":"[^"]/;

export async function startProviderRouter(options: {
  urls: Partial<Record<CallKind, string>>;
  /** Finds the question's number in a request body; -1 when there is none. */
  questionOf(body: string): number;
}): Promise<ProviderRouter> {
  const records = new Map<number, ProviderRecord>();
  let checksDone = 0;
  const router = await startOpenAIRouter({
    urls: options.urls,
    observe({ body, kind }) {
      const isStream = kind === 'draft';
      const startedAt = performance.now();
      const index = options.questionOf(body);
      const record = records.get(index) ?? { spanMs: 0 };
      records.set(index, record);
      return {
        chunk(chunk) {
          if (isStream && record.firstContentAt === undefined && FIRST_CONTENT.test(chunk.toString())) {
            record.firstContentAt = Date.now();
          }
        },
        closed(finished) {
          record.spanMs += performance.now() - startedAt;
          if (finished && kind === 'check') checksDone += 1;
        },
      };
    },
  });
  return {
    url: router.url,
    records,
    get checksDone() {
      return checksDone;
    },
    close: () => router.close(),
  };
}
