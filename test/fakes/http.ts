import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The wire-level plumbing shared by the vendor fakes: a loopback server, a queue of scripted responses,
 * a record of every request, and a reply object that writes JSON or server-sent events while noticing
 * when the client goes away. The vendor files only decide *what* to send.
 */

export interface RecordedRequest {
  method: string;
  /** The URL path without the query string, e.g. `/v1/chat/completions`. */
  path: string;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** The parsed JSON body; the raw text when it is not JSON; undefined when empty. */
  // `any`: tests read vendor request fields straight off the body.
  body: any;
}

export interface ScriptedServer<Script> {
  /** The origin plus the vendor's base path (what the SDK wants as `baseURL`). */
  readonly url: string;
  /** Every request the server received, scripted or not, in arrival order. */
  readonly requests: RecordedRequest[];
  /** Requests that found no scripted response (or one that did not fit them); each was answered 500. */
  readonly unexpected: RecordedRequest[];
  /** Responses whose client disconnected before the response finished. */
  readonly closedEarly: number;
  /** Queues responses, consumed in order by the scripted route. */
  script(...responses: Script[]): void;
  /** Ends every response in flight, clears every timer and stops listening. */
  close(): Promise<void>;
}

/** Why a scripted response cannot answer this request; the server then fails it loudly. */
export class ScriptMismatch extends Error {}

export interface ScriptedServerOptions<Script> {
  /** The one route that consumes the script queue, e.g. `POST /v1/messages`. */
  route: { method: string; path: string };
  /** Appended to the origin to form `url` (OpenAI's SDK wants `/v1`, Anthropic's wants nothing). */
  basePath: string;
  /** Writes one scripted response. Throw `ScriptMismatch` when the script does not fit the request. */
  respond(script: Script, request: RecordedRequest, reply: Reply): Promise<void>;
  /**
   * Answers a request off the scripted route, for an endpoint the fake works out from what the test told
   * it rather than from the queue (Anthropic's token count). Throw `ScriptMismatch` when the test did not
   * tell it enough; a request on no route fails loudly.
   */
  respondOffRoute?(request: RecordedRequest, reply: Reply): Promise<'answered' | 'no route'>;
}

export async function startScriptedServer<Script>(
  options: ScriptedServerOptions<Script>,
): Promise<ScriptedServer<Script>> {
  const queue: Script[] = [];
  const requests: RecordedRequest[] = [];
  const unexpected: RecordedRequest[] = [];
  const replies = new Set<Reply>();
  let closedEarly = 0;
  let isClosing = false;
  let closing: Promise<void> | undefined;

  // A test mistake must fail loudly, and must not be hidden by the SDK retrying into the next script.
  const failLoudly = (request: RecordedRequest, reply: Reply, reason: string) => {
    unexpected.push(request);
    const body = { type: 'error', error: { type: 'fake_error', message: reason } };
    void reply.json(500, body, { 'x-should-retry': 'false' });
  };

  const server = createServer((incoming, outgoing) => {
    const reply = new Reply(incoming, outgoing);
    replies.add(reply);
    outgoing.on('close', () => {
      replies.delete(reply);
      if (!outgoing.writableFinished && !reply.wasCutByServer && !isClosing) closedEarly += 1;
      reply.abort();
    });

    void (async () => {
      const request = await readRequest(incoming).catch(() => undefined);
      // The client went away while still sending its body: there is nothing to answer.
      if (request === undefined) return;
      requests.push(request);
      const label = `${request.method} ${request.path}`;
      const isScriptedRoute = request.method === options.route.method && request.path === options.route.path;
      try {
        if (!isScriptedRoute && (await options.respondOffRoute?.(request, reply)) === 'answered') return;
        const script = isScriptedRoute ? queue.shift() : undefined;
        if (script === undefined) {
          failLoudly(request, reply, `fake: no scripted response for ${label}`);
          return;
        }
        await options.respond(script, request, reply);
      } catch (error) {
        if (error instanceof ScriptMismatch) {
          failLoudly(request, reply, `fake: ${error.message} (${label})`);
          return;
        }
        console.error(`fake server failed while answering ${label}`, error);
        if (outgoing.headersSent) reply.cut();
        else failLoudly(request, reply, `fake: the fake itself failed: ${String(error)}`);
      }
    })();
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}${options.basePath}`,
    requests,
    unexpected,
    get closedEarly() {
      return closedEarly;
    },
    script(...responses) {
      queue.push(...responses);
    },
    close() {
      if (closing === undefined) {
        isClosing = true;
        for (const reply of replies) reply.abort();
        closing = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
      }
      return closing;
    },
  };
}

/**
 * One response in the making. Every wait and write resolves early (to false) once the client has gone
 * or the server is closing, so a scripted delay never outlives its connection.
 */
export class Reply {
  readonly #incoming: IncomingMessage;
  readonly #outgoing: ServerResponse;
  readonly #gone = new AbortController();
  #wasCutByServer = false;

  constructor(incoming: IncomingMessage, outgoing: ServerResponse) {
    this.#incoming = incoming;
    this.#outgoing = outgoing;
  }

  get isGone(): boolean {
    return this.#gone.signal.aborted;
  }

  get wasCutByServer(): boolean {
    return this.#wasCutByServer;
  }

  /** Marks the reply as over: pending waits and writes resolve to false. */
  abort(): void {
    this.#gone.abort();
  }

  /** Waits `ms` milliseconds; false when the client went away meanwhile. */
  wait(ms: number | undefined): Promise<boolean> {
    if (this.isGone) return Promise.resolve(false);
    if (!ms || ms <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onGone = () => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.#gone.signal.removeEventListener('abort', onGone);
        resolve(true);
      }, ms);
      this.#gone.signal.addEventListener('abort', onGone, { once: true });
    });
  }

  /** Resolves once the client disconnects (or the server closes). */
  untilGone(): Promise<void> {
    if (this.isGone) return Promise.resolve();
    return new Promise((resolve) =>
      this.#gone.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
  }

  /** A whole JSON response. */
  json(
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
    space?: number,
  ): Promise<boolean> {
    if (this.isGone) return Promise.resolve(false);
    const text = space === undefined ? JSON.stringify(body) : `${JSON.stringify(body, null, space)}\n`;
    this.#outgoing.writeHead(status, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(text)),
      ...headers,
    });
    return this.#end(text);
  }

  /** Sends 200 and the event-stream headers right away, as the vendors do before the first event. */
  openEventStream(headers: Record<string, string>): void {
    if (this.isGone) return;
    this.#outgoing.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      ...headers,
    });
    this.#outgoing.flushHeaders();
  }

  /** Writes raw text and waits until it is handed to the socket; false when the client has gone. */
  write(text: string): Promise<boolean> {
    if (this.isGone) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onGone = () => resolve(false);
      this.#gone.signal.addEventListener('abort', onGone, { once: true });
      this.#outgoing.write(text, (error) => {
        this.#gone.signal.removeEventListener('abort', onGone);
        resolve(!error && !this.isGone);
      });
    });
  }

  /** Finishes the response normally. */
  end(): Promise<boolean> {
    return this.#end();
  }

  /** Destroys the socket mid-response (or before any response): the client sees a dropped connection. */
  cut(): void {
    this.#wasCutByServer = true;
    this.#incoming.socket.destroy();
    this.abort();
  }

  #end(text?: string): Promise<boolean> {
    if (this.isGone) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = () => resolve(!this.isGone);
      if (text === undefined) this.#outgoing.end(finish);
      else this.#outgoing.end(text, finish);
    });
  }
}

/** One server-sent event as both vendors frame it: optional `event:` line, one `data:` line, blank line. */
export function sseFrame(data: string, event?: string): string {
  return `${event === undefined ? '' : `event: ${event}\n`}data: ${data}\n\n`;
}

/** Splits text into pieces of about `size` characters without breaking a surrogate pair (emoji). */
export function splitIntoChunks(text: string, size = 4): string[] {
  const characters = Array.from(text);
  const chunks: string[] = [];
  for (let start = 0; start < characters.length; start += size) {
    chunks.push(characters.slice(start, start + size).join(''));
  }
  return chunks;
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A random id like the vendors' (`chatcmpl-…`, `msg_01…`, `req_…`). */
export function randomId(prefix: string, length: number): string {
  const bytes = randomBytes(length);
  let id = prefix;
  for (const byte of bytes) id += ALPHANUMERIC[byte % ALPHANUMERIC.length];
  return id;
}

export function randomHex(length: number): string {
  return randomBytes(Math.ceil(length / 2))
    .toString('hex')
    .slice(0, length);
}

export function unixSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

async function readRequest(incoming: IncomingMessage): Promise<RecordedRequest> {
  const parts: Buffer[] = [];
  for await (const part of incoming) parts.push(part as Buffer);
  const text = Buffer.concat(parts).toString('utf8');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(incoming.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return {
    method: incoming.method ?? 'GET',
    path: new URL(incoming.url ?? '/', 'http://fake').pathname,
    headers,
    body: parseBody(text),
  };
}

function parseBody(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
