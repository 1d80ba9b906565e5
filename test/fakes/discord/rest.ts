import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CdnDownload, CdnServing } from './world.js';

/**
 * The fake's HTTP side: routing, authentication, recording, and the rate limits and failures a test
 * scripts. What each endpoint does lives in routes.ts and interactions.ts.
 * https://discord.com/developers/docs/reference#http-api
 */

export const API_BASE_PATH = '/api/v10';

/** Every endpoint the fake answers, as `METHOD /template`; literal segments win over `:params`. */
export const ROUTES = [
  'GET /gateway',
  'GET /gateway/bot',
  'GET /users/@me',
  'POST /users/@me/channels',
  'GET /users/:user_id',
  'GET /applications/@me',
  'GET /oauth2/applications/@me',
  'GET /channels/:channel_id',
  'GET /channels/:channel_id/messages',
  'POST /channels/:channel_id/messages',
  'GET /channels/:channel_id/messages/:message_id',
  'PATCH /channels/:channel_id/messages/:message_id',
  'DELETE /channels/:channel_id/messages/:message_id',
  'PUT /channels/:channel_id/messages/:message_id/reactions/:emoji/@me',
  'DELETE /channels/:channel_id/messages/:message_id/reactions/:emoji/@me',
  'POST /channels/:channel_id/messages/:message_id/threads',
  'POST /channels/:channel_id/threads',
  'POST /channels/:channel_id/typing',
  'GET /guilds/:guild_id',
  'GET /guilds/:guild_id/members/:user_id',
  'POST /interactions/:interaction_id/:interaction_token/callback',
  'POST /webhooks/:application_id/:interaction_token',
  'GET /webhooks/:application_id/:interaction_token/messages/:message_id',
  'PATCH /webhooks/:application_id/:interaction_token/messages/:message_id',
  'DELETE /webhooks/:application_id/:interaction_token/messages/:message_id',
  'GET /applications/:application_id/commands',
  'PUT /applications/:application_id/commands',
  'POST /applications/:application_id/commands',
  'GET /applications/:application_id/guilds/:guild_id/commands',
  'PUT /applications/:application_id/guilds/:guild_id/commands',
  'POST /applications/:application_id/guilds/:guild_id/commands',
  /** The CDN, outside the API base path: attachment bytes. */
  'GET /attachments/:channel_id/:attachment_id/:filename',
] as const;

export type RouteKey = (typeof ROUTES)[number];

export interface RecordedFile {
  /** The multipart field, `files[0]` as discord.js names them. */
  field: string;
  name: string;
  size: number;
  contentType: string;
  data: Buffer;
}

export interface RecordedRequest {
  method: string;
  /** The URL path without the query string, e.g. `/api/v10/channels/1/messages`. */
  path: string;
  /** The endpoint it matched; undefined for an unknown one. */
  route: RouteKey | undefined;
  params: Record<string, string>;
  query: Record<string, string>;
  /** Header names lower-cased. */
  headers: Record<string, string>;
  /** The JSON body, or a multipart request's `payload_json`; undefined when empty. */
  // `any`: tests read Discord request fields straight off the body.
  body: any;
  /** Files of a multipart request. */
  files: RecordedFile[];
  /** The status the fake answered with. */
  status: number;
  responseBody: any;
  /** Date.now() when the request arrived. */
  receivedAt: number;
}

/** An error Discord itself would answer with: `{ message, code, errors? }`. */
export class DiscordFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly errors?: Record<string, unknown>,
  ) {
    super(message);
  }

  toBody(): Record<string, unknown> {
    return { message: this.message, code: this.code, ...(this.errors ? { errors: this.errors } : {}) };
  }
}

/** What Discord answers a request whose token it does not accept. */
const UNAUTHORIZED: Outcome = { status: 401, body: { message: '401: Unauthorized', code: 0 } };

/** Discord's JSON error codes. https://discord.com/developers/docs/topics/opcodes-and-status-codes#json */
export const failures = {
  unknownApplication: () => new DiscordFailure(404, 10002, 'Unknown Application'),
  unknownChannel: () => new DiscordFailure(404, 10003, 'Unknown Channel'),
  unknownGuild: () => new DiscordFailure(404, 10004, 'Unknown Guild'),
  unknownMember: () => new DiscordFailure(404, 10007, 'Unknown Member'),
  unknownMessage: () => new DiscordFailure(404, 10008, 'Unknown Message'),
  unknownUser: () => new DiscordFailure(404, 10013, 'Unknown User'),
  unknownWebhook: () => new DiscordFailure(404, 10015, 'Unknown Webhook'),
  unknownInteraction: () => new DiscordFailure(404, 10062, 'Unknown interaction'),
  alreadyAcknowledged: () => new DiscordFailure(400, 40060, 'Interaction has already been acknowledged.'),
  missingAccess: () => new DiscordFailure(403, 50001, 'Missing Access'),
  cannotEditOthersMessage: () =>
    new DiscordFailure(403, 50005, 'Cannot edit a message authored by another user'),
  emptyMessage: () => new DiscordFailure(400, 50006, 'Cannot send an empty message'),
  cannotMessageUser: () => new DiscordFailure(403, 50007, 'Cannot send messages to this user'),
  missingPermissions: () => new DiscordFailure(403, 50013, 'Missing Permissions'),
  wrongChannelType: () => new DiscordFailure(400, 50024, 'Cannot execute action on this channel type'),
  invalidJson: () => new DiscordFailure(400, 50109, 'The request body contains invalid JSON.'),
  threadAlreadyCreated: () =>
    new DiscordFailure(400, 160004, 'A thread has already been created for this message'),
  /** `path` like ['embeds', 0, 'description']; Discord nests the error object along it. */
  invalidFormBody(path: (string | number)[], code: string, message: string) {
    let errors: Record<string, unknown> = { _errors: [{ code, message }] };
    for (const key of [...path].reverse()) errors = { [String(key)]: errors };
    return new DiscordFailure(400, 50035, 'Invalid Form Body', errors);
  },
};

export interface Call {
  request: RecordedRequest;
  params: Record<string, string>;
  query: URLSearchParams;
}

export interface Outcome {
  status: number;
  body?: unknown;
  /** Raw bytes instead of JSON (the CDN), served as scripted; what was sent is recorded in `download`. */
  raw?: { data: Buffer; contentType: string | undefined; serving?: CdnServing; download: CdnDownload };
  /** Runs after the response is written: gateway events that follow a REST change. */
  after?: () => void;
}

export type Handlers = Record<RouteKey, (call: Call) => Outcome>;

export interface RateLimitRejection {
  /** How many requests get a 429 before the route answers normally again. Default 1. */
  times?: number;
  /** Sent in `retry_after` and `Retry-After`, which discord.js obeys. */
  retryAfterSeconds: number;
  /** A global limit: `X-RateLimit-Global`, scope `global`, no bucket headers. */
  isGlobal?: boolean;
  /** `X-RateLimit-Scope`; default `user` (`global` when isGlobal). */
  scope?: 'user' | 'shared' | 'global';
  /** Only requests this accepts are rejected (e.g. one message's edits); default: every request. */
  matching?: (request: RecordedRequest) => boolean;
}

type QueuedRejection = Required<RateLimitRejection>;

export interface RateLimitExhaustion {
  /** How many successful responses carry `X-RateLimit-Remaining: 0`. Default 1. */
  times?: number;
  resetAfterSeconds: number;
  limit?: number;
}

export interface ScriptedDelay {
  /** How long the response is held back after the request was carried out. */
  delayMs: number;
  /** Default 1. */
  times?: number;
}

export interface ScriptedFailure {
  status: number;
  code: number;
  message: string;
  errors?: Record<string, unknown>;
  /** Default 1. */
  times?: number;
}

/** Per-route rate-limit scripts: 429s to inject and exhausted buckets to announce. */
export class RateLimits {
  /** Requests the fake answered 429, in order. */
  readonly rejected: RecordedRequest[] = [];
  readonly #rejections = new Map<RouteKey, QueuedRejection[]>();
  readonly #exhaustions = new Map<RouteKey, Required<RateLimitExhaustion>[]>();

  /** The next `times` requests on `route` get 429 with `retry_after`. */
  reject(route: RouteKey, rejection: RateLimitRejection): void {
    const isGlobal = rejection.isGlobal ?? false;
    queueFor(this.#rejections, route).push({
      times: rejection.times ?? 1,
      retryAfterSeconds: rejection.retryAfterSeconds,
      isGlobal,
      scope: rejection.scope ?? (isGlobal ? 'global' : 'user'),
      matching: rejection.matching ?? (() => true),
    });
  }

  /**
   * The next `times` successful responses on `route` say the bucket is empty until `resetAfterSeconds`.
   * discord.js only honours this once it knows the route's bucket hash: the very first response on a
   * route moves it to a new, hash-keyed handler, and the limit it carried is left on the old one.
   */
  exhaust(route: RouteKey, exhaustion: RateLimitExhaustion): void {
    queueFor(this.#exhaustions, route).push({
      times: exhaustion.times ?? 1,
      resetAfterSeconds: exhaustion.resetAfterSeconds,
      limit: exhaustion.limit ?? 5,
    });
  }

  /** How many 429s the fake sent. */
  get count(): number {
    return this.rejected.length;
  }

  /** The first scripted 429 on `route` that applies to this request, used up by one. */
  takeRejection(route: RouteKey, request: RecordedRequest): QueuedRejection | undefined {
    return takeOne(this.#rejections, route, (rejection) => rejection.matching(request));
  }

  /** Headers for a successful response: the scripted empty bucket, or a roomy default one. */
  successHeaders(route: RouteKey): Record<string, string> {
    const exhaustion = takeOne(this.#exhaustions, route);
    if (exhaustion) {
      return bucketHeaders(route, exhaustion.limit, 0, exhaustion.resetAfterSeconds);
    }
    // Real buckets hold about 5 requests per few seconds; the fake never drains its default one.
    return bucketHeaders(route, 5, 4, 5);
  }

  /** A 429 as Discord sends it. https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit */
  rejectionResponse(route: RouteKey, rejection: QueuedRejection) {
    // Discord rounds Retry-After up to whole seconds; the fake keeps fractions so tests stay fast.
    const retryAfter = String(rejection.retryAfterSeconds);
    const headers: Record<string, string> = rejection.isGlobal
      ? { 'retry-after': retryAfter, 'x-ratelimit-global': 'true', 'x-ratelimit-scope': 'global' }
      : {
          'retry-after': retryAfter,
          ...bucketHeaders(route, 5, 0, rejection.retryAfterSeconds),
          'x-ratelimit-scope': rejection.scope,
        };
    const body = {
      message: 'You are being rate limited.',
      retry_after: rejection.retryAfterSeconds,
      global: rejection.isGlobal,
      ...(rejection.isGlobal ? {} : { code: 0 }),
    };
    return { headers, body };
  }
}

/**
 * Responses held back: the request is carried out at once (a message is stored and its gateway event
 * sent), only the answer is late, as when Discord is slow to respond or a response is lost on the way.
 */
export class ScriptedDelays {
  readonly #delays = new Map<RouteKey, { delayMs: number; times: number }[]>();

  add(route: RouteKey, delay: ScriptedDelay): void {
    queueFor(this.#delays, route).push({ delayMs: delay.delayMs, times: delay.times ?? 1 });
  }

  take(route: RouteKey): number | undefined {
    return takeOne(this.#delays, route)?.delayMs;
  }
}

export class ScriptedFailures {
  readonly #failures = new Map<RouteKey, (ScriptedFailure & { times: number })[]>();

  add(route: RouteKey, failure: ScriptedFailure): void {
    queueFor(this.#failures, route).push({ ...failure, times: failure.times ?? 1 });
  }

  take(route: RouteKey): DiscordFailure | undefined {
    const failure = takeOne(this.#failures, route);
    return failure && new DiscordFailure(failure.status, failure.code, failure.message, failure.errors);
  }
}

export interface RestServerOptions {
  token: string;
  /** Whether Discord now refuses the token (it was reset): requests with it get 401, as from Discord. */
  refusesToken(): boolean;
  handlers: Handlers;
  rateLimits: RateLimits;
  failures: ScriptedFailures;
  delays: ScriptedDelays;
  protocolErrors: string[];
}

const COMPILED_ROUTES = ROUTES.map((key) => {
  const [method, template] = key.split(' ') as [string, string];
  return { key, method, segments: template.split('/').slice(1) };
});

/** The HTTP handler; it records every request before answering it. */
export class RestServer {
  readonly requests: RecordedRequest[] = [];
  /** Requests for endpoints the fake does not know, with a wrong method, or without the bot token. */
  readonly unexpected: RecordedRequest[] = [];
  readonly #options: RestServerOptions;
  readonly #listeners = new Set<() => void>();

  constructor(options: RestServerOptions) {
    this.#options = options;
  }

  onRequest(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  clearListeners(): void {
    this.#listeners.clear();
  }

  async handle(incoming: IncomingMessage, outgoing: ServerResponse): Promise<void> {
    const receivedAt = Date.now();
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of incoming) chunks.push(chunk as Buffer);
    } catch {
      return; // the client went away mid-body
    }
    const url = new URL(incoming.url ?? '/', 'http://fake');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(incoming.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const method = incoming.method ?? 'GET';
    const match = matchRoute(method, url.pathname);
    const request: RecordedRequest = {
      method,
      path: url.pathname,
      route: match.route,
      params: match.params,
      query: Object.fromEntries(url.searchParams),
      headers,
      body: undefined,
      files: [],
      status: 0,
      responseBody: undefined,
      receivedAt,
    };

    let outcome: Outcome;
    let extraHeaders: Record<string, string> = {};
    let isUnexpected = false;
    try {
      const parsed = await parseBody(Buffer.concat(chunks), headers['content-type']);
      request.body = parsed.body;
      request.files = parsed.files;
      if (match.route === undefined) {
        isUnexpected = true;
        outcome = match.pathExists
          ? { status: 405, body: { message: '405: Method Not Allowed', code: 0 } }
          : { status: 404, body: { message: '404: Not Found', code: 0 } };
      } else if (needsBotToken(match.route) && headers.authorization !== `Bot ${this.#options.token}`) {
        isUnexpected = true;
        outcome = UNAUTHORIZED;
      } else if (needsBotToken(match.route) && this.#options.refusesToken()) {
        // Scripted by the test (the token was reset): Discord's answer, not a mistake of the bot's.
        outcome = UNAUTHORIZED;
      } else {
        const rejection = this.#options.rateLimits.takeRejection(match.route, request);
        const scripted = rejection ? undefined : this.#options.failures.take(match.route);
        if (rejection) {
          const response = this.#options.rateLimits.rejectionResponse(match.route, rejection);
          outcome = { status: 429, body: response.body };
          extraHeaders = response.headers;
        } else if (scripted) {
          outcome = { status: scripted.status, body: scripted.toBody() };
        } else {
          outcome = this.#options.handlers[match.route]({
            request,
            params: match.params,
            query: url.searchParams,
          });
          if (outcome.status < 400) extraHeaders = this.#options.rateLimits.successHeaders(match.route);
        }
      }
    } catch (error) {
      if (error instanceof DiscordFailure) {
        outcome = { status: error.status, body: error.toBody() };
      } else {
        isUnexpected = true;
        const problem = `rest: the fake failed on ${method} ${url.pathname}: ${String(error)}`;
        this.#options.protocolErrors.push(problem);
        console.error(problem, error);
        outcome = { status: 500, body: { message: '500: Internal Server Error', code: 0 } };
      }
    }

    request.status = outcome.status;
    request.responseBody = outcome.body;
    this.requests.push(request);
    if (isUnexpected) this.unexpected.push(request);
    if (outcome.status === 429) this.#options.rateLimits.rejected.push(request);
    for (const listener of this.#listeners) listener();

    // Gateway events after the response, as Discord's usually trail its REST answers.
    const after = outcome.after;
    const followUp = () => {
      if (!after) return;
      setImmediate(() => {
        try {
          after();
        } catch (error) {
          this.#options.protocolErrors.push(
            `rest: a gateway event after ${method} ${url.pathname} failed: ${String(error)}`,
          );
        }
      });
    };
    const delayMs = match.route === undefined ? undefined : this.#options.delays.take(match.route);
    if (delayMs === undefined) {
      const written = writeOutcome(outgoing, outcome, extraHeaders);
      followUp();
      await written;
      return;
    }
    // The change is made and announced now; only the response is late (or never read: the client may
    // time out and retry meanwhile).
    followUp();
    if (await heldBack(outgoing, delayMs)) await writeOutcome(outgoing, outcome, extraHeaders);
  }
}

/** Waits `delayMs`; false when the client closed the connection meanwhile (nobody left to answer). */
function heldBack(outgoing: ServerResponse, delayMs: number): Promise<boolean> {
  if (outgoing.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onClose = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      outgoing.off('close', onClose);
      resolve(!outgoing.destroyed);
    }, delayMs);
    outgoing.once('close', onClose);
  });
}

async function writeOutcome(
  outgoing: ServerResponse,
  outcome: Outcome,
  extraHeaders: Record<string, string>,
): Promise<void> {
  if (outcome.raw) {
    await writeRaw(outgoing, outcome.status, outcome.raw);
    return;
  }
  if (outcome.body === undefined) {
    outgoing.writeHead(outcome.status, extraHeaders);
    outgoing.end();
    return;
  }
  const text = JSON.stringify(outcome.body);
  outgoing.writeHead(outcome.status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...extraHeaders,
  });
  outgoing.end(text);
}

/** The CDN's bytes, as the attachment's serving script says; every byte written is counted. */
async function writeRaw(
  outgoing: ServerResponse,
  status: number,
  raw: NonNullable<Outcome['raw']>,
): Promise<void> {
  const { data, serving = {}, download } = raw;
  const contentType = raw.contentType ?? 'application/octet-stream';
  const repeat = serving.repeat ?? 1;
  if (serving.stalls) {
    outgoing.writeHead(status, { 'content-type': contentType, 'content-length': String(data.length) });
    outgoing.flushHeaders();
    if (!outgoing.destroyed) await new Promise((resolve) => outgoing.once('close', resolve));
    return;
  }
  if (repeat === 1) {
    outgoing.writeHead(status, { 'content-type': contentType, 'content-length': String(data.length) });
    outgoing.end(data);
    download.bytesSent = data.length;
    download.isComplete = true;
    return;
  }
  // Chunked: no Content-Length to go by. Written as fast as the client reads, until it stops reading.
  outgoing.writeHead(status, { 'content-type': contentType });
  for (let sent = 0; sent < repeat; sent += 1) {
    if (outgoing.destroyed) return;
    download.bytesSent += data.length;
    if (!outgoing.write(data)) {
      const isDrained = await new Promise<boolean>((resolve) => {
        const onDrain = () => {
          outgoing.off('close', onClose);
          resolve(true);
        };
        const onClose = () => {
          outgoing.off('drain', onDrain);
          resolve(false);
        };
        outgoing.once('drain', onDrain);
        outgoing.once('close', onClose);
      });
      if (!isDrained) return;
    }
  }
  outgoing.end();
  download.isComplete = true;
}

function matchRoute(
  method: string,
  path: string,
): { route: RouteKey | undefined; params: Record<string, string>; pathExists: boolean } {
  const isCdn = path.startsWith('/attachments/');
  if (!isCdn && !path.startsWith(`${API_BASE_PATH}/`))
    return { route: undefined, params: {}, pathExists: false };
  const segments = (isCdn ? path : path.slice(API_BASE_PATH.length)).split('/').slice(1);
  let pathExists = false;
  for (const route of COMPILED_ROUTES) {
    if (route.segments.length !== segments.length) continue;
    if (route.segments[0] === 'attachments' && !isCdn) continue;
    const params: Record<string, string> = {};
    const fits = route.segments.every((segment, index) => {
      const actual = segments[index]!;
      if (segment.startsWith(':')) {
        params[segment.slice(1)] = decodeURIComponent(actual);
        return true;
      }
      return segment === actual;
    });
    if (!fits) continue;
    if (route.method === method) return { route: route.key, params, pathExists: true };
    pathExists = true;
  }
  return { route: undefined, params: {}, pathExists };
}

/** Interaction callbacks and interaction webhooks authenticate by the token in their path. */
function needsBotToken(route: RouteKey): boolean {
  return !/ \/(interactions|webhooks|attachments)\//.test(route);
}

async function parseBody(
  data: Buffer,
  contentType: string | undefined,
): Promise<{ body: unknown; files: RecordedFile[] }> {
  if (data.length === 0) return { body: undefined, files: [] };
  if (contentType?.startsWith('multipart/form-data')) {
    const form = await new Request('http://fake/', {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: data,
    }).formData();
    let body: unknown;
    const files: RecordedFile[] = [];
    for (const [field, value] of form.entries()) {
      if (typeof value === 'string') {
        if (field === 'payload_json') body = parseJson(value);
        continue;
      }
      files.push({
        field,
        name: value.name,
        size: value.size,
        contentType: value.type,
        data: Buffer.from(await value.arrayBuffer()),
      });
    }
    return { body, files };
  }
  return { body: parseJson(data.toString('utf8')), files: [] };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new DiscordFailure(400, 50109, 'The request body contains invalid JSON.');
  }
}

/** Rate-limit headers for one bucket. https://discord.com/developers/docs/topics/rate-limits#header-format */
function bucketHeaders(
  route: RouteKey,
  limit: number,
  remaining: number,
  resetAfterSeconds: number,
): Record<string, string> {
  return {
    'x-ratelimit-limit': String(limit),
    'x-ratelimit-remaining': String(remaining),
    'x-ratelimit-reset': ((Date.now() + resetAfterSeconds * 1000) / 1000).toFixed(3),
    'x-ratelimit-reset-after': resetAfterSeconds.toFixed(3),
    'x-ratelimit-bucket': bucketHash(route),
  };
}

function bucketHash(route: RouteKey): string {
  return createHash('sha1').update(route).digest('hex').slice(0, 32);
}

function queueFor<T>(queues: Map<RouteKey, T[]>, route: RouteKey): T[] {
  let queue = queues.get(route);
  if (!queue) {
    queue = [];
    queues.set(route, queue);
  }
  return queue;
}

/** The first queued entry that applies (by default the oldest), used up by one. */
function takeOne<T extends { times: number }>(
  queues: Map<RouteKey, T[]>,
  route: RouteKey,
  applies: (entry: T) => boolean = () => true,
): T | undefined {
  const queue = queues.get(route);
  const index = queue?.findIndex(applies) ?? -1;
  if (!queue || index < 0) return undefined;
  const next = queue[index]!;
  next.times -= 1;
  if (next.times <= 0) queue.splice(index, 1);
  return next;
}
