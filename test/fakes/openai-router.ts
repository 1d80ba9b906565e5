import { createServer, request as forward } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CHECK_SCHEMA_NAME } from '../../src/core/escalation.js';
import { TRIAGE_SCHEMA_NAME } from '../../src/core/router.js';
import { type FakeOpenAI, type RecordedRequest, startFakeOpenAI } from './openai.js';

/**
 * OpenAI for many turns at once, or for calls made side by side: a turn streams a draft while the
 * router's triage (a structured completion) reads the question, then makes another structured completion
 * (the check), and these arrive in any order, so one fake's script queue would hand a draft's script to a
 * triage or a triage's to a check. This loopback router sends each request to a fake by what it is for:
 * streamed requests (drafts) to one, structured completions to the fake named for their JSON schema
 * (`draft_check`, `question_triage`), passing the bytes through untouched both ways; a client that goes
 * away is passed on too, so the fake sees its stream abandoned. A request it cannot place is answered 500
 * and kept in `strays`.
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

/** What a call to OpenAI is for, read from its body: a streamed draft, or a structured call's schema name. */
export type CallKind = 'draft' | 'check' | 'triage';

const KIND_OF_SCHEMA: Readonly<Record<string, CallKind>> = {
  [CHECK_SCHEMA_NAME]: 'check',
  [TRIAGE_SCHEMA_NAME]: 'triage',
};

export function callKindOf(body: string): CallKind | undefined {
  let parsed: { stream?: unknown; response_format?: { json_schema?: { name?: unknown } } };
  try {
    parsed = JSON.parse(body || '{}') as typeof parsed;
  } catch {
    return undefined;
  }
  if (parsed.stream === true) return 'draft';
  const schemaName = parsed.response_format?.json_schema?.name;
  return typeof schemaName === 'string' ? KIND_OF_SCHEMA[schemaName] : undefined;
}

export async function startOpenAIRouter(options: {
  /** Where each kind of call goes (base URLs with /v1); a kind without one is a stray. */
  urls: Partial<Record<CallKind, string>>;
  observe?(call: { body: string; kind: CallKind }): CallObserver | undefined;
  /** A request of no kind the router has a URL for: answered 500 (and not retried by the SDK). */
  stray?(body: string): void;
}): Promise<OpenAIRouter> {
  const targets = new Map(Object.entries(options.urls).map(([kind, url]) => [kind, new URL(url)]));
  const basePath = [...targets.values()][0]?.pathname ?? '/v1';
  const server = createServer((incoming, outgoing) => {
    const parts: Buffer[] = [];
    incoming.on('data', (part: Buffer) => parts.push(part));
    incoming.on('end', () => {
      const body = Buffer.concat(parts);
      const text = body.toString('utf8');
      const kind = callKindOf(text);
      const target = kind === undefined ? undefined : targets.get(kind);
      if (kind === undefined || target === undefined) {
        options.stray?.(text);
        const error = { error: { message: 'router: no fake for this request', type: 'fake_error' } };
        outgoing.writeHead(500, { 'content-type': 'application/json', 'x-should-retry': 'false' });
        outgoing.end(JSON.stringify(error));
        return;
      }
      const observer = options.observe?.({ body: text, kind });
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
    url: `http://127.0.0.1:${port}${basePath}`,
    close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      return closed;
    },
  };
}

/** Three OpenAI fakes behind one router: drafts to one, checks to another, triages to the third. */
export interface SplitOpenAI {
  readonly url: string;
  /** Gets every `stream: true` request: the drafts (and, with the router's fallback, nothing else). */
  readonly drafts: FakeOpenAI;
  /** Gets every structured call whose schema is the draft check's. */
  readonly checks: FakeOpenAI;
  /** Gets every structured call whose schema is the router's triage. */
  readonly triages: FakeOpenAI;
  /** Every request the three fakes received, in no particular order across them. */
  readonly requests: RecordedRequest[];
  /** Requests no fake had a script for, and requests the router could not place. */
  readonly unexpected: RecordedRequest[];
  /** Each response, when its last byte was handed to the client (Date.now()), or its client went away. */
  readonly ended: { kind: CallKind; at: number; finished: boolean }[];
  close(): Promise<void>;
}

export async function startSplitOpenAI(): Promise<SplitOpenAI> {
  const [drafts, checks, triages] = await Promise.all([
    startFakeOpenAI(),
    startFakeOpenAI(),
    startFakeOpenAI(),
  ]);
  const strays: RecordedRequest[] = [];
  const ended: SplitOpenAI['ended'] = [];
  const router = await startOpenAIRouter({
    urls: { draft: drafts.url, check: checks.url, triage: triages.url },
    observe: ({ kind }) => ({ closed: (finished) => ended.push({ kind, at: Date.now(), finished }) }),
    stray: (body) =>
      strays.push({ method: 'POST', path: '/v1/chat/completions', headers: {}, body: parseOrText(body) }),
  });
  const fakes = [drafts, checks, triages];
  return {
    url: router.url,
    drafts,
    checks,
    triages,
    ended,
    get requests() {
      return fakes.flatMap((fake) => fake.requests);
    },
    get unexpected() {
      return [...strays, ...fakes.flatMap((fake) => fake.unexpected)];
    },
    async close() {
      await Promise.all([router.close(), ...fakes.map((fake) => fake.close())]);
    },
  };
}

function parseOrText(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}
