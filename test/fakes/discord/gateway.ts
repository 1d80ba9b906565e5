import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { GatewayCloseCodes, GatewayIntentBits, GatewayOpcodes } from 'discord.js';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';

/**
 * The fake's gateway: HELLO, heartbeats, IDENTIFY → READY + GUILD_CREATE, RESUME with replay, and
 * dispatches filtered by the intents the bot identified with. Sharded as Discord shards: IDENTIFY's
 * `shard: [id, count]` decides which session gets each guild's events — shard (guild_id >> 22) % count —
 * and DMs go to shard 0. JSON encoding without compression, which is
 * what discord.js asks for (`?v=10&encoding=json`) unless the optional `zlib-sync` package is installed.
 * https://discord.com/developers/docs/events/gateway
 */

export type GatewayEvent =
  | { type: 'connect'; connectionId: number; path: string; query: Record<string, string> }
  /** A payload from the bot. */
  | { type: 'received'; connectionId: number; op: number; d: any }
  /** A payload to the bot. */
  | { type: 'sent'; connectionId: number; op: number; t: string | null; s: number | null; d: any }
  /** A dispatch made while the bot had no live socket; RESUME replays it. */
  | { type: 'buffered'; t: string; s: number }
  /** A dispatch the bot did not get: it lacks the intent, or its session ended (it logged out). */
  | { type: 'withheld'; t: string; reason: string }
  | { type: 'identified'; connectionId: number; sessionId: string; intents: number }
  | { type: 'resumed'; connectionId: number; sessionId: string; replayed: number }
  | { type: 'closed'; connectionId: number; code: number; reason: string; by: 'bot' | 'fake' };

export interface IdentifyRecord {
  token: string;
  intents: number;
  properties: Record<string, string>;
  shard?: [number, number];
  compress?: boolean;
  presence?: unknown;
}

export interface GatewayHooks {
  token: string;
  /**
   * Whether Discord now refuses the token (it was reset in the developer portal), asked at each IDENTIFY
   * and RESUME with the right token: then the gateway closes with 4004, as Discord does.
   */
  refusesToken(): boolean;
  heartbeatIntervalMs: number;
  /** Privileged intents switched on in the (imaginary) developer portal. */
  enabledPrivilegedIntents: number;
  resumeGatewayUrl(): string;
  /** READY's data for a new session of a shard, `session_id` and `resume_gateway_url` aside. */
  readyData(shard: Shard): Record<string, unknown>;
  /** GUILD_CREATE data for every guild of a shard, shaped by the session's intents. */
  guildCreates(intents: number, shard: Shard): Record<string, unknown>[];
  /** GUILD_MEMBERS_CHUNK data answering a Request Guild Members (op 8). */
  membersChunk(request: Record<string, any>): Record<string, unknown>;
  onIdentify(): void;
  protocolErrors: string[];
}

/** [shard id, shard count], as IDENTIFY sends it. */
export type Shard = [number, number];

/** The shard a guild's events go to: https://discord.com/developers/docs/events/gateway#sharding */
export function shardOfGuild(guildId: string, shardCount: number): number {
  return Number((BigInt(guildId) >> 22n) % BigInt(shardCount));
}

interface Session {
  id: string;
  shard: Shard;
  intents: number;
  sequence: number;
  /** Every dispatch of the session, for RESUME to replay what the bot missed. */
  backlog: { t: string; s: number; d: unknown }[];
  connection: Connection | undefined;
  isResumable: boolean;
}

interface Connection {
  id: number;
  socket: WebSocket;
  session: Session | undefined;
  closedByFake: { code: number; reason: string } | undefined;
}

const GATEWAY_VERSION = '10';
const PRIVILEGED_INTENTS =
  GatewayIntentBits.GuildMembers | GatewayIntentBits.GuildPresences | GatewayIntentBits.MessageContent;
const KNOWN_INTENTS = Object.values(GatewayIntentBits)
  .filter((value): value is number => typeof value === 'number')
  .reduce((all, bit) => all | bit, 0);
const TRACE = ['["gateway-prd-fake-0",{"micros":0.0}]'];
/** The reasons Discord gives with the close codes the fake refuses a session with, as Discord words them. */
const DISCORD_CLOSE_REASONS = {
  authenticationFailed: 'Authentication failed.',
  disallowedIntents: 'Disallowed intent(s).',
};

export class FakeGateway {
  readonly events: GatewayEvent[] = [];
  readonly identifies: IdentifyRecord[] = [];
  readonly #hooks: GatewayHooks;
  readonly #server = new WebSocketServer({ noServer: true });
  readonly #connections = new Set<Connection>();
  readonly #sessions = new Map<string, Session>();
  readonly #listeners = new Set<() => void>();
  /** The newest session of each shard id: where that shard's events go. */
  readonly #currentByShard = new Map<number, Session>();
  #nextConnectionId = 1;

  constructor(hooks: GatewayHooks) {
    this.#hooks = hooks;
  }

  /** Sockets currently open, whatever their state. */
  get openConnections(): number {
    return this.#connections.size;
  }

  /** The newest session of any shard (the only one, unless the bot is sharded). */
  get #current(): Session | undefined {
    return [...this.#currentByShard.values()].at(-1);
  }

  /** The intents of the latest IDENTIFY, undefined before the bot identified. */
  get intents(): number | undefined {
    return this.#current?.intents;
  }

  get sessionId(): string | undefined {
    return this.#current?.id;
  }

  /** The shards with a session, by id. */
  get shards(): number[] {
    return [...this.#currentByShard.keys()].sort((a, b) => a - b);
  }

  /** Called after every new event; the facade uses it to wake `waitForEvent`. */
  onEvent(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? '/', 'ws://fake');
    if (url.pathname !== '/' && url.pathname !== '/resume') {
      this.#hooks.protocolErrors.push(`gateway: upgrade on unknown path ${url.pathname}`);
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    this.#server.handleUpgrade(request, socket, head, (webSocket) => this.#accept(webSocket, url));
  }

  /**
   * Sends a dispatch to the current session, or buffers it for RESUME while the bot has no socket.
   * `requiredIntent` names the intent Discord requires for this event; without it the event is withheld.
   */
  dispatch(
    t: string,
    d: unknown,
    requiredIntent?: GatewayIntentBits,
    options: { toEverySession?: boolean } = {},
  ): void {
    const session = this.#sessionFor(t, d);
    if (!session) {
      throw new Error(
        `fake discord: cannot dispatch ${t}: the bot has not identified (log the client in first)`,
      );
    }
    // A shard run by two processes at once (a deploy's overlap): each of its live sessions gets the event.
    const sessions = options.toEverySession
      ? [...this.#sessions.values()].filter(
          (candidate) => candidate.shard[0] === session.shard[0] && candidate.connection !== undefined,
        )
      : [session];
    for (const target of sessions) {
      if (requiredIntent !== undefined && (target.intents & requiredIntent) === 0) {
        this.#record({ type: 'withheld', t, reason: `missing intent ${GatewayIntentBits[requiredIntent]}` });
        continue;
      }
      if (!target.isResumable && !target.connection) {
        // An offline bot never hears about what happened meanwhile.
        this.#record({ type: 'withheld', t, reason: 'the session has ended' });
        continue;
      }
      this.#dispatchIn(target, t, structuredClone(d));
    }
  }

  /** The session an event goes to: its guild's shard (a guild event's own id), or shard 0 for DMs. */
  #sessionFor(t: string, d: unknown): Session | undefined {
    const current = this.#current;
    if (!current) return undefined;
    const data = (d ?? {}) as { guild_id?: unknown; id?: unknown };
    const guildId =
      typeof data.guild_id === 'string' ? data.guild_id : t.startsWith('GUILD_') ? data.id : undefined;
    const shardCount = current.shard[1];
    const shardId =
      typeof guildId === 'string' && /^\d+$/.test(guildId) ? shardOfGuild(guildId, shardCount) : 0;
    return this.#currentByShard.get(shardId);
  }

  /**
   * Sends again the latest dispatch of type `t` whose data has this `id` (a MESSAGE_CREATE, an
   * INTERACTION_CREATE), unchanged but under a new sequence number: the gateway delivers at least once,
   * and a bot may see one event twice. Returns the data sent.
   */
  redeliver(t: string, id: string): unknown {
    for (const session of this.#currentByShard.values()) {
      const earlier = session.backlog.findLast(
        (dispatch) => dispatch.t === t && (dispatch.d as { id?: unknown } | null)?.id === id,
      );
      if (!earlier) continue;
      this.#dispatchIn(session, t, structuredClone(earlier.d));
      return earlier.d;
    }
    throw new Error(`fake discord: no ${t} for ${id} was dispatched to redeliver`);
  }

  /** Closes the bot's socket from Discord's side. 4000 (unknown error) is resumable, as is a dropped TCP. */
  disconnect(options: { code?: number; reason?: string; abrupt?: boolean } = {}): Promise<void> {
    const connection = this.#current?.connection;
    if (!connection) throw new Error('fake discord: the bot has no open gateway connection');
    const code = options.abrupt ? 1006 : (options.code ?? GatewayCloseCodes.UnknownError);
    const reason = options.reason ?? (options.abrupt ? 'connection dropped' : 'fake: forced disconnect');
    connection.closedByFake = { code, reason };
    return new Promise((resolve) => {
      connection.socket.once('close', () => resolve());
      if (options.abrupt) connection.socket.terminate();
      else connection.socket.close(code, reason);
    });
  }

  /** Op 7: Discord asks the bot to reconnect and resume. */
  requestReconnect(): void {
    this.#sendOnCurrent({ op: GatewayOpcodes.Reconnect, d: null });
  }

  /** Op 9: the session is invalid; `resumable` says whether the bot may RESUME it. */
  invalidateSession(resumable: boolean): void {
    if (!resumable && this.#current) this.#current.isResumable = false;
    this.#sendOnCurrent({ op: GatewayOpcodes.InvalidSession, d: resumable });
  }

  close(): Promise<void> {
    for (const connection of this.#connections) connection.socket.terminate();
    this.#connections.clear();
    this.#listeners.clear();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: WebSocket, url: URL): void {
    const connection: Connection = {
      id: this.#nextConnectionId++,
      socket,
      session: undefined,
      closedByFake: undefined,
    };
    this.#connections.add(connection);
    const query = Object.fromEntries(url.searchParams);
    this.#record({ type: 'connect', connectionId: connection.id, path: url.pathname, query });

    socket.on('message', (data, isBinary) => this.#receive(connection, data, isBinary));
    socket.on('error', () => {
      // A reset socket also emits 'close', which is where the connection is cleaned up.
    });
    socket.on('close', (code, reasonBuffer) => {
      this.#connections.delete(connection);
      const by = connection.closedByFake ? 'fake' : 'bot';
      const closedCode = connection.closedByFake?.code ?? code;
      const reason = connection.closedByFake?.reason ?? reasonBuffer.toString('utf8');
      this.#record({ type: 'closed', connectionId: connection.id, code: closedCode, reason, by });
      const session = connection.session;
      if (session?.connection === connection) {
        session.connection = undefined;
        // Closing with 1000 or 1001 ends the session; anything else leaves it resumable.
        // https://discord.com/developers/docs/events/gateway#disconnecting
        if (by === 'bot' && (code === 1000 || code === 1001)) session.isResumable = false;
      }
    });

    const problem =
      query.v !== GATEWAY_VERSION
        ? `gateway: the bot asked for version ${query.v ?? '(none)'}, the fake speaks ${GATEWAY_VERSION}`
        : query.encoding !== 'json'
          ? `gateway: the bot asked for encoding ${query.encoding ?? '(none)'}, the fake speaks json`
          : query.compress !== undefined
            ? `gateway: the bot asked for compress=${query.compress} (is zlib-sync installed?); the fake sends plain JSON`
            : undefined;
    if (problem) {
      // 4012 is one discord.js gives up on, instead of reconnecting in a loop.
      this.#failProtocol(connection, GatewayCloseCodes.InvalidAPIVersion, problem);
      return;
    }
    this.#send(connection, {
      op: GatewayOpcodes.Hello,
      d: { heartbeat_interval: this.#hooks.heartbeatIntervalMs, _trace: TRACE },
    });
  }

  #receive(connection: Connection, data: RawData, isBinary: boolean): void {
    let payload: { op?: unknown; d?: any };
    try {
      if (isBinary) throw new Error('binary frame');
      payload = JSON.parse(rawToString(data)) as { op?: unknown; d?: any };
    } catch {
      this.#failProtocol(
        connection,
        GatewayCloseCodes.DecodeError,
        'gateway: the bot sent a frame that is not JSON',
      );
      return;
    }
    const op = typeof payload.op === 'number' ? payload.op : -1;
    this.#record({ type: 'received', connectionId: connection.id, op, d: payload.d });

    switch (op) {
      case GatewayOpcodes.Heartbeat:
        this.#send(connection, { op: GatewayOpcodes.HeartbeatAck, d: null });
        return;
      case GatewayOpcodes.Identify:
        this.#identify(connection, payload.d as IdentifyRecord);
        return;
      case GatewayOpcodes.Resume:
        this.#resume(connection, payload.d as { token: string; session_id: string; seq: number });
        return;
      case GatewayOpcodes.PresenceUpdate:
      case GatewayOpcodes.VoiceStateUpdate:
        if (!connection.session) this.#notAuthenticated(connection, op);
        return;
      case GatewayOpcodes.RequestGuildMembers:
        if (!connection.session) {
          this.#notAuthenticated(connection, op);
          return;
        }
        this.#dispatchIn(
          connection.session,
          'GUILD_MEMBERS_CHUNK',
          this.#hooks.membersChunk(payload.d ?? {}),
        );
        return;
      default:
        this.#failProtocol(
          connection,
          GatewayCloseCodes.UnknownOpcode,
          `gateway: the bot sent unknown op ${op}`,
        );
    }
  }

  #identify(connection: Connection, identify: IdentifyRecord): void {
    if (connection.session) {
      this.#failProtocol(connection, GatewayCloseCodes.AlreadyAuthenticated, 'gateway: IDENTIFY sent twice');
      return;
    }
    this.identifies.push(identify);
    if (identify.token !== this.#hooks.token) {
      this.#failProtocol(
        connection,
        GatewayCloseCodes.AuthenticationFailed,
        'gateway: IDENTIFY with a wrong token',
      );
      return;
    }
    if (this.#hooks.refusesToken()) {
      this.#refuse(
        connection,
        GatewayCloseCodes.AuthenticationFailed,
        DISCORD_CLOSE_REASONS.authenticationFailed,
      );
      return;
    }
    const intents = Number(identify.intents);
    if (!Number.isInteger(intents) || (intents & ~KNOWN_INTENTS) !== 0) {
      this.#failProtocol(
        connection,
        GatewayCloseCodes.InvalidIntents,
        `gateway: invalid intents ${identify.intents}`,
      );
      return;
    }
    const disallowed = intents & PRIVILEGED_INTENTS & ~this.#hooks.enabledPrivilegedIntents;
    if (disallowed !== 0) {
      // What the test scripted (an intent switched off in the portal), so not a protocol error; the
      // refused intents are in the 'closed' event's reason for the test to read.
      this.#refuse(
        connection,
        GatewayCloseCodes.DisallowedIntents,
        `${DISCORD_CLOSE_REASONS.disallowedIntents} (fake: ${intentNames(disallowed)})`,
      );
      return;
    }
    if (identify.compress) {
      this.#failProtocol(
        connection,
        GatewayCloseCodes.DecodeError,
        'gateway: IDENTIFY asked for compress: true',
      );
      return;
    }

    const shard: Shard = identify.shard ?? [0, 1];
    const [shardId, shardCount] = shard;
    if (!Number.isInteger(shardId) || !Number.isInteger(shardCount) || shardId < 0 || shardId >= shardCount) {
      this.#failProtocol(
        connection,
        GatewayCloseCodes.InvalidShard,
        `gateway: invalid shard ${JSON.stringify(shard)}`,
      );
      return;
    }
    const other = [...this.#currentByShard.values()].find((session) => session.shard[1] !== shardCount);
    if (other) {
      this.#failProtocol(
        connection,
        GatewayCloseCodes.InvalidShard,
        `gateway: shard count ${shardCount} differs from another session's ${other.shard[1]}`,
      );
      return;
    }
    const session: Session = {
      id: randomBytes(16).toString('hex'),
      shard,
      intents,
      sequence: 0,
      backlog: [],
      connection,
      isResumable: true,
    };
    const previous = this.#currentByShard.get(shardId);
    if (previous) previous.isResumable = false;
    this.#sessions.set(session.id, session);
    // Newest last, so that #current is the latest session of any shard.
    this.#currentByShard.delete(shardId);
    this.#currentByShard.set(shardId, session);
    connection.session = session;
    this.#hooks.onIdentify();
    this.#record({ type: 'identified', connectionId: connection.id, sessionId: session.id, intents });

    this.#dispatchIn(session, 'READY', {
      ...this.#hooks.readyData(shard),
      session_id: session.id,
      session_type: 'normal',
      resume_gateway_url: this.#hooks.resumeGatewayUrl(),
      shard,
      _trace: TRACE,
    });
    if (intents & GatewayIntentBits.Guilds) {
      for (const guild of this.#hooks.guildCreates(intents, shard)) {
        this.#dispatchIn(session, 'GUILD_CREATE', guild);
      }
    }
  }

  #resume(connection: Connection, resume: { token: string; session_id: string; seq: number }): void {
    const session = this.#sessions.get(resume.session_id);
    const isValid =
      session !== undefined &&
      session.isResumable &&
      resume.token === this.#hooks.token &&
      Number.isInteger(resume.seq) &&
      resume.seq <= session.sequence;
    if (isValid && this.#hooks.refusesToken()) {
      this.#refuse(
        connection,
        GatewayCloseCodes.AuthenticationFailed,
        DISCORD_CLOSE_REASONS.authenticationFailed,
      );
      return;
    }
    if (!isValid) {
      // Not resumable: the bot must IDENTIFY again.
      this.#send(connection, { op: GatewayOpcodes.InvalidSession, d: false });
      return;
    }
    session.connection?.socket.terminate();
    session.connection = connection;
    connection.session = session;
    const missed = session.backlog.filter((dispatch) => dispatch.s > resume.seq);
    for (const dispatch of missed) {
      this.#send(connection, { op: GatewayOpcodes.Dispatch, t: dispatch.t, s: dispatch.s, d: dispatch.d });
    }
    this.#record({
      type: 'resumed',
      connectionId: connection.id,
      sessionId: session.id,
      replayed: missed.length,
    });
    this.#dispatchIn(session, 'RESUMED', { _trace: TRACE });
  }

  #dispatchIn(session: Session, t: string, d: unknown): void {
    session.sequence += 1;
    const s = session.sequence;
    session.backlog.push({ t, s, d });
    const connection = session.connection;
    if (connection && connection.socket.readyState === connection.socket.OPEN) {
      this.#send(connection, { op: GatewayOpcodes.Dispatch, t, s, d });
    } else {
      this.#record({ type: 'buffered', t, s });
    }
  }

  #sendOnCurrent(payload: { op: number; d: unknown }): void {
    const connection = this.#current?.connection;
    if (!connection) throw new Error('fake discord: the bot has no open gateway connection');
    this.#send(connection, payload);
  }

  #send(connection: Connection, payload: { op: number; d: unknown; t?: string; s?: number }): void {
    const frame = { op: payload.op, d: payload.d, s: payload.s ?? null, t: payload.t ?? null };
    connection.socket.send(JSON.stringify(frame));
    this.#record({
      type: 'sent',
      connectionId: connection.id,
      op: frame.op,
      t: frame.t,
      s: frame.s,
      d: frame.d,
    });
  }

  #notAuthenticated(connection: Connection, op: number): void {
    this.#failProtocol(connection, GatewayCloseCodes.NotAuthenticated, `gateway: op ${op} before IDENTIFY`);
  }

  #failProtocol(connection: Connection, code: number, problem: string): void {
    this.#hooks.protocolErrors.push(problem);
    this.#refuse(connection, code, problem);
  }

  /** Closes the connection with a close code, as Discord ends a session it will not serve. */
  #refuse(connection: Connection, code: number, reason: string): void {
    connection.closedByFake = { code, reason: reason.slice(0, 120) };
    connection.socket.close(code, reason.slice(0, 120));
  }

  #record(event: GatewayEvent): void {
    this.events.push(event);
    for (const listener of this.#listeners) listener();
  }
}

function rawToString(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

function intentNames(bits: number): string {
  return Object.entries(GatewayIntentBits)
    .filter(([, bit]) => typeof bit === 'number' && (bits & bit) !== 0)
    .map(([name]) => name)
    .join(', ');
}
