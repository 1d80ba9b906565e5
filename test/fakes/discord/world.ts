import {
  type APIApplicationCommand,
  type APIDMChannel,
  type APIMessage,
  type APINewsChannel,
  type APIOverwrite,
  type APIRole,
  type APITextChannel,
  type APIThreadChannel,
  type APIUser,
  ChannelType,
  MessageType,
  OverwriteType,
  PermissionFlagsBits,
  type ThreadAutoArchiveDuration,
  type ThreadChannelType,
} from 'discord.js';
import {
  ALL_PERMISSIONS,
  buildDirectMessageChannel,
  buildMember,
  buildRole,
  buildTextChannel,
  buildThreadChannel,
  buildUser,
  computePermissions,
  DEFAULT_BOT_PERMISSIONS,
  DEFAULT_EVERYONE_PERMISSIONS,
  type MemberRecord,
  type TextChannelType,
  toDiscordTimestamp,
} from './payloads.js';
import { compareSnowflakes, nextSnowflake } from './snowflake.js';

/**
 * Everything the fake Discord knows: users, servers with their roles, members and channels, DM channels,
 * messages, registered commands and interactions. No I/O: the gateway and REST layers read and change it.
 */

export type FakeChannel = APITextChannel | APINewsChannel | APIThreadChannel | APIDMChannel;

/** A channel members write in directly: a plain text channel or an announcement channel. */
export type FakeTextChannel = APITextChannel | APINewsChannel;

export interface TextChannelInput {
  name: string;
  overwrites?: APIOverwrite[];
  topic?: string;
}

/** Threads: they take their parent's permission overwrites, and posting in them needs SendMessagesInThreads. */
export function isThread(channel: FakeChannel): channel is APIThreadChannel {
  return (
    channel.type === ChannelType.PublicThread ||
    channel.type === ChannelType.PrivateThread ||
    channel.type === ChannelType.AnnouncementThread
  );
}

export interface GuildRecord {
  id: string;
  name: string;
  ownerId: string;
  joinedAt: Date;
  /** Every role, @everyone (id = guild id) included. */
  roles: Map<string, APIRole>;
  members: Map<string, MemberRecord>;
  /** Text channels and threads, in creation order. */
  channelIds: string[];
  botRoleId: string;
  systemChannelId: string | null;
}

export interface UserRecord {
  user: APIUser;
  /** False: the user closed DMs from server members, so Discord refuses the bot's DMs (50007). */
  acceptsDirectMessages: boolean;
}

export interface InteractionRecord {
  id: string;
  token: string;
  type: number;
  channelId: string;
  guildId: string | undefined;
  userId: string;
  commandName: string | undefined;
  createdAt: number;
  /** The callback type once the bot acknowledged (4, 5, 6, 7, 8, 9). */
  callbackType: number | undefined;
  /** The message `@original` names: the response, or for 6/7 the message whose component was used. */
  originalMessageId: string | undefined;
  /** The message carrying the clicked component (component interactions only). */
  componentMessageId: string | undefined;
  followUpIds: string[];
}

export type CommandScope = 'global' | { guildId: string };

/** How the fake CDN serves an attachment's bytes; by default all at once, with their Content-Length. */
export interface CdnServing {
  /** The headers (with the true Content-Length) are sent, then nothing until the client goes away. */
  stalls?: boolean;
  /**
   * The content is sent this many times over, chunked, without a Content-Length: a file larger than its
   * message says, which only counting the bytes as they come reveals. Default 1.
   */
  repeat?: number;
}

/** One response of the fake CDN: how much of the body it wrote before it finished or the client left. */
export interface CdnDownload {
  bytesSent: number;
  isComplete: boolean;
}

export interface StoredAttachment {
  data: Buffer;
  contentType: string | undefined;
  serving?: CdnServing;
  /** Every time the CDN served it, in order. */
  downloads: CdnDownload[];
}

export class World {
  readonly bot: APIUser;
  readonly applicationId: string;
  readonly users = new Map<string, UserRecord>();
  readonly guilds = new Map<string, GuildRecord>();
  readonly channels = new Map<string, FakeChannel>();
  /** Uploaded and scripted attachment bytes, served by the fake CDN, by attachment id. */
  readonly attachmentData = new Map<string, StoredAttachment>();
  readonly interactions = new Map<string, InteractionRecord>();
  /** Keyed `global` or by guild id. */
  readonly commands = new Map<string, APIApplicationCommand[]>();
  readonly #messagesByChannel = new Map<string, APIMessage[]>();
  readonly #directMessageChannelByUser = new Map<string, string>();
  /** Messages sent with a nonce, keyed `author:nonce`, for `enforce_nonce`. */
  readonly #messageIdsByNonce = new Map<string, { messageId: string; sentAt: number }>();

  constructor(botUsername: string) {
    this.bot = buildUser({ id: nextSnowflake(), username: botUsername, isBot: true });
    // A bot's user id is its application id.
    this.applicationId = this.bot.id;
    this.users.set(this.bot.id, { user: this.bot, acceptsDirectMessages: false });
  }

  addUser(input: {
    username: string;
    globalName?: string;
    isBot?: boolean;
    acceptsDirectMessages?: boolean;
  }): APIUser {
    const user = buildUser({ id: nextSnowflake(), ...input });
    this.users.set(user.id, { user, acceptsDirectMessages: input.acceptsDirectMessages ?? true });
    return user;
  }

  user(id: string): APIUser {
    const record = this.users.get(id);
    if (!record) throw new Error(`fake discord: no user ${id}; create it with addUser()`);
    return record.user;
  }

  addGuild(input: { name: string; ownerId: string; botPermissions?: bigint }): GuildRecord {
    const id = nextSnowflake();
    const botRoleId = nextSnowflake();
    const guild: GuildRecord = {
      id,
      name: input.name,
      ownerId: input.ownerId,
      joinedAt: new Date(),
      roles: new Map([
        [id, buildRole({ id, name: '@everyone', permissions: DEFAULT_EVERYONE_PERMISSIONS, position: 0 })],
        [
          botRoleId,
          buildRole({
            id: botRoleId,
            name: this.bot.username,
            permissions: input.botPermissions ?? DEFAULT_BOT_PERMISSIONS,
            position: 1,
            botId: this.bot.id,
          }),
        ],
      ]),
      members: new Map(),
      channelIds: [],
      botRoleId,
      systemChannelId: null,
    };
    this.guilds.set(id, guild);
    this.addMember(id, input.ownerId);
    this.addMember(id, this.bot.id, { roleIds: [botRoleId] });
    return guild;
  }

  guild(id: string): GuildRecord {
    const guild = this.guilds.get(id);
    if (!guild) throw new Error(`fake discord: no guild ${id}`);
    return guild;
  }

  addMember(
    guildId: string,
    userId: string,
    input: { roleIds?: string[]; nick?: string } = {},
  ): MemberRecord {
    this.user(userId);
    const member: MemberRecord = {
      userId,
      roleIds: input.roleIds ?? [],
      nick: input.nick ?? null,
      joinedAt: new Date(),
    };
    this.guild(guildId).members.set(userId, member);
    return member;
  }

  addRole(guildId: string, input: { name: string; permissions: bigint; color?: number }): APIRole {
    const guild = this.guild(guildId);
    const role = buildRole({ id: nextSnowflake(), position: guild.roles.size, ...input });
    guild.roles.set(role.id, role);
    return role;
  }

  addTextChannel(guildId: string, input: TextChannelInput & { type?: ChannelType.GuildText }): APITextChannel;
  addTextChannel(guildId: string, input: TextChannelInput & { type: TextChannelType }): FakeTextChannel;
  addTextChannel(guildId: string, input: TextChannelInput & { type?: TextChannelType }): FakeTextChannel {
    const guild = this.guild(guildId);
    const position = guild.channelIds.filter((id) => {
      const channel = this.channels.get(id);
      return channel !== undefined && channel.type !== ChannelType.DM && !isThread(channel);
    });
    const channel = buildTextChannel({ id: nextSnowflake(), guildId, position: position.length, ...input });
    this.channels.set(channel.id, channel);
    guild.channelIds.push(channel.id);
    guild.systemChannelId ??= channel.id;
    return channel;
  }

  addThread(input: {
    parentId: string;
    name: string;
    ownerId: string;
    type: ThreadChannelType;
    /** A thread started from a message takes that message's id. */
    id?: string;
    autoArchiveDuration?: ThreadAutoArchiveDuration;
    rateLimitPerUser?: number;
  }): APIThreadChannel {
    const parent = this.channel(input.parentId);
    if (parent.type !== ChannelType.GuildText && parent.type !== ChannelType.GuildAnnouncement) {
      throw new Error(`fake discord: threads live in text and announcement channels, not in ${parent.id}`);
    }
    const thread = buildThreadChannel({
      id: input.id ?? nextSnowflake(),
      guildId: parent.guild_id!,
      ...input,
    });
    this.channels.set(thread.id, thread);
    this.guild(parent.guild_id!).channelIds.push(thread.id);
    return thread;
  }

  /** Sets (replacing) a member's permission overwrite on a server channel; its threads follow it. */
  setMemberOverwrite(
    channelId: string,
    userId: string,
    bits: { allow: bigint; deny: bigint },
  ): FakeTextChannel {
    const channel = this.channel(channelId);
    if (channel.type === ChannelType.DM || isThread(channel)) {
      throw new Error(`fake discord: overwrites are set on a server channel, not on ${channelId}`);
    }
    channel.permission_overwrites = [
      ...(channel.permission_overwrites ?? []).filter((overwrite) => overwrite.id !== userId),
      { id: userId, type: OverwriteType.Member, allow: String(bits.allow), deny: String(bits.deny) },
    ];
    return channel;
  }

  /** The bot's DM channel with this user, opened on first use (one per user, as on Discord). */
  directMessageChannel(userId: string): APIDMChannel {
    const existing = this.#directMessageChannelByUser.get(userId);
    if (existing) return this.channels.get(existing) as APIDMChannel;
    const channel = buildDirectMessageChannel({ id: nextSnowflake(), recipient: this.user(userId) });
    this.channels.set(channel.id, channel);
    this.#directMessageChannelByUser.set(userId, channel.id);
    return channel;
  }

  channel(id: string): FakeChannel {
    const channel = this.channels.get(id);
    if (!channel) throw new Error(`fake discord: no channel ${id}`);
    return channel;
  }

  guildIdOf(channel: FakeChannel): string | undefined {
    return channel.type === ChannelType.DM ? undefined : channel.guild_id;
  }

  /** What `userId` may do in `channelId`; threads follow their parent channel's overwrites. */
  permissionsIn(channelId: string, userId: string): bigint {
    const channel = this.channel(channelId);
    if (channel.type === ChannelType.DM) return ALL_PERMISSIONS;
    const guild = this.guild(channel.guild_id!);
    const member = guild.members.get(userId);
    if (!member) return 0n;
    const overwriteSource = isThread(channel) ? this.channel(channel.parent_id!) : channel;
    return computePermissions({
      userId,
      guildId: guild.id,
      ownerId: guild.ownerId,
      roles: guild.roles,
      memberRoleIds: member.roleIds,
      overwrites:
        'permission_overwrites' in overwriteSource ? (overwriteSource.permission_overwrites ?? []) : [],
    });
  }

  /** Can `userId` post in this channel? Threads need SendMessagesInThreads instead of SendMessages. */
  canSendIn(channelId: string, userId: string): boolean {
    const channel = this.channel(channelId);
    const permissions = this.permissionsIn(channelId, userId);
    const needed = isThread(channel)
      ? PermissionFlagsBits.SendMessagesInThreads
      : PermissionFlagsBits.SendMessages;
    return (permissions & needed) === needed;
  }

  /** The members payload of a guild, the bot's own member included. */
  membersOf(guildId: string, onlyUserIds?: readonly string[]) {
    const guild = this.guild(guildId);
    return [...guild.members.values()]
      .filter((member) => onlyUserIds === undefined || onlyUserIds.includes(member.userId))
      .map((member) => buildMember(member, this.user(member.userId)));
  }

  /**
   * GUILD_CREATE's data. Without the GUILD_PRESENCES intent Discord sends only the bot's own member (and
   * members in voice), so `members` holds just the bot unless `includeEveryMember`.
   * https://discord.com/developers/docs/events/gateway-events#guild-create
   */
  guildCreatePayload(guildId: string, includeEveryMember: boolean): Record<string, unknown> {
    const guild = this.guild(guildId);
    const channels = guild.channelIds.map((id) => this.channel(id));
    const withoutGuildId = ({ guild_id: _guildId, ...channel }: FakeChannel & { guild_id?: string }) =>
      channel;
    return {
      id: guild.id,
      name: guild.name,
      icon: null,
      icon_hash: null,
      splash: null,
      discovery_splash: null,
      owner_id: guild.ownerId,
      afk_channel_id: null,
      afk_timeout: 300,
      widget_enabled: false,
      widget_channel_id: null,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: [...guild.roles.values()],
      emojis: [],
      stickers: [],
      features: [],
      mfa_level: 0,
      application_id: null,
      system_channel_id: guild.systemChannelId,
      system_channel_flags: 0,
      rules_channel_id: null,
      max_presences: null,
      max_members: 500_000,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: 0,
      premium_subscription_count: 0,
      preferred_locale: 'en-US',
      public_updates_channel_id: null,
      safety_alerts_channel_id: null,
      max_video_channel_users: 25,
      max_stage_video_channel_users: 50,
      nsfw_level: 0,
      nsfw: false,
      premium_progress_bar_enabled: false,
      incidents_data: null,
      hub_type: null,
      // GUILD_CREATE extras
      joined_at: toDiscordTimestamp(guild.joinedAt),
      large: false,
      unavailable: false,
      member_count: guild.members.size,
      voice_states: [],
      members: this.membersOf(guild.id, includeEveryMember ? undefined : [this.bot.id]),
      // Channels in GUILD_CREATE come without guild_id; threads keep theirs.
      channels: channels.filter((channel) => !isThread(channel)).map(withoutGuildId),
      threads: channels.filter(isThread),
      presences: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }

  storeMessage(message: APIMessage): void {
    let messages = this.#messagesByChannel.get(message.channel_id);
    if (!messages) {
      messages = [];
      this.#messagesByChannel.set(message.channel_id, messages);
    }
    messages.push(message);
    const channel = this.channels.get(message.channel_id);
    if (channel) {
      channel.last_message_id = message.id;
      // A thread's counts leave out its starter message, as Discord's do.
      if (isThread(channel) && message.type !== MessageType.ThreadStarterMessage) {
        channel.message_count = (channel.message_count ?? 0) + 1;
        channel.total_message_sent = (channel.total_message_sent ?? 0) + 1;
      }
    }
  }

  /** Oldest first. */
  /** Remembers that an author sent a message with this nonce (for `enforce_nonce`). */
  rememberNonce(authorId: string, nonce: string | number, messageId: string, sentAt: number): void {
    this.#messageIdsByNonce.set(`${authorId}:${nonce}`, { messageId, sentAt });
  }

  /** The message an author sent with this nonce since `since`, if it still exists. */
  messageByNonce(authorId: string, nonce: string | number, since: number): APIMessage | undefined {
    const sent = this.#messageIdsByNonce.get(`${authorId}:${nonce}`);
    if (!sent || sent.sentAt < since) return undefined;
    return this.findMessage(sent.messageId);
  }

  messagesIn(channelId: string): APIMessage[] {
    return [...(this.#messagesByChannel.get(channelId) ?? [])].sort((left, right) =>
      compareSnowflakes(left.id, right.id),
    );
  }

  message(channelId: string, messageId: string): APIMessage | undefined {
    return this.#messagesByChannel.get(channelId)?.find((message) => message.id === messageId);
  }

  /** Looks a message up in every channel (interaction webhooks name messages without a channel). */
  findMessage(messageId: string): APIMessage | undefined {
    for (const messages of this.#messagesByChannel.values()) {
      const found = messages.find((message) => message.id === messageId);
      if (found) return found;
    }
    return undefined;
  }

  replaceMessage(updated: APIMessage): void {
    const messages = this.#messagesByChannel.get(updated.channel_id) ?? [];
    const index = messages.findIndex((message) => message.id === updated.id);
    if (index >= 0) messages[index] = updated;
  }

  deleteMessage(channelId: string, messageId: string): void {
    const messages = this.#messagesByChannel.get(channelId) ?? [];
    const index = messages.findIndex((message) => message.id === messageId);
    if (index >= 0) messages.splice(index, 1);
  }

  commandsFor(scope: CommandScope): APIApplicationCommand[] {
    return this.commands.get(scope === 'global' ? 'global' : scope.guildId) ?? [];
  }

  /** A registered command by name: the guild's own first, then global ones, as Discord resolves them. */
  findCommand(name: string, guildId: string | undefined): APIApplicationCommand | undefined {
    const guildCommands = guildId === undefined ? [] : this.commandsFor({ guildId });
    return [...guildCommands, ...this.commandsFor('global')].find((command) => command.name === name);
  }
}
