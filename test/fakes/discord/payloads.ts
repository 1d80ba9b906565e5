import {
  type APIAttachment,
  type APIDMChannel,
  type APIEmbed,
  type APIGuildMember,
  type APIMessage,
  type APINewsChannel,
  type APIOverwrite,
  type APIRole,
  type APITextChannel,
  type APIThreadChannel,
  type APIUser,
  type ChannelFlags,
  ChannelType,
  type GuildMemberFlags,
  type MessageType,
  OverwriteType,
  PermissionFlagsBits,
  type RoleFlags,
  ThreadAutoArchiveDuration,
  type ThreadChannelType,
  type UserFlags,
} from 'discord.js';
import { snowflakeDate } from './snowflake.js';

/** The channels a server's members write in directly (threads hang off them). */
export type TextChannelType = ChannelType.GuildText | ChannelType.GuildAnnouncement;

/**
 * Pure builders for the objects Discord puts on the wire, in the shapes discord.js parses. Each one fills
 * every field the real API sends (with the values a fresh test server would have), so discord.js never
 * sees an `undefined` where Discord would have sent `null` or `[]`.
 * https://discord.com/developers/docs/resources/message#message-object
 */

const P = PermissionFlagsBits;

export const ALL_PERMISSIONS = Object.values(P).reduce((all, bit) => all | bit, 0n);

/** What @everyone may do in a newly created server. */
export const DEFAULT_EVERYONE_PERMISSIONS =
  P.CreateInstantInvite |
  P.ChangeNickname |
  P.ViewChannel |
  P.SendMessages |
  P.SendMessagesInThreads |
  P.CreatePublicThreads |
  P.CreatePrivateThreads |
  P.EmbedLinks |
  P.AttachFiles |
  P.AddReactions |
  P.UseExternalEmojis |
  P.UseExternalStickers |
  P.MentionEveryone |
  P.ReadMessageHistory |
  P.UseApplicationCommands |
  P.Connect |
  P.Speak |
  P.Stream |
  P.UseVAD;

/** What a chat bot's invite link asks for; Discord gives its managed role exactly these. */
export const DEFAULT_BOT_PERMISSIONS =
  P.ViewChannel |
  P.SendMessages |
  P.SendMessagesInThreads |
  P.CreatePublicThreads |
  P.EmbedLinks |
  P.AttachFiles |
  P.AddReactions |
  P.UseExternalEmojis |
  P.ReadMessageHistory |
  P.UseApplicationCommands;

/** Discord's limits on what one message may carry. https://discord.com/developers/docs/resources/message#create-message */
export const MAX_CONTENT_LENGTH = 2000;
export const MAX_EMBEDS = 10;
export const MAX_EMBED_TITLE_LENGTH = 256;
export const MAX_EMBED_DESCRIPTION_LENGTH = 4096;
export const MAX_EMBED_TOTAL_LENGTH = 6000;

/** Discord writes timestamps with microseconds and an explicit offset: `2024-05-01T12:00:00.123000+00:00`. */
export function toDiscordTimestamp(date: Date): string {
  return date.toISOString().replace('Z', '000+00:00');
}

export function buildUser(input: {
  id: string;
  username: string;
  globalName?: string | null;
  isBot?: boolean;
}): APIUser {
  const user: APIUser = {
    id: input.id,
    username: input.username,
    // Humans moved to unique usernames (discriminator "0"); bots kept a four-digit tag.
    discriminator: input.isBot ? '4821' : '0',
    global_name: input.isBot ? null : (input.globalName ?? input.username),
    avatar: null,
    public_flags: 0 as UserFlags,
    flags: 0 as UserFlags,
    banner: null,
    accent_color: null,
    avatar_decoration_data: null,
    collectibles: null,
    primary_guild: null,
  };
  if (input.isBot) user.bot = true;
  return user;
}

/** READY's `user` is the bot's own account, with the private fields only it may see. */
export function buildCurrentUser(bot: APIUser): APIUser {
  return { ...bot, verified: true, mfa_enabled: false, email: null, locale: 'en-US' };
}

export function buildRole(input: {
  id: string;
  name: string;
  permissions: bigint;
  position: number;
  botId?: string;
  color?: number;
}): APIRole {
  const color = input.color ?? 0;
  const role: APIRole = {
    id: input.id,
    name: input.name,
    color,
    colors: { primary_color: color, secondary_color: null, tertiary_color: null },
    hoist: false,
    icon: null,
    unicode_emoji: null,
    position: input.position,
    permissions: input.permissions.toString(),
    managed: input.botId !== undefined,
    mentionable: false,
    flags: 0 as RoleFlags,
  };
  if (input.botId !== undefined) role.tags = { bot_id: input.botId };
  return role;
}

export interface MemberRecord {
  userId: string;
  /** Role ids, without @everyone (Discord never lists it). */
  roleIds: string[];
  nick: string | null;
  joinedAt: Date;
}

/** A member as MESSAGE_CREATE carries it: everything but `user`. */
export function buildMemberWithoutUser(member: MemberRecord): Omit<APIGuildMember, 'user'> {
  return {
    nick: member.nick,
    avatar: null,
    banner: null,
    roles: [...member.roleIds],
    joined_at: toDiscordTimestamp(member.joinedAt),
    premium_since: null,
    deaf: false,
    mute: false,
    flags: 0 as GuildMemberFlags,
    pending: false,
    communication_disabled_until: null,
  };
}

export function buildMember(member: MemberRecord, user: APIUser): APIGuildMember {
  return { ...buildMemberWithoutUser(member), user };
}

/** A server's text channel: a plain one, or an announcement channel (whose messages others can follow). */
export function buildTextChannel(input: {
  id: string;
  guildId: string;
  name: string;
  position: number;
  overwrites?: APIOverwrite[];
  topic?: string | null;
  type?: TextChannelType;
}): APITextChannel | APINewsChannel {
  return {
    id: input.id,
    type: input.type ?? ChannelType.GuildText,
    guild_id: input.guildId,
    name: input.name,
    position: input.position,
    permission_overwrites: input.overwrites ?? [],
    parent_id: null,
    topic: input.topic ?? null,
    nsfw: false,
    last_message_id: null,
    last_pin_timestamp: null,
    rate_limit_per_user: 0,
    default_auto_archive_duration: 1440,
    flags: 0 as ChannelFlags,
  };
}

export function buildThreadChannel(input: {
  id: string;
  guildId: string;
  parentId: string;
  ownerId: string;
  name: string;
  type: ThreadChannelType;
  /** Minutes without a message before it is archived: 60, 1440, 4320 or 10080. Default 1440. */
  autoArchiveDuration?: ThreadAutoArchiveDuration;
  rateLimitPerUser?: number;
}): APIThreadChannel {
  const createdAt = toDiscordTimestamp(snowflakeDate(input.id));
  return {
    id: input.id,
    type: input.type,
    guild_id: input.guildId,
    parent_id: input.parentId,
    owner_id: input.ownerId,
    name: input.name,
    last_message_id: null,
    last_pin_timestamp: null,
    rate_limit_per_user: input.rateLimitPerUser ?? 0,
    message_count: 0,
    member_count: 1,
    total_message_sent: 0,
    flags: 0 as ChannelFlags,
    applied_tags: [],
    thread_metadata: {
      archived: false,
      auto_archive_duration: input.autoArchiveDuration ?? ThreadAutoArchiveDuration.OneDay,
      archive_timestamp: createdAt,
      locked: false,
      create_timestamp: createdAt,
    },
  };
}

export function buildDirectMessageChannel(input: { id: string; recipient: APIUser }): APIDMChannel {
  return {
    id: input.id,
    type: ChannelType.DM,
    name: null,
    last_message_id: null,
    last_pin_timestamp: null,
    recipients: [input.recipient],
    flags: 0 as ChannelFlags,
  };
}

export interface PermissionInputs {
  userId: string;
  guildId: string;
  ownerId: string;
  /** Every role of the guild, @everyone (whose id is the guild id) included. */
  roles: ReadonlyMap<string, APIRole>;
  memberRoleIds: readonly string[];
  overwrites: readonly APIOverwrite[];
}

/**
 * A member's permissions in one channel, computed the way Discord does: base role permissions, then the
 * @everyone overwrite, the role overwrites together, and the member's own overwrite.
 * https://discord.com/developers/docs/topics/permissions#permission-overwrites
 */
export function computePermissions(inputs: PermissionInputs): bigint {
  if (inputs.userId === inputs.ownerId) return ALL_PERMISSIONS;
  let permissions = BigInt(inputs.roles.get(inputs.guildId)?.permissions ?? '0');
  for (const roleId of inputs.memberRoleIds) {
    permissions |= BigInt(inputs.roles.get(roleId)?.permissions ?? '0');
  }
  if (permissions & P.Administrator) return ALL_PERMISSIONS;

  const everyone = inputs.overwrites.find((overwrite) => overwrite.id === inputs.guildId);
  if (everyone) permissions = (permissions & ~BigInt(everyone.deny)) | BigInt(everyone.allow);
  let allow = 0n;
  let deny = 0n;
  for (const overwrite of inputs.overwrites) {
    if (overwrite.type === OverwriteType.Role && inputs.memberRoleIds.includes(overwrite.id)) {
      allow |= BigInt(overwrite.allow);
      deny |= BigInt(overwrite.deny);
    }
  }
  permissions = (permissions & ~deny) | allow;
  const own = inputs.overwrites.find(
    (overwrite) => overwrite.type === OverwriteType.Member && overwrite.id === inputs.userId,
  );
  if (own) permissions = (permissions & ~BigInt(own.deny)) | BigInt(own.allow);
  // A channel one cannot see grants nothing else.
  return permissions & P.ViewChannel ? permissions : 0n;
}

export interface Mentions {
  userIds: string[];
  roleIds: string[];
  mentionsEveryone: boolean;
}

/** The mentions written into message text: `<@id>`, `<@!id>`, `<@&role>`, `@everyone`, `@here`. */
export function parseMentions(content: string): Mentions {
  const unique = (pattern: RegExp) => [...new Set([...content.matchAll(pattern)].map((match) => match[1]!))];
  return {
    userIds: unique(/<@!?(\d{15,21})>/g),
    roleIds: unique(/<@&(\d{15,21})>/g),
    mentionsEveryone: /@(everyone|here)\b/.test(content),
  };
}

export interface AllowedMentions {
  parse?: ('users' | 'roles' | 'everyone')[];
  users?: string[];
  roles?: string[];
  replied_user?: boolean;
}

/**
 * Who a bot message really pings. Without `allowed_mentions` everything written pings (and a reply pings
 * the replied-to author); with it, only what it allows. The message's `mentions` lists exactly these.
 * https://discord.com/developers/docs/resources/message#allowed-mentions-object
 */
export function applyAllowedMentions(
  written: Mentions,
  allowed: AllowedMentions | undefined,
  repliedAuthorId: string | undefined,
): Mentions {
  if (allowed === undefined) {
    const userIds = repliedAuthorId ? [...new Set([...written.userIds, repliedAuthorId])] : written.userIds;
    return { ...written, userIds };
  }
  const parse = allowed.parse ?? [];
  const userIds = written.userIds.filter((id) => parse.includes('users') || allowed.users?.includes(id));
  if (repliedAuthorId && allowed.replied_user && !userIds.includes(repliedAuthorId)) {
    userIds.push(repliedAuthorId);
  }
  return {
    userIds,
    roleIds: written.roleIds.filter((id) => parse.includes('roles') || allowed.roles?.includes(id)),
    mentionsEveryone: written.mentionsEveryone && parse.includes('everyone'),
  };
}

export interface MessageFields {
  id: string;
  channelId: string;
  author: APIUser;
  content: string;
  type: MessageType;
  mentions: APIUser[];
  mentionRoleIds: string[];
  mentionsEveryone: boolean;
  attachments?: APIAttachment[];
  embeds?: APIEmbed[];
  components?: unknown[];
  flags?: number;
  isTts?: boolean;
  nonce?: string | number;
  reference?: { message: APIMessage; guildId: string | undefined };
  webhookId?: string;
  applicationId?: string;
  interactionMetadata?: APIMessage['interaction_metadata'];
}

/** A message as REST returns it (no `guild_id`, no `member`: those ride only on gateway events). */
export function buildMessage(fields: MessageFields): APIMessage {
  const message: APIMessage = {
    id: fields.id,
    channel_id: fields.channelId,
    author: fields.author,
    content: fields.content,
    timestamp: toDiscordTimestamp(snowflakeDate(fields.id)),
    edited_timestamp: null,
    tts: fields.isTts ?? false,
    mention_everyone: fields.mentionsEveryone,
    mentions: fields.mentions,
    mention_roles: fields.mentionRoleIds,
    attachments: fields.attachments ?? [],
    embeds: fields.embeds ?? [],
    components: (fields.components ?? []) as APIMessage['components'],
    pinned: false,
    type: fields.type,
    flags: fields.flags ?? 0,
  };
  if (fields.nonce !== undefined) message.nonce = fields.nonce;
  if (fields.reference) {
    const referenced = fields.reference.message;
    message.message_reference = {
      type: 0,
      message_id: referenced.id,
      channel_id: referenced.channel_id,
      ...(fields.reference.guildId === undefined ? {} : { guild_id: fields.reference.guildId }),
    };
    // Discord resolves one level of reply: the referenced message does not carry its own referenced one.
    message.referenced_message = withoutReferencedMessage(referenced);
  }
  if (fields.webhookId !== undefined) message.webhook_id = fields.webhookId;
  if (fields.applicationId !== undefined) message.application_id = fields.applicationId;
  if (fields.interactionMetadata !== undefined) message.interaction_metadata = fields.interactionMetadata;
  return message;
}

export function withoutReferencedMessage(message: APIMessage): APIMessage {
  const copy = structuredClone(message);
  delete copy.referenced_message;
  return copy;
}

/**
 * Without the MESSAGE_CONTENT intent Discord blanks content, embeds, attachments and components of other
 * people's messages, except in DMs and messages that mention the bot.
 * https://discord.com/developers/docs/events/gateway#message-content-intent
 */
export function withoutContent<T extends APIMessage>(message: T): T {
  const copy = structuredClone(message);
  copy.content = '';
  copy.embeds = [];
  copy.attachments = [];
  copy.components = [];
  delete copy.poll;
  return copy;
}

export function buildAttachment(input: {
  id: string;
  filename: string;
  size: number;
  contentType: string | undefined;
  url: string;
  description?: string;
  isEphemeral?: boolean;
}): APIAttachment {
  const attachment: APIAttachment = {
    id: input.id,
    filename: input.filename,
    size: input.size,
    url: input.url,
    proxy_url: input.url,
  };
  if (input.contentType) attachment.content_type = input.contentType;
  if (input.description !== undefined) attachment.description = input.description;
  if (input.isEphemeral) attachment.ephemeral = true;
  return attachment;
}

/** Guesses a MIME type from a file name, as Discord's CDN does for uploads without one. */
export function contentTypeFor(filename: string): string | undefined {
  const extension = filename.split('.').pop()?.toLowerCase();
  const types: Record<string, string> = {
    txt: 'text/plain; charset=utf-8',
    md: 'text/markdown; charset=utf-8',
    json: 'application/json; charset=utf-8',
    png: 'image/png',
    jpg: 'image/jpeg',
    jpeg: 'image/jpeg',
    gif: 'image/gif',
    webp: 'image/webp',
    pdf: 'application/pdf',
  };
  return extension === undefined ? undefined : types[extension];
}

/** Finds a component by `custom_id` in a message's rows (and Components V2 containers and sections). */
export function findComponent(components: unknown, customId: string): { type: number } | undefined {
  if (!Array.isArray(components)) return undefined;
  for (const component of components as Record<string, unknown>[]) {
    if (component.custom_id === customId) return component as { type: number };
    const nested =
      findComponent(component.components, customId) ??
      (component.accessory ? findComponent([component.accessory], customId) : undefined);
    if (nested) return nested;
  }
  return undefined;
}
