import {
  type APIAttachment,
  type APIMessage,
  type APIUser,
  ChannelType,
  GatewayIntentBits,
  MessageFlags,
  MessageType,
  PermissionFlagsBits,
  type ThreadAutoArchiveDuration,
} from 'discord.js';
import type { Dispatcher } from './dispatcher.js';
import {
  type AllowedMentions,
  applyAllowedMentions,
  buildAttachment,
  buildCurrentUser,
  buildMessage,
  contentTypeFor,
  MAX_CONTENT_LENGTH,
  MAX_EMBED_DESCRIPTION_LENGTH,
  MAX_EMBED_TITLE_LENGTH,
  MAX_EMBED_TOTAL_LENGTH,
  MAX_EMBEDS,
  parseMentions,
  toDiscordTimestamp,
  withoutContent,
} from './payloads.js';
import { failures, type Handlers, type Outcome, type RecordedFile } from './rest.js';
import { compareSnowflakes, nextSnowflake } from './snowflake.js';
import type { InteractionRoute } from './interactions.js';
import type { FakeChannel, World } from './world.js';

/** What the endpoint handlers share. */
export interface FakeContext {
  world: World;
  dispatcher: Dispatcher;
  /** `http://127.0.0.1:PORT` */
  origin(): string;
  gatewayUrl(): string;
  /** Dispatch MESSAGE_CREATE / MESSAGE_UPDATE for the bot's own messages, as Discord does. */
  echoesBotMessages: boolean;
  enabledPrivilegedIntents: number;
  interactionDeadlineMs: number;
  sessionStartLimit: { total: number; remaining: number };
  recommendedShards: number;
  application(): Record<string, unknown>;
}

const MESSAGE_PAGE_DEFAULT = 50;
const MESSAGE_PAGE_MAX = 100;
/** Flags a message sender may set; Ephemeral only through interactions. */
const SENDABLE_FLAGS =
  MessageFlags.SuppressEmbeds |
  MessageFlags.SuppressNotifications |
  MessageFlags.IsVoiceMessage |
  MessageFlags.IsComponentsV2;
const EDITABLE_FLAGS = MessageFlags.SuppressEmbeds | MessageFlags.IsComponentsV2;
/**
 * With `enforce_nonce`, Discord checks a nonce for uniqueness "in the past few minutes"; the exact window
 * is not documented. https://discord.com/developers/docs/resources/message#create-message
 */
export const NONCE_WINDOW_MS = 5 * 60_000;

export type RouteHandlers = Omit<Handlers, InteractionRoute>;

export function createRouteHandlers(context: FakeContext): RouteHandlers {
  const { world, dispatcher } = context;
  const { echo, notify } = gatewayFollowUps(context);

  return {
    'GET /gateway': () => ({ status: 200, body: { url: context.gatewayUrl() } }),
    'GET /gateway/bot': () => ({
      status: 200,
      body: {
        url: context.gatewayUrl(),
        shards: context.recommendedShards,
        session_start_limit: {
          total: context.sessionStartLimit.total,
          remaining: context.sessionStartLimit.remaining,
          reset_after: 86_400_000,
          max_concurrency: 1,
        },
      },
    }),
    'GET /users/@me': () => ({ status: 200, body: buildCurrentUser(world.bot) }),
    'GET /users/:user_id': ({ params }) => {
      const record = world.users.get(params.user_id!);
      if (!record) throw failures.unknownUser();
      return { status: 200, body: record.user };
    },
    'POST /users/@me/channels': ({ request }) => {
      const recipientId = String(request.body?.recipient_id ?? '');
      if (!world.users.has(recipientId)) throw failures.unknownUser();
      return { status: 200, body: world.directMessageChannel(recipientId) };
    },
    'GET /applications/@me': () => ({ status: 200, body: context.application() }),
    'GET /oauth2/applications/@me': () => ({ status: 200, body: context.application() }),

    'GET /channels/:channel_id': ({ params }) => {
      const channel = guardChannel(world, params.channel_id!, 'view');
      return { status: 200, body: channel };
    },
    'GET /channels/:channel_id/messages': ({ params, query }) => {
      const channelId = params.channel_id!;
      guardChannel(world, channelId, 'view');
      // Without READ_MESSAGE_HISTORY Discord answers an empty list rather than an error.
      if (!hasPermission(world, channelId, PermissionFlagsBits.ReadMessageHistory))
        return { status: 200, body: [] };
      const messages = pageOfMessages(world.messagesIn(channelId), query).map((message) =>
        visibleOverRest(context, message),
      );
      return { status: 200, body: messages };
    },
    'POST /channels/:channel_id/messages': ({ params, request }) => {
      const channelId = params.channel_id!;
      guardChannel(world, channelId, 'send');
      if (request.files.length > 0 && !hasPermission(world, channelId, PermissionFlagsBits.AttachFiles)) {
        throw failures.missingPermissions();
      }
      // A repeated create (a client retrying a request whose response it never got) returns the message
      // the first one made, and makes no new one.
      const nonce = enforcedNonce(request.body);
      const now = Date.now();
      const earlier =
        nonce === undefined ? undefined : world.messageByNonce(world.bot.id, nonce, now - NONCE_WINDOW_MS);
      if (earlier) return { status: 200, body: earlier };
      const reference = resolveReference(world, channelId, request.body?.message_reference);
      const message = composeMessage(context, {
        channelId,
        body: request.body,
        files: request.files,
        author: world.bot,
        type: reference ? MessageType.Reply : MessageType.Default,
        reference,
        allowsEphemeral: false,
      });
      if (nonce !== undefined) world.rememberNonce(world.bot.id, nonce, message.id, now);
      return { status: 200, body: message, after: echo(() => dispatcher.messageCreate(message)) };
    },
    'GET /channels/:channel_id/messages/:message_id': ({ params }) => {
      const channelId = params.channel_id!;
      guardChannel(world, channelId, 'view');
      if (!hasPermission(world, channelId, PermissionFlagsBits.ReadMessageHistory))
        throw failures.missingAccess();
      const message = world.message(channelId, params.message_id!);
      if (!message || isEphemeral(message)) throw failures.unknownMessage();
      return { status: 200, body: visibleOverRest(context, message) };
    },
    'PATCH /channels/:channel_id/messages/:message_id': ({ params, request }) => {
      const channelId = params.channel_id!;
      guardChannel(world, channelId, 'view');
      const message = world.message(channelId, params.message_id!);
      if (!message || isEphemeral(message)) throw failures.unknownMessage();
      if (message.author.id !== world.bot.id) throw failures.cannotEditOthersMessage();
      const updated = editMessage(context, message, request.body, request.files);
      return { status: 200, body: updated, after: echo(() => dispatcher.messageUpdate(updated)) };
    },
    'DELETE /channels/:channel_id/messages/:message_id': ({ params }) => {
      const channelId = params.channel_id!;
      const channel = guardChannel(world, channelId, 'view');
      const message = world.message(channelId, params.message_id!);
      if (!message || isEphemeral(message)) throw failures.unknownMessage();
      if (message.author.id !== world.bot.id) {
        if (channel.type === ChannelType.DM) throw failures.missingPermissions();
        if (!hasPermission(world, channelId, PermissionFlagsBits.ManageMessages))
          throw failures.missingPermissions();
      }
      world.deleteMessage(channelId, message.id);
      return { status: 204, after: notify(() => dispatcher.messageDelete(message)) };
    },
    'PUT /channels/:channel_id/messages/:message_id/reactions/:emoji/@me': ({ params }) => {
      const message = reactableMessage(world, params);
      const emoji = parseEmoji(params.emoji!);
      const reactions = (message.reactions ??= []);
      const existing = reactions.find((reaction) => sameEmoji(reaction.emoji, emoji));
      if (existing?.me) return { status: 204 };
      if (!existing && !hasPermission(world, message.channel_id, PermissionFlagsBits.AddReactions)) {
        throw failures.missingPermissions();
      }
      if (existing) {
        existing.me = true;
        existing.count += 1;
        existing.count_details.normal += 1;
      } else {
        reactions.push({
          emoji,
          count: 1,
          count_details: { burst: 0, normal: 1 },
          me: true,
          me_burst: false,
          burst_colors: [],
        });
      }
      return { status: 204 };
    },
    'DELETE /channels/:channel_id/messages/:message_id/reactions/:emoji/@me': ({ params }) => {
      const message = reactableMessage(world, params);
      const emoji = parseEmoji(params.emoji!);
      const reaction = message.reactions?.find((candidate) => sameEmoji(candidate.emoji, emoji));
      if (reaction?.me) {
        reaction.me = false;
        reaction.count -= 1;
        reaction.count_details.normal -= 1;
        if (reaction.count === 0)
          message.reactions = message.reactions!.filter((other) => other !== reaction);
      }
      return { status: 204 };
    },
    'POST /channels/:channel_id/threads': ({ params, request }) => {
      const parentId = params.channel_id!;
      guardChannel(world, parentId, 'view');
      const name = validateThreadName(request.body?.name);
      // Without a starter message Discord makes a private thread unless told otherwise.
      const type =
        request.body?.type === ChannelType.PublicThread
          ? ChannelType.PublicThread
          : ChannelType.PrivateThread;
      const needed =
        type === ChannelType.PublicThread
          ? PermissionFlagsBits.CreatePublicThreads
          : PermissionFlagsBits.CreatePrivateThreads;
      if (!hasPermission(world, parentId, needed)) throw failures.missingPermissions();
      const thread = world.addThread({ parentId, name, ownerId: world.bot.id, type });
      return { status: 201, body: thread, after: notify(() => dispatcher.threadCreate(thread)) };
    },
    // https://discord.com/developers/docs/resources/channel#start-thread-from-message
    'POST /channels/:channel_id/messages/:message_id/threads': ({ params, request }) => {
      const parentId = params.channel_id!;
      const parent = guardChannel(world, parentId, 'view');
      // A text channel's message starts a public thread, an announcement channel's an announcement thread;
      // DMs, threads, forums and the rest start none.
      const type =
        parent.type === ChannelType.GuildText
          ? ChannelType.PublicThread
          : parent.type === ChannelType.GuildAnnouncement
            ? ChannelType.AnnouncementThread
            : undefined;
      if (type === undefined) throw failures.wrongChannelType();
      const name = validateThreadName(request.body?.name);
      const autoArchiveDuration = validateAutoArchiveDuration(request.body?.auto_archive_duration);
      const rateLimitPerUser = validateRateLimitPerUser(request.body?.rate_limit_per_user);
      if (!hasPermission(world, parentId, PermissionFlagsBits.CreatePublicThreads))
        throw failures.missingPermissions();
      const message = world.message(parentId, params.message_id!);
      if (!message || isEphemeral(message)) throw failures.unknownMessage();
      if (message.thread) throw failures.threadAlreadyCreated();
      // A thread started from a message takes the message's id.
      const thread = world.addThread({
        id: message.id,
        parentId,
        name,
        ownerId: world.bot.id,
        type,
        autoArchiveDuration,
        rateLimitPerUser,
      });
      // Its first message is a system message pointing back at the message in the parent channel.
      world.storeMessage(
        buildMessage({
          id: nextSnowflake(),
          channelId: thread.id,
          author: world.bot,
          content: '',
          mentions: [],
          mentionRoleIds: [],
          mentionsEveryone: false,
          type: MessageType.ThreadStarterMessage,
          reference: { message, guildId: thread.guild_id },
        }),
      );
      const updated = { ...message, thread, flags: (message.flags ?? 0) | MessageFlags.HasThread };
      world.replaceMessage(updated);
      return {
        status: 201,
        body: thread,
        after: notify(() => {
          dispatcher.threadCreate(thread);
          dispatcher.messageUpdate(updated);
        }),
      };
    },
    'POST /channels/:channel_id/typing': ({ params }) => {
      guardChannel(world, params.channel_id!, 'send');
      return { status: 204 };
    },

    'GET /guilds/:guild_id': ({ params }) => {
      const guild = world.guilds.get(params.guild_id!);
      if (!guild) throw failures.unknownGuild();
      const {
        joined_at: _joinedAt,
        large: _large,
        unavailable: _unavailable,
        member_count: _memberCount,
        voice_states: _voiceStates,
        members: _members,
        channels: _channels,
        threads: _threads,
        presences: _presences,
        stage_instances: _stageInstances,
        guild_scheduled_events: _events,
        soundboard_sounds: _sounds,
        ...restGuild
      } = world.guildCreatePayload(guild.id, false);
      return { status: 200, body: restGuild };
    },
    'GET /guilds/:guild_id/members/:user_id': ({ params }) => {
      const guild = world.guilds.get(params.guild_id!);
      if (!guild) throw failures.unknownGuild();
      if (!guild.members.has(params.user_id!)) throw failures.unknownMember();
      return { status: 200, body: world.membersOf(guild.id, [params.user_id!])[0] };
    },

    'GET /attachments/:channel_id/:attachment_id/:filename': ({ params }): Outcome => {
      const stored = world.attachmentData.get(params.attachment_id!);
      if (!stored) return { status: 404, body: { message: '404: Not Found', code: 0 } };
      const download = { bytesSent: 0, isComplete: false };
      stored.downloads.push(download);
      return { status: 200, raw: { ...stored, download } };
    },
  };
}

/**
 * Gateway events that follow a REST change. A bot using REST without a gateway session (a
 * deploy-commands script) gets none, as on Discord; `echo` is for the bot's own messages, which
 * Discord echoes back unless the fake was told not to.
 */
export function gatewayFollowUps(context: FakeContext) {
  const notify = (action: () => void) => () => {
    if (context.dispatcher.hasSession) action();
  };
  const echo = (action: () => void) => (context.echoesBotMessages ? notify(action) : undefined);
  return { echo, notify };
}

export interface MessageDraft {
  channelId: string;
  /** The request body: content, embeds, components, allowed_mentions, flags, attachments… */
  body: any;
  files: RecordedFile[];
  author: APIUser;
  type: MessageType;
  reference?: APIMessage | undefined;
  /** Interaction responses may be ephemeral; channel messages may not. */
  allowsEphemeral: boolean;
  /** A deferred response's "thinking…" message: empty, flagged Loading. */
  isLoading?: boolean;
  webhookId?: string;
  applicationId?: string;
  interactionMetadata?: APIMessage['interaction_metadata'];
}

/** Validates a send request and stores the message it creates, as Discord would. */
export function composeMessage(context: FakeContext, draft: MessageDraft): APIMessage {
  const body = (draft.body ?? {}) as Record<string, any>;
  validateMessageBody(body);
  const id = nextSnowflake();
  const requestedFlags = Number(body.flags ?? 0);
  const flags =
    (requestedFlags & (SENDABLE_FLAGS | (draft.allowsEphemeral ? MessageFlags.Ephemeral : 0))) |
    (draft.isLoading ? MessageFlags.Loading : 0);
  const content = typeof body.content === 'string' ? body.content : '';
  const attachments = collectAttachments(context, draft.channelId, body.attachments, draft.files, []);
  const embeds = Array.isArray(body.embeds) ? body.embeds : [];
  const components = Array.isArray(body.components) ? body.components : [];
  const hasStickers = Array.isArray(body.sticker_ids) && body.sticker_ids.length > 0;
  if (
    !draft.isLoading &&
    !content &&
    !embeds.length &&
    !attachments.length &&
    !components.length &&
    !hasStickers &&
    !body.poll
  ) {
    throw failures.emptyMessage();
  }
  const mentions = resolveMentions(context.world, content, body.allowed_mentions, draft.reference?.author.id);
  const channel = context.world.channel(draft.channelId);
  const message = buildMessage({
    id,
    channelId: draft.channelId,
    author: draft.author,
    content,
    type: draft.type,
    ...mentions,
    attachments,
    embeds,
    components,
    flags,
    isTts: body.tts === true,
    nonce: body.nonce,
    reference: draft.reference && { message: draft.reference, guildId: context.world.guildIdOf(channel) },
    webhookId: draft.webhookId,
    applicationId: draft.applicationId,
    interactionMetadata: draft.interactionMetadata,
  });
  context.world.storeMessage(message);
  return message;
}

/** Applies an edit request to a stored message, as Discord would, and stores the result. */
export function editMessage(
  context: FakeContext,
  message: APIMessage,
  rawBody: unknown,
  files: RecordedFile[],
) {
  const body = (rawBody ?? {}) as Record<string, any>;
  validateMessageBody(body);
  const updated = structuredClone(message);
  if ('content' in body) updated.content = typeof body.content === 'string' ? body.content : '';
  if ('embeds' in body) updated.embeds = Array.isArray(body.embeds) ? body.embeds : [];
  if ('components' in body) updated.components = Array.isArray(body.components) ? body.components : [];
  if (typeof body.flags === 'number') {
    updated.flags = ((updated.flags ?? 0) & ~EDITABLE_FLAGS) | (body.flags & EDITABLE_FLAGS);
  }
  // Editing a deferred response replaces its "thinking…" state.
  updated.flags = (updated.flags ?? 0) & ~MessageFlags.Loading;
  updated.attachments = collectAttachments(
    context,
    message.channel_id,
    body.attachments,
    files,
    message.attachments,
  );
  if ('content' in body || 'allowed_mentions' in body) {
    const repliedAuthorId = message.referenced_message?.author.id;
    const wasRepliedAuthorMentioned = message.mentions.some((user) => user.id === repliedAuthorId);
    const mentions = resolveMentions(
      context.world,
      updated.content,
      body.allowed_mentions,
      wasRepliedAuthorMentioned ? repliedAuthorId : undefined,
    );
    updated.mentions = mentions.mentions;
    updated.mention_roles = mentions.mentionRoleIds;
    updated.mention_everyone = mentions.mentionsEveryone;
  }
  const isEmpty =
    !updated.content &&
    !updated.embeds.length &&
    !updated.attachments.length &&
    !(updated.components?.length ?? 0) &&
    !updated.sticker_items?.length &&
    !updated.poll;
  if (isEmpty) throw failures.emptyMessage();
  updated.edited_timestamp = toDiscordTimestamp(new Date());
  context.world.replaceMessage(updated);
  return updated;
}

/** The nonce a create asks Discord to enforce: only with `enforce_nonce: true` is it checked for reuse. */
function enforcedNonce(body: any): string | number | undefined {
  const nonce: unknown = body?.nonce;
  if (body?.enforce_nonce !== true) return undefined;
  return typeof nonce === 'string' || typeof nonce === 'number' ? nonce : undefined;
}

/** The replied-to message, or the error Discord gives for a reply to a message that does not exist. */
export function resolveReference(world: World, channelId: string, reference: any): APIMessage | undefined {
  if (!reference?.message_id) return undefined;
  const found = world.message(String(reference.channel_id ?? channelId), String(reference.message_id));
  if (found) return found;
  if (reference.fail_if_not_exists === false) return undefined;
  throw failures.invalidFormBody(['message_reference'], 'REPLIES_UNKNOWN_MESSAGE', 'Unknown message');
}

function resolveMentions(
  world: World,
  content: string,
  allowed: AllowedMentions | undefined,
  repliedAuthorId: string | undefined,
) {
  const mentions = applyAllowedMentions(parseMentions(content), allowed, repliedAuthorId);
  return {
    // Mentions of unknown users are dropped, as Discord drops them.
    mentions: mentions.userIds.flatMap((id) => world.users.get(id)?.user ?? []),
    mentionRoleIds: mentions.roleIds,
    mentionsEveryone: mentions.mentionsEveryone,
  };
}

function validateMessageBody(body: Record<string, any>): void {
  if (typeof body.content === 'string' && [...body.content].length > MAX_CONTENT_LENGTH) {
    throw failures.invalidFormBody(
      ['content'],
      'BASE_TYPE_MAX_LENGTH',
      `Must be ${MAX_CONTENT_LENGTH} or fewer in length.`,
    );
  }
  const embeds: any[] = Array.isArray(body.embeds) ? body.embeds : [];
  if (embeds.length > MAX_EMBEDS) {
    throw failures.invalidFormBody(
      ['embeds'],
      'BASE_TYPE_MAX_LENGTH',
      `Must be ${MAX_EMBEDS} or fewer in length.`,
    );
  }
  let total = 0;
  embeds.forEach((embed, index) => {
    const title = String(embed?.title ?? '');
    const description = String(embed?.description ?? '');
    if (title.length > MAX_EMBED_TITLE_LENGTH) {
      throw failures.invalidFormBody(
        ['embeds', index, 'title'],
        'BASE_TYPE_MAX_LENGTH',
        `Must be ${MAX_EMBED_TITLE_LENGTH} or fewer in length.`,
      );
    }
    if (description.length > MAX_EMBED_DESCRIPTION_LENGTH) {
      throw failures.invalidFormBody(
        ['embeds', index, 'description'],
        'BASE_TYPE_MAX_LENGTH',
        `Must be ${MAX_EMBED_DESCRIPTION_LENGTH} or fewer in length.`,
      );
    }
    const fields: any[] = Array.isArray(embed?.fields) ? embed.fields : [];
    total +=
      title.length +
      description.length +
      String(embed?.footer?.text ?? '').length +
      String(embed?.author?.name ?? '').length +
      fields.reduce(
        (sum, field) => sum + String(field?.name ?? '').length + String(field?.value ?? '').length,
        0,
      );
  });
  if (total > MAX_EMBED_TOTAL_LENGTH) {
    throw failures.invalidFormBody(
      ['embeds'],
      'BASE_TYPE_MAX_LENGTH',
      `Embed size exceeds maximum size of ${MAX_EMBED_TOTAL_LENGTH}`,
    );
  }
  const allowed = body.allowed_mentions as AllowedMentions | undefined;
  for (const kind of ['users', 'roles'] as const) {
    if (allowed?.parse?.includes(kind) && allowed[kind]?.length) {
      throw failures.invalidFormBody(
        ['allowed_mentions'],
        'MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE',
        `parse:["${kind}"] and ${kind}: [ids...] are mutually exclusive.`,
      );
    }
  }
}

/**
 * The attachments of a sent or edited message. `attachments` entries name kept attachments by id and new
 * uploads by their index in `files[N]`; uploads not named still attach. Without `attachments` an edit
 * keeps what the message had.
 */
function collectAttachments(
  context: FakeContext,
  channelId: string,
  requested: { id: string | number; filename?: string; description?: string }[] | undefined,
  files: RecordedFile[],
  existing: APIAttachment[],
): APIAttachment[] {
  const upload = (file: RecordedFile, filename: string, description?: string) => {
    const id = nextSnowflake();
    const contentType = file.contentType || contentTypeFor(filename);
    context.world.attachmentData.set(id, { data: file.data, contentType, downloads: [] });
    return buildAttachment({
      id,
      filename,
      size: file.size,
      contentType,
      url: `${context.origin()}/attachments/${channelId}/${id}/${encodeURIComponent(filename)}`,
      description,
    });
  };
  const byIndex = new Map(
    files.map((file) => [/^files\[(\d+)\]$/.exec(file.field)?.[1] ?? file.field, file]),
  );
  const used = new Set<RecordedFile>();
  const result: APIAttachment[] = [];
  if (!Array.isArray(requested)) {
    result.push(...existing);
  } else {
    requested.forEach((entry, index) => {
      const kept = existing.find((attachment) => attachment.id === String(entry.id));
      if (kept) {
        result.push(kept);
        return;
      }
      const file = byIndex.get(String(entry.id));
      if (!file) {
        throw failures.invalidFormBody(
          ['attachments', index, 'id'],
          'ATTACHMENT_NOT_FOUND',
          'Unknown attachment',
        );
      }
      used.add(file);
      result.push(upload(file, entry.filename ?? file.name, entry.description));
    });
  }
  for (const file of files) if (!used.has(file)) result.push(upload(file, file.name));
  return result;
}

/**
 * The channel, if the bot may do `need` in it; otherwise the error Discord answers. Sending needs
 * SEND_MESSAGES (SEND_MESSAGES_IN_THREADS in threads); a DM fails when the user has closed DMs.
 */
export function guardChannel(world: World, channelId: string, need: 'view' | 'send'): FakeChannel {
  const channel = world.channels.get(channelId);
  if (!channel) throw failures.unknownChannel();
  if (channel.type === ChannelType.DM) {
    const recipient = channel.recipients?.[0];
    const acceptsDirectMessages = recipient ? world.users.get(recipient.id)?.acceptsDirectMessages : false;
    if (need === 'send' && !acceptsDirectMessages) throw failures.cannotMessageUser();
    return channel;
  }
  if (!hasPermission(world, channelId, PermissionFlagsBits.ViewChannel)) throw failures.missingAccess();
  if (need === 'send' && !world.canSendIn(channelId, world.bot.id)) throw failures.missingPermissions();
  return channel;
}

function hasPermission(world: World, channelId: string, permission: bigint): boolean {
  return (world.permissionsIn(channelId, world.bot.id) & permission) === permission;
}

/** Newest first, as Discord pages them; `before`, `after`, `around` and `limit` as documented. */
function pageOfMessages(messages: APIMessage[], query: URLSearchParams): APIMessage[] {
  const limit = Math.min(Math.max(Number(query.get('limit') ?? MESSAGE_PAGE_DEFAULT), 1), MESSAGE_PAGE_MAX);
  const visible = messages.filter((message) => !isEphemeral(message));
  const before = query.get('before');
  const after = query.get('after');
  const around = query.get('around');
  let page: APIMessage[];
  if (before) {
    page = visible.filter((message) => compareSnowflakes(message.id, before) < 0).slice(-limit);
  } else if (after) {
    page = visible.filter((message) => compareSnowflakes(message.id, after) > 0).slice(0, limit);
  } else if (around) {
    const older = visible.filter((message) => compareSnowflakes(message.id, around) < 0);
    const newer = visible.filter((message) => compareSnowflakes(message.id, around) >= 0);
    const half = Math.floor(limit / 2);
    page = [...older.slice(older.length - half), ...newer.slice(0, limit - Math.min(half, older.length))];
  } else {
    page = visible.slice(-limit);
  }
  return page.reverse();
}

/** Over REST the MESSAGE_CONTENT rule follows the developer portal switch, not the IDENTIFY intents. */
function visibleOverRest(context: FakeContext, message: APIMessage): APIMessage {
  const isEnabled = (context.enabledPrivilegedIntents & GatewayIntentBits.MessageContent) !== 0;
  if (isEnabled || !context.dispatcher.isContentHidden(message, 0)) return message;
  return withoutContent(message);
}

function reactableMessage(world: World, params: Record<string, string>): APIMessage {
  const channelId = params.channel_id!;
  guardChannel(world, channelId, 'view');
  if (!hasPermission(world, channelId, PermissionFlagsBits.ReadMessageHistory))
    throw failures.missingPermissions();
  const message = world.message(channelId, params.message_id!);
  if (!message || isEphemeral(message)) throw failures.unknownMessage();
  return message;
}

/** `👍` for a Unicode emoji, `name:id` for a custom one. */
function parseEmoji(value: string): { id: string | null; name: string } {
  const custom = /^(.+):(\d+)$/.exec(value);
  return custom ? { name: custom[1]!, id: custom[2]! } : { name: value, id: null };
}

function sameEmoji(
  left: { id: string | null; name: string | null },
  right: { id: string | null; name: string },
) {
  return left.id === right.id && (left.id !== null || left.name === right.name);
}

function validateThreadName(name: unknown): string {
  if (typeof name !== 'string' || name.length < 1 || name.length > 100) {
    throw failures.invalidFormBody(['name'], 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.');
  }
  return name;
}

/** The archive durations Discord offers, in minutes; without one a thread takes its parent's default. */
const AUTO_ARCHIVE_DURATIONS = [60, 1440, 4320, 10080];
const MAX_RATE_LIMIT_PER_USER = 21_600;

function validateAutoArchiveDuration(value: unknown): ThreadAutoArchiveDuration | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !AUTO_ARCHIVE_DURATIONS.includes(value)) {
    throw failures.invalidFormBody(
      ['auto_archive_duration'],
      'BASE_TYPE_CHOICES',
      `Value must be one of {${AUTO_ARCHIVE_DURATIONS.join(', ')}}.`,
    );
  }
  return value as ThreadAutoArchiveDuration;
}

function validateRateLimitPerUser(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > MAX_RATE_LIMIT_PER_USER) {
    throw failures.invalidFormBody(
      ['rate_limit_per_user'],
      'NUMBER_TYPE_MAX',
      `int value should be less than or equal to ${MAX_RATE_LIMIT_PER_USER}.`,
    );
  }
  return value as number;
}

function isEphemeral(message: APIMessage): boolean {
  return ((message.flags ?? 0) & MessageFlags.Ephemeral) !== 0;
}
