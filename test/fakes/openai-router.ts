import { createServer, request as forward } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type FakeOpenAI, startFakeOpenAI } from './openai.js';

/**
 * OpenAI for many turns at once: each turn streams a draft, then makes one plain completion (the check),
 * and concurrent turns send these in any order, so one fake's script queue would hand a draft's script to
 * a check. This loopback router sends streamed requests to one fake and the others to a second one,
 * passing the bytes through untouched both ways; a client that goes away is passed on too, so the fake
 * sees its stream abandoned.
 */
export interface OpenAIRouter {
  /** The base URL (with /v1) to give the SDK. */
  readonly url: string;
  close(): Promise<void>;
}

/** What a caller may watch of one routed call: each chunk of the response, and its end. */
export interface CallObserver {
  chunk?(chunk: Buffer): void;
  /** `finished`: the whole response reached the client; false when the client went away first. */
  closed?(finished: boolean): void;
}

export async function startOpenAIRouter(options: {
  draftsUrl: string;
  checksUrl: string;
  observe?(call: { body: string; isStream: boolean }): CallObserver | undefined;
}): Promise<OpenAIRouter> {
  const drafts = new URL(options.draftsUrl);
  const checks = new URL(options.checksUrl);
  const server = createServer((incoming, outgoing) => {
    const parts: Buffer[] = [];
    incoming.on('data', (part: Buffer) => parts.push(part));
    incoming.on('end', () => {
      const body = Buffer.concat(parts);
      const text = body.toString('utf8');
      const isStream = (JSON.parse(text || '{}') as { stream?: unknown }).stream === true;
      const observer = options.observe?.({ body: text, isStream });
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
            observer?.chunk?.(chunk);
            outgoing.write(chunk);
          });
          response.on('end', () => outgoing.end());
          response.on('error', () => outgoing.destroy());
        },
      );
      upstream.on('error', () => outgoing.destroy());
      outgoing.on('close', () => {
        observer?.closed?.(outgoing.writableFinished);
        // The client gave up (a timeout, a shutdown): the fake sees the disconnect as well.
        if (!outgoing.writableFinished) upstream.destroy();
      });
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${drafts.pathname}`,
    close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      return closed;
    },
  };
}

/** Two OpenAI fakes behind one router: drafts to one, checks to the other. */
export interface SplitOpenAI {
  readonly url: string;
  /** Gets every `stream: true` request: the drafts. */
  readonly drafts: FakeOpenAI;
  /** Gets every other request: the checks. */
  readonly checks: FakeOpenAI;
  close(): Promise<void>;
}

export async function startSplitOpenAI(): Promise<SplitOpenAI> {
  const [drafts, checks] = await Promise.all([startFakeOpenAI(), startFakeOpenAI()]);
  const router = await startOpenAIRouter({ draftsUrl: drafts.url, checksUrl: checks.url });
  return {
    url: router.url,
    drafts,
    checks,
    async close() {
      await Promise.all([router.close(), drafts.close(), checks.close()]);
    },
  };
}
