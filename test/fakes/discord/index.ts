import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type APIApplicationCommand,
  type APIDMChannel,
  type APIEmbed,
  type APIMessage,
  type APIOverwrite,
  type APIRole,
  type APITextChannel,
  type APIThreadChannel,
  type APIUser,
  ApplicationFlags,
  ChannelType,
  GatewayIntentBits,
  MessageType,
  PermissionFlagsBits,
} from 'discord.js';
import { Dispatcher } from './dispatcher.js';
import { FakeGateway, type GatewayEvent, type IdentifyRecord, type Shard, shardOfGuild } from './gateway.js';
import {
  buildChatInputInteraction,
  buildComponentInteraction,
  type ChatInputInput,
  createInteractionHandlers,
} from './interactions.js';
import {
  buildAttachment,
  buildCurrentUser,
  buildMessage,
  contentTypeFor,
  parseMentions,
} from './payloads.js';
import {
  RateLimits,
  type RecordedRequest,
  RestServer,
  type RouteKey,
  type ScriptedDelay,
  ScriptedDelays,
  type ScriptedFailure,
  ScriptedFailures,
} from './rest.js';
import { createRouteHandlers, type FakeContext } from './routes.js';
import { nextSnowflake } from './snowflake.js';
import type { CdnDownload, CdnServing, GuildRecord, InteractionRecord } from './world.js';
import { World } from './world.js';

/**
 * A loopback Discord: one HTTP server speaking the REST API under `/api/v10` and the gateway over a
 * WebSocket, so tests drive the real discord.js Client:
 *
 *   const fake = await startFakeDiscord({ heartbeatIntervalMs: 250 });
 *   const client = new Client({ intents, partials, rest: { api: fake.apiUrl } });
 *   await client.login(fake.token);
 *
 * discord.js asks `GET /gateway/bot` for the gateway URL, so nothing else needs pointing at the fake.
 * The fake starts with one server ("Tierbot Test Server": #general, the owner, alice and the bot).
 */

export type { GatewayEvent, IdentifyRecord, Shard } from './gateway.js';
export { shardOfGuild } from './gateway.js';
export type {
  RateLimitExhaustion,
  RateLimitRejection,
  RecordedFile,
  RecordedRequest,
  RouteKey,
  ScriptedDelay,
} from './rest.js';
export type { CdnDownload, CdnServing, InteractionRecord } from './world.js';

/** What Discord tells a fresh session to beat at; tests pass something short. */
const DISCORD_HEARTBEAT_INTERVAL_MS = 41_250;
/** Discord's window for acknowledging an interaction. */
const INTERACTION_DEADLINE_MS = 3_000;
const DEFAULT_WAIT_TIMEOUT_MS = 5_000;

export interface FakeDiscordOptions {
  heartbeatIntervalMs?: number;
  botUsername?: string;
  guildName?: string;
  /** The bot's managed role in the default server; default: a chat bot's usual permissions. */
  botPermissions?: bigint;
  /**
   * Privileged intents switched on in the developer portal; all three by default. An IDENTIFY asking for
   * one that is off is closed with 4014 "Disallowed intent(s).", as Discord does.
   */
  privilegedIntents?: { messageContent?: boolean; guildMembers?: boolean; presence?: boolean };
  /** Dispatch MESSAGE_CREATE/UPDATE for the bot's own messages, as Discord does. Default true. */
  echoesBotMessages?: boolean;
  interactionDeadlineMs?: number;
  /** What `GET /gateway/bot` recommends as the shard count. Default 1. */
  recommendedShards?: number;
}

export interface UserMessageInput {
  content: string;
  /** Default: #general of the default server. */
  channelId?: string;
  /** Default: alice. */
  authorId?: string;
  /** A message id in the same channel: the new message is a reply to it. */
  replyTo?: string;
  /** Whether the reply pings the replied-to author (Discord's client does by default). Default true. */
  mentionsRepliedAuthor?: boolean;
  /** Served by the fake CDN at the attachment's `url`. */
  attachments?: ScriptedAttachment[];
  embeds?: APIEmbed[];
  /**
   * Delivered to every live session of its shard, as when two processes run one shard during a deploy.
   * Default: the shard's newest session only.
   */
  toEverySession?: boolean;
}

export interface ScriptedAttachment {
  filename: string;
  content: string | Buffer;
  contentType?: string;
  description?: string;
  /** The size the message states; default the content's. Set it to lie. */
  size?: number;
  /** How the CDN serves the bytes (stalled, or more of them than the message says). */
  serving?: CdnServing;
}

export interface InteractionResponses {
  /** The callback type the bot acknowledged with (4 reply, 5 defer, 6 deferred update, 7 update…). */
  callbackType: number | undefined;
  /** The message `@original` names, as it is now. */
  original: APIMessage | undefined;
  followUps: APIMessage[];
}

export interface WaitOptions {
  timeoutMs?: number;
  /** Only consider entries at or after this index (e.g. `fake.requests.length` taken earlier). */
  from?: number;
}

export class FakeDiscord {
  readonly token: string;
  readonly world: World;
  readonly bot: APIUser;
  readonly applicationId: string;
  /** The default server. */
  readonly guild: GuildRecord;
  /** #general in the default server. */
  readonly channel: APITextChannel;
  /** The default server's owner: every permission. */
  readonly owner: APIUser;
  /** A plain member of the default server; the default author of messages and commands. */
  readonly user: APIUser;
  readonly rateLimits = new RateLimits();
  /** Gateway and REST problems: wrong token, unknown ops, frames that are not JSON, fake crashes. */
  readonly protocolErrors: string[] = [];

  readonly #failures = new ScriptedFailures();
  readonly #delays = new ScriptedDelays();
  readonly #gateway: FakeGateway;
  readonly #rest: RestServer;
  readonly #dispatcher: Dispatcher;
  readonly #context: FakeContext;
  readonly #server = createServer((incoming, outgoing) => void this.#rest.handle(incoming, outgoing));
  readonly #pendingWaits = new Set<(error: Error) => void>();
  #port = 0;
  /** Whether Discord refuses the token: not at all, from now on, or from the bot's next IDENTIFY. */
  #tokenRefusal: 'none' | 'now' | 'at-identify' = 'none';

  private constructor(options: FakeDiscordOptions) {
    this.world = new World(options.botUsername ?? 'tierbot');
    this.bot = this.world.bot;
    this.applicationId = this.world.applicationId;
    // A bot token's first segment is its user id in base64, which the bot's config reads back.
    this.token = `${Buffer.from(this.bot.id).toString('base64url')}.${randomBytes(4).toString('base64url')}.${randomBytes(28).toString('base64url')}`;
    this.owner = this.world.addUser({ username: 'guild-owner', globalName: 'Guild Owner' });
    this.user = this.world.addUser({ username: 'alice', globalName: 'Alice' });
    this.guild = this.world.addGuild({
      name: options.guildName ?? 'Tierbot Test Server',
      ownerId: this.owner.id,
      botPermissions: options.botPermissions,
    });
    this.world.addMember(this.guild.id, this.user.id);
    this.channel = this.world.addTextChannel(this.guild.id, { name: 'general' });

    const privileged = options.privilegedIntents ?? {};
    const enabledPrivilegedIntents =
      (privileged.messageContent === false ? 0 : GatewayIntentBits.MessageContent) |
      (privileged.guildMembers === false ? 0 : GatewayIntentBits.GuildMembers) |
      (privileged.presence === false ? 0 : GatewayIntentBits.GuildPresences);
    const applicationFlags =
      ApplicationFlags.ApplicationCommandBadge |
      (enabledPrivilegedIntents & GatewayIntentBits.MessageContent
        ? ApplicationFlags.GatewayMessageContentLimited
        : 0) |
      (enabledPrivilegedIntents & GatewayIntentBits.GuildMembers
        ? ApplicationFlags.GatewayGuildMembersLimited
        : 0) |
      (enabledPrivilegedIntents & GatewayIntentBits.GuildPresences
        ? ApplicationFlags.GatewayPresenceLimited
        : 0);

    const sessionStartLimit = { total: 1000, remaining: 1000 };
    this.#gateway = new FakeGateway({
      token: this.token,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? DISCORD_HEARTBEAT_INTERVAL_MS,
      enabledPrivilegedIntents,
      resumeGatewayUrl: () => `ws://127.0.0.1:${this.#port}/resume`,
      readyData: (shard) => ({
        v: 10,
        user: buildCurrentUser(this.bot),
        user_settings: {},
        guilds: this.#botGuilds(shard).map((guild) => ({ id: guild.id, unavailable: true })),
        private_channels: [],
        presences: [],
        relationships: [],
        guild_join_requests: [],
        geo_ordered_rtc_regions: ['us-east', 'us-central'],
        auth: {},
        application: { id: this.applicationId, flags: applicationFlags },
      }),
      guildCreates: (intents, shard) =>
        this.#botGuilds(shard).map((guild) =>
          this.world.guildCreatePayload(guild.id, (intents & GatewayIntentBits.GuildPresences) !== 0),
        ),
      membersChunk: (request) => this.#membersChunk(request),
      refusesToken: () => {
        if (this.#tokenRefusal === 'at-identify') this.#tokenRefusal = 'now';
        return this.#tokenRefusal === 'now';
      },
      onIdentify: () => {
        sessionStartLimit.remaining -= 1;
      },
      protocolErrors: this.protocolErrors,
    });
    this.#dispatcher = new Dispatcher(this.world, this.#gateway);
    this.#context = {
      world: this.world,
      dispatcher: this.#dispatcher,
      origin: () => this.origin,
      gatewayUrl: () => this.gatewayUrl,
      echoesBotMessages: options.echoesBotMessages ?? true,
      enabledPrivilegedIntents,
      interactionDeadlineMs: options.interactionDeadlineMs ?? INTERACTION_DEADLINE_MS,
      sessionStartLimit,
      recommendedShards: options.recommendedShards ?? 1,
      application: () => this.#application(applicationFlags),
    };
    this.#rest = new RestServer({
      token: this.token,
      refusesToken: () => this.#tokenRefusal === 'now',
      handlers: { ...createRouteHandlers(this.#context), ...createInteractionHandlers(this.#context) },
      rateLimits: this.rateLimits,
      failures: this.#failures,
      delays: this.#delays,
      protocolErrors: this.protocolErrors,
    });
    this.#server.on('upgrade', (request, socket, head) => this.#gateway.handleUpgrade(request, socket, head));
  }

  static async start(options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
    const fake = new FakeDiscord(options);
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve));
    fake.#port = (fake.#server.address() as AddressInfo).port;
    return fake;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** What discord.js wants as `rest.api` (it appends `/v10`). */
  get apiUrl(): string {
    return `${this.origin}/api`;
  }

  /** What `GET /gateway/bot` answers; Discord's has no trailing slash either. */
  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.#port}`;
  }

  // ── What the bot did ────────────────────────────────────────────────────────────────────────────

  /** Every REST request, in arrival order, with the status the fake answered. */
  get requests(): readonly RecordedRequest[] {
    return this.#rest.requests;
  }

  /** Requests for unknown endpoints, with a wrong method or without `Bot <token>`. */
  get unexpected(): readonly RecordedRequest[] {
    return this.#rest.unexpected;
  }

  /** Gateway traffic both ways, connections, closes, resumes, buffered and withheld dispatches. */
  get events(): readonly GatewayEvent[] {
    return this.#gateway.events;
  }

  get identifies(): readonly IdentifyRecord[] {
    return this.#gateway.identifies;
  }

  get openConnections(): number {
    return this.#gateway.openConnections;
  }

  /** Oldest first, the bot's and the users' alike (ephemeral replies included). */
  messagesIn(channelId: string): APIMessage[] {
    return this.world.messagesIn(channelId);
  }

  interactionResponses(interactionId: string): InteractionResponses {
    const record = this.world.interactions.get(interactionId);
    if (!record) throw new Error(`fake discord: no interaction ${interactionId}`);
    return {
      callbackType: record.callbackType,
      original:
        record.originalMessageId === undefined ? undefined : this.world.findMessage(record.originalMessageId),
      followUps: record.followUpIds.flatMap((id) => this.world.findMessage(id) ?? []),
    };
  }

  /** Each time the CDN served an attachment (by its id): how many bytes it wrote, and whether all of them. */
  cdnDownloads(attachmentId: string): readonly CdnDownload[] {
    const stored = this.world.attachmentData.get(attachmentId);
    if (!stored) throw new Error(`fake discord: no attachment ${attachmentId}`);
    return stored.downloads;
  }

  /** Registered commands: global ones, or one guild's. */
  commands(guildId?: string): APIApplicationCommand[] {
    return this.world.commandsFor(guildId === undefined ? 'global' : { guildId });
  }

  /** Throws, listing them, if any request or gateway payload surprised the fake. */
  assertNothingUnexpected(): void {
    const lines = [
      ...this.unexpected.map((request) => `${request.method} ${request.path} → ${request.status}`),
      ...this.protocolErrors,
    ];
    if (lines.length > 0) throw new Error(`fake discord saw unexpected traffic:\n  ${lines.join('\n  ')}`);
  }

  // ── Scripting refusals ──────────────────────────────────────────────────────────────────────────

  /**
   * Someone pressed Reset Token in the developer portal: Discord refuses the token the bot has, as it
   * does any token it does not know — REST answers 401 `{ message: '401: Unauthorized', code: 0 }` and the
   * gateway closes IDENTIFY (or RESUME) with 4004 "Authentication failed.". With `from: 'identify'`, REST
   * still accepts it until the bot's next IDENTIFY, which is refused: a reset between discord.js's
   * `GET /gateway/bot` and its IDENTIFY, the one way a login reaches the gateway's refusal. Scripted
   * refusals are not counted as unexpected traffic. (A privileged intent switched off in the portal is
   * `privilegedIntents` in the options: IDENTIFY asking for it is closed with 4014.)
   */
  resetToken(options: { from?: 'now' | 'identify' } = {}): void {
    this.#tokenRefusal = options.from === 'identify' ? 'at-identify' : 'now';
  }

  // ── Scripting REST ──────────────────────────────────────────────────────────────────────────────

  /** The next `times` requests on `route` fail with this Discord error (after any scripted 429). */
  failNext(route: RouteKey, failure: ScriptedFailure): void {
    this.#failures.add(route, failure);
  }

  /**
   * The next `times` requests on `route` are carried out (a message is stored and dispatched) and recorded
   * at once, but answered only after `delayMs`: a slow or lost response, which a client's timeout turns
   * into a retry.
   */
  delayNext(route: RouteKey, delay: ScriptedDelay): void {
    this.#delays.add(route, delay);
  }

  // ── Changing the world (dispatched when the bot is connected) ──────────────────────────────────

  addUser(input: {
    username: string;
    globalName?: string;
    isBot?: boolean;
    acceptsDirectMessages?: boolean;
  }) {
    return this.world.addUser(input);
  }

  /** Adds a user to a server (GUILD_MEMBER_ADD, which needs the GUILD_MEMBERS intent). */
  addMember(userId: string, input: { guildId?: string; roleIds?: string[]; nick?: string } = {}) {
    const guildId = input.guildId ?? this.guild.id;
    const member = this.world.addMember(guildId, userId, input);
    if (this.#isConnected) this.#dispatcher.memberAdd(guildId, userId);
    return member;
  }

  addRole(input: { name: string; permissions: bigint; color?: number; guildId?: string }): APIRole {
    const guildId = input.guildId ?? this.guild.id;
    const role = this.world.addRole(guildId, input);
    if (this.#isConnected) this.#dispatcher.roleCreate(guildId, role);
    return role;
  }

  addTextChannel(input: { name: string; overwrites?: APIOverwrite[]; topic?: string; guildId?: string }) {
    const channel = this.world.addTextChannel(input.guildId ?? this.guild.id, input);
    if (this.#isConnected) this.#dispatcher.channelCreate(channel);
    return channel;
  }

  /** An announcement channel (its messages can be followed from other servers; threads there are announcement threads). */
  addAnnouncementChannel(input: { name: string; overwrites?: APIOverwrite[]; guildId?: string }) {
    const channel = this.world.addTextChannel(input.guildId ?? this.guild.id, {
      ...input,
      type: ChannelType.GuildAnnouncement,
    });
    if (this.#isConnected) this.#dispatcher.channelCreate(channel);
    return channel;
  }

  /**
   * Takes permissions from the bot in a channel (default #general) and its threads, as an admin would with a
   * member overwrite that denies them (CHANNEL_UPDATE); `allow` gives some back. Replaces the bot's
   * earlier overwrite there.
   */
  setBotPermissions(input: { deny: bigint; allow?: bigint; channelId?: string }): void {
    const channel = this.world.setMemberOverwrite(input.channelId ?? this.channel.id, this.bot.id, {
      deny: input.deny,
      allow: input.allow ?? 0n,
    });
    if (this.#isConnected) this.#dispatcher.channelUpdate(channel);
  }

  /** A server the bot is in: with #general, the given owner (default: the default owner) and the bot. */
  addGuild(input: { name: string; ownerId?: string; botPermissions?: bigint }) {
    const guild = this.world.addGuild({ ...input, ownerId: input.ownerId ?? this.owner.id });
    this.world.addTextChannel(guild.id, { name: 'general' });
    if (this.#isConnected) this.#dispatcher.guildCreate(guild.id);
    return guild;
  }

  /** A user opens a thread (THREAD_CREATE); public by default, in #general by default. */
  createThread(
    input: { name: string; parentId?: string; ownerId?: string; isPrivate?: boolean } = { name: 'thread' },
  ): APIThreadChannel {
    const thread = this.world.addThread({
      parentId: input.parentId ?? this.channel.id,
      name: input.name,
      ownerId: input.ownerId ?? this.user.id,
      type: input.isPrivate ? ChannelType.PrivateThread : ChannelType.PublicThread,
    });
    if (this.#isConnected) this.#dispatcher.threadCreate(thread);
    return thread;
  }

  /** The bot's DM channel with a user (created on first use, not dispatched: bots get no CHANNEL_CREATE for DMs). */
  directMessageChannel(userId: string = this.user.id): APIDMChannel {
    return this.world.directMessageChannel(userId);
  }

  // ── Gateway dispatches ──────────────────────────────────────────────────────────────────────────

  /** A user posts a message: stored, then dispatched as MESSAGE_CREATE (subject to intents). */
  messageCreate(input: UserMessageInput): APIMessage {
    const channelId = input.channelId ?? this.channel.id;
    const channel = this.world.channel(channelId);
    const author = this.world.user(input.authorId ?? this.user.id);
    const guildId = this.world.guildIdOf(channel);
    if (guildId && !this.world.guild(guildId).members.has(author.id)) {
      throw new Error(
        `fake discord: ${author.username} is not a member of the server of channel ${channelId}`,
      );
    }
    if (channel.type === ChannelType.DM && channel.recipients?.[0]?.id !== author.id) {
      throw new Error(`fake discord: ${author.username} is not the recipient of DM channel ${channelId}`);
    }
    if (!this.world.canSendIn(channelId, author.id)) {
      throw new Error(`fake discord: ${author.username} may not post in channel ${channelId}`);
    }
    const reference = input.replyTo === undefined ? undefined : this.world.message(channelId, input.replyTo);
    if (input.replyTo !== undefined && !reference) {
      throw new Error(`fake discord: no message ${input.replyTo} in channel ${channelId} to reply to`);
    }
    const written = parseMentions(input.content);
    const mentionIds = new Set(written.userIds.filter((id) => this.world.users.has(id)));
    if (reference && (input.mentionsRepliedAuthor ?? true) && reference.author.id !== author.id) {
      mentionIds.add(reference.author.id);
    }
    const canMentionEveryone =
      (this.world.permissionsIn(channelId, author.id) & PermissionFlagsBits.MentionEveryone) !== 0n;
    const message = buildMessage({
      id: nextSnowflake(),
      channelId,
      author,
      content: input.content,
      type: reference ? MessageType.Reply : MessageType.Default,
      mentions: [...mentionIds].map((id) => this.world.user(id)),
      mentionRoleIds: written.roleIds,
      mentionsEveryone: written.mentionsEveryone && canMentionEveryone,
      attachments: (input.attachments ?? []).map((attachment) =>
        this.#scriptedAttachment(channelId, attachment),
      ),
      embeds: input.embeds,
      reference: reference && { message: reference, guildId },
    });
    this.world.storeMessage(message);
    this.#dispatcher.messageCreate(message, { toEverySession: input.toEverySession ?? false });
    return message;
  }

  /** A user DMs the bot (default: alice). */
  directMessageCreate(input: Omit<UserMessageInput, 'channelId'>): APIMessage {
    const channel = this.world.directMessageChannel(input.authorId ?? this.user.id);
    return this.messageCreate({ ...input, channelId: channel.id });
  }

  /** A user runs a slash command (INTERACTION_CREATE, type 2); default: alice in #general. */
  chatInputCommand(
    input: Omit<ChatInputInput, 'userId' | 'channelId'> & { userId?: string; channelId?: string },
  ): InteractionRecord {
    const built = buildChatInputInteraction(this.#context, {
      ...input,
      userId: input.userId ?? this.user.id,
      channelId: input.channelId ?? this.channel.id,
    });
    return this.#dispatchInteraction(built);
  }

  /** A user clicks a button on a message (INTERACTION_CREATE, type 3). */
  clickButton(input: {
    messageId: string;
    customId: string;
    userId?: string;
    locale?: string;
  }): InteractionRecord {
    const built = buildComponentInteraction(this.#context, {
      ...input,
      userId: input.userId ?? this.user.id,
    });
    return this.#dispatchInteraction(built);
  }

  /** A user picks values in a select menu on a message (INTERACTION_CREATE, type 3). */
  chooseInSelectMenu(input: { messageId: string; customId: string; values: string[]; userId?: string }) {
    const built = buildComponentInteraction(this.#context, {
      ...input,
      userId: input.userId ?? this.user.id,
    });
    return this.#dispatchInteraction(built);
  }

  /**
   * Any dispatch, raw; withheld when `requiredIntent` is missing from the bot's IDENTIFY. With
   * `toEverySession`, every live session of the event's shard gets it (two processes running one shard).
   */
  dispatch(
    t: string,
    d: unknown,
    requiredIntent?: GatewayIntentBits,
    options: { toEverySession?: boolean } = {},
  ): void {
    this.#gateway.dispatch(t, d, requiredIntent, options);
  }

  /** The shard ids the bot's processes have identified for. */
  get shards(): number[] {
    return this.#gateway.shards;
  }

  /**
   * Delivers a MESSAGE_CREATE or INTERACTION_CREATE (by message or interaction id) a second time, the same
   * payload under a new sequence number, as an at-least-once gateway may. Returns the payload.
   */
  redeliver(t: 'MESSAGE_CREATE' | 'INTERACTION_CREATE', id: string): unknown {
    return this.#gateway.redeliver(t, id);
  }

  /** Closes the bot's socket from Discord's side; default code 4000, which discord.js resumes after. */
  disconnect(options: { code?: number; reason?: string; abrupt?: boolean } = {}): Promise<void> {
    return this.#gateway.disconnect(options);
  }

  /** Op 7 Reconnect. */
  requestReconnect(): void {
    this.#gateway.requestReconnect();
  }

  /** Op 9 Invalid Session. */
  invalidateSession(resumable: boolean): void {
    this.#gateway.invalidateSession(resumable);
  }

  // ── Waiting ─────────────────────────────────────────────────────────────────────────────────────

  /** The first request (from `options.from`) on `route` or matching the predicate. */
  waitForRequest(
    match: RouteKey | ((request: RecordedRequest) => boolean),
    options: WaitOptions = {},
  ): Promise<RecordedRequest> {
    const predicate =
      typeof match === 'string' ? (request: RecordedRequest) => request.route === match : match;
    return this.#waitFor(
      () => this.#rest.requests,
      predicate,
      (listener) => this.#rest.onRequest(listener),
      options,
      () =>
        `a request ${typeof match === 'string' ? match : 'matching the predicate'}; saw:\n  ${this.#rest.requests
          .map((request) => `${request.method} ${request.path} → ${request.status}`)
          .join('\n  ')}`,
    );
  }

  /** The first gateway event (from `options.from`) matching the predicate. */
  waitForEvent(
    predicate: (event: GatewayEvent) => boolean,
    options: WaitOptions = {},
  ): Promise<GatewayEvent> {
    return this.#waitFor(
      () => this.#gateway.events,
      predicate,
      (listener) => this.#gateway.onEvent(listener),
      options,
      () =>
        `a gateway event matching the predicate; saw:\n  ${this.#gateway.events
          .slice(-30)
          .map((event) => JSON.stringify(event).slice(0, 160))
          .join('\n  ')}`,
    );
  }

  /** Stops everything: sockets, HTTP connections, pending waits. */
  async close(): Promise<void> {
    for (const reject of this.#pendingWaits) reject(new Error('fake discord closed while waiting'));
    this.#pendingWaits.clear();
    this.#rest.clearListeners();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await this.#gateway.close();
    await closed;
  }

  get #isConnected(): boolean {
    return this.#gateway.intents !== undefined;
  }

  /** The guilds the bot is in; with a shard, those whose events that shard gets. */
  #botGuilds(shard?: Shard): GuildRecord[] {
    return [...this.world.guilds.values()].filter(
      (guild) =>
        guild.members.has(this.bot.id) &&
        (shard === undefined || shardOfGuild(guild.id, shard[1]) === shard[0]),
    );
  }

  #dispatchInteraction(built: {
    payload: Record<string, unknown>;
    record: InteractionRecord;
  }): InteractionRecord {
    this.world.interactions.set(built.record.id, built.record);
    this.#gateway.dispatch('INTERACTION_CREATE', built.payload);
    return built.record;
  }

  #scriptedAttachment(channelId: string, attachment: ScriptedAttachment) {
    const id = nextSnowflake();
    const data = Buffer.from(attachment.content);
    const contentType = attachment.contentType ?? contentTypeFor(attachment.filename);
    this.world.attachmentData.set(id, {
      data,
      contentType,
      ...(attachment.serving ? { serving: attachment.serving } : {}),
      downloads: [],
    });
    return buildAttachment({
      id,
      filename: attachment.filename,
      size: attachment.size ?? data.length,
      contentType,
      url: `${this.origin}/attachments/${channelId}/${id}/${encodeURIComponent(attachment.filename)}`,
      description: attachment.description,
    });
  }

  #membersChunk(request: Record<string, any>): Record<string, unknown> {
    const guildId = String(Array.isArray(request.guild_id) ? request.guild_id[0] : request.guild_id);
    const guild = this.world.guilds.get(guildId);
    const userIds: string[] | undefined =
      request.user_ids === undefined ? undefined : [request.user_ids].flat();
    const query = String(request.query ?? '').toLowerCase();
    const limit = Number(request.limit ?? 0) || Number.POSITIVE_INFINITY;
    const members = guild
      ? this.world
          .membersOf(guild.id, userIds)
          .filter((member) => member.user.username.toLowerCase().startsWith(query))
          .slice(0, limit)
      : [];
    return {
      guild_id: guildId,
      members,
      chunk_index: 0,
      chunk_count: 1,
      not_found: (userIds ?? []).filter((id) => !members.some((member) => member.user.id === id)),
      ...(request.nonce === undefined ? {} : { nonce: request.nonce }),
    };
  }

  #application(flags: number): Record<string, unknown> {
    return {
      id: this.applicationId,
      name: this.bot.username,
      icon: null,
      description: '',
      summary: '',
      type: null,
      hook: true,
      bot_public: true,
      bot_require_code_grant: false,
      verify_key: randomBytes(32).toString('hex'),
      flags,
      owner: this.owner,
      team: null,
      bot: this.bot,
      redirect_uris: [],
      interactions_endpoint_url: null,
      role_connections_verification_url: null,
      tags: [],
      integration_types_config: { '0': {} },
      approximate_guild_count: this.#botGuilds().length,
      approximate_user_install_count: 0,
    };
  }

  #waitFor<T>(
    entries: () => readonly T[],
    predicate: (entry: T) => boolean,
    subscribe: (listener: () => void) => () => void,
    options: WaitOptions,
    describe: () => string,
  ): Promise<T> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    const find = () =>
      entries()
        .slice(options.from ?? 0)
        .find(predicate);
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<T>((resolve, reject) => {
      const finish = (error?: Error, entry?: T) => {
        clearTimeout(timer);
        unsubscribe();
        this.#pendingWaits.delete(fail);
        if (error) reject(error);
        else resolve(entry!);
      };
      const fail = (error: Error) => finish(error);
      const unsubscribe = subscribe(() => {
        const entry = find();
        if (entry !== undefined) finish(undefined, entry);
      });
      const timer = setTimeout(
        () => finish(new Error(`fake discord: timed out after ${timeoutMs} ms waiting for ${describe()}`)),
        timeoutMs,
      );
      this.#pendingWaits.add(fail);
    });
  }
}

export function startFakeDiscord(options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
  return FakeDiscord.start(options);
}
