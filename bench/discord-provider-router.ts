import { createServer, request as forward } from 'node:http';
import type { AddressInfo } from 'node:net';

/*
 * What the bot takes for api.openai.com during the Discord benchmark: a loopback router in the benchmark's
 * process, in front of two OpenAI fakes. Streaming requests (drafts) go to one and plain completions
 * (checks) to the other, so that concurrent turns never take each other's script; bytes pass through as
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
  draftsUrl: string;
  checksUrl: string;
  /** Finds the question's number in a request body; -1 when there is none. */
  questionOf(body: string): number;
}): Promise<ProviderRouter> {
  const records = new Map<number, ProviderRecord>();
  let checksDone = 0;
  const drafts = new URL(options.draftsUrl);
  const checks = new URL(options.checksUrl);

  const server = createServer((incoming, outgoing) => {
    const startedAt = performance.now();
    const parts: Buffer[] = [];
    incoming.on('data', (part: Buffer) => parts.push(part));
    incoming.on('end', () => {
      const body = Buffer.concat(parts);
      const text = body.toString('utf8');
      const isStream = text.includes('"stream":true');
      const index = options.questionOf(text);
      let record = records.get(index);
      if (!record) {
        record = { spanMs: 0 };
        records.set(index, record);
      }
      const target = isStream ? drafts : checks;
      const upstream = forward(
        {
          host: target.hostname,
          port: target.port,
          method: incoming.method,
          path: incoming.url,
          headers: incoming.headers,
        },
        (response) => {
          outgoing.writeHead(response.statusCode ?? 502, response.headers);
          outgoing.flushHeaders();
          response.on('data', (chunk: Buffer) => {
            if (isStream && record.firstContentAt === undefined && FIRST_CONTENT.test(chunk.toString())) {
              record.firstContentAt = Date.now();
            }
            outgoing.write(chunk);
          });
          response.on('end', () => outgoing.end());
          response.on('error', () => outgoing.destroy());
        },
      );
      upstream.on('error', () => outgoing.destroy());
      outgoing.on('close', () => {
        record.spanMs += performance.now() - startedAt;
        if (outgoing.writableFinished) {
          if (!isStream) checksDone += 1;
        } else {
          // The bot gave up (a timeout, a shutdown): the fake sees the disconnect as well.
          upstream.destroy();
        }
      });
      upstream.end(body);
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${drafts.pathname}`,
    records,
    get checksDone() {
      return checksDone;
    },
    close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      return closed;
    },
  };
}
