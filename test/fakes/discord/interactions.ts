import { randomBytes } from 'node:crypto';
import {
  type APIApplicationCommand,
  type APIMessage,
  ApplicationCommandOptionType,
  ApplicationCommandType,
  ComponentType,
  InteractionResponseType,
  InteractionType,
  MessageFlags,
  MessageType,
} from 'discord.js';
import { buildMember, findComponent } from './payloads.js';
import { type Call, failures, type Handlers, type Outcome } from './rest.js';
import { composeMessage, editMessage, type FakeContext, gatewayFollowUps } from './routes.js';
import { nextSnowflake } from './snowflake.js';
import type { InteractionRecord, World } from './world.js';

/**
 * Interactions end to end: the INTERACTION_CREATE payloads a user's command or click produces, the
 * callback that acknowledges them (within Discord's three seconds, once), the interaction webhook that
 * edits `@original` and sends follow-ups, and command registration.
 * https://discord.com/developers/docs/interactions/receiving-and-responding
 */

export type OptionValue = string | number | boolean;

export interface ChatInputInput {
  commandName: string;
  subcommand?: string;
  subcommandGroup?: string;
  /** Option values by name. Types come from the registered command; unregistered ones are inferred. */
  options?: Record<string, OptionValue>;
  userId: string;
  channelId: string;
  locale?: string;
}

export interface ComponentInput {
  messageId: string;
  customId: string;
  /** Select menus only: the chosen values. */
  values?: string[];
  userId: string;
  locale?: string;
}

const ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024;
const SELECT_TYPES: number[] = [
  ComponentType.StringSelect,
  ComponentType.UserSelect,
  ComponentType.RoleSelect,
  ComponentType.MentionableSelect,
  ComponentType.ChannelSelect,
];

export function buildChatInputInteraction(context: FakeContext, input: ChatInputInput) {
  const { world } = context;
  const channel = world.channel(input.channelId);
  const guildId = world.guildIdOf(channel);
  const command = world.findCommand(input.commandName, guildId);
  if (command && command.type !== undefined && command.type !== ApplicationCommandType.ChatInput) {
    throw new Error(`fake discord: /${input.commandName} is registered, but not as a slash command`);
  }
  const resolved: Record<string, Record<string, unknown>> = {};
  let definitions = command?.options;
  let path = `/${input.commandName}`;
  const wrap: { name: string; type: ApplicationCommandOptionType }[] = [];
  if (input.subcommandGroup !== undefined) {
    definitions = descend(
      definitions,
      input.subcommandGroup,
      ApplicationCommandOptionType.SubcommandGroup,
      path,
    );
    path += ` ${input.subcommandGroup}`;
    wrap.push({ name: input.subcommandGroup, type: ApplicationCommandOptionType.SubcommandGroup });
  }
  if (input.subcommand !== undefined) {
    definitions = descend(definitions, input.subcommand, ApplicationCommandOptionType.Subcommand, path);
    path += ` ${input.subcommand}`;
    wrap.push({ name: input.subcommand, type: ApplicationCommandOptionType.Subcommand });
  }
  let options: unknown[] = buildOptions(
    world,
    guildId,
    path,
    command ? (definitions ?? []) : undefined,
    input.options ?? {},
    resolved,
  );
  for (const level of wrap.reverse()) options = [{ ...level, options }];

  const data: Record<string, unknown> = {
    id: command?.id ?? nextSnowflake(),
    name: input.commandName,
    type: ApplicationCommandType.ChatInput,
  };
  if (options.length > 0) data.options = options;
  if (Object.keys(resolved).length > 0) data.resolved = resolved;
  if (command?.guild_id) data.guild_id = command.guild_id;
  return baseInteraction(context, {
    type: InteractionType.ApplicationCommand,
    channelId: input.channelId,
    userId: input.userId,
    locale: input.locale,
    commandName: input.commandName,
    data,
  });
}

export function buildComponentInteraction(context: FakeContext, input: ComponentInput) {
  const message = context.world.findMessage(input.messageId);
  if (!message) throw new Error(`fake discord: no message ${input.messageId} to interact with`);
  const component = findComponent(message.components, input.customId);
  if (!component) {
    throw new Error(
      `fake discord: message ${input.messageId} has no component with custom_id ${input.customId}`,
    );
  }
  const isSelect = SELECT_TYPES.includes(component.type);
  if (isSelect !== (input.values !== undefined)) {
    throw new Error(
      `fake discord: ${input.customId} is ${isSelect ? 'a select menu: pass values' : 'not a select menu'}`,
    );
  }
  const data: Record<string, unknown> = { custom_id: input.customId, component_type: component.type };
  if (input.values) data.values = input.values;
  const built = baseInteraction(context, {
    type: InteractionType.MessageComponent,
    channelId: message.channel_id,
    userId: input.userId,
    locale: input.locale,
    commandName: undefined,
    data,
  });
  built.payload.message = message;
  built.record.componentMessageId = message.id;
  return built;
}

function baseInteraction(
  context: FakeContext,
  input: {
    type: InteractionType;
    channelId: string;
    userId: string;
    locale: string | undefined;
    commandName: string | undefined;
    data: Record<string, unknown>;
  },
) {
  const { world } = context;
  const channel = world.channel(input.channelId);
  const guildId = world.guildIdOf(channel);
  const user = world.user(input.userId);
  const id = nextSnowflake();
  // Real tokens are long opaque strings starting with base64 of "interaction:".
  const token = `aW50ZXJhY3Rpb246${Buffer.from(id).toString('base64url')}${randomBytes(60).toString('base64url')}`;
  const locale = input.locale ?? 'en-US';
  const payload: Record<string, unknown> = {
    id,
    application_id: world.applicationId,
    type: input.type,
    data: input.data,
    token,
    version: 1,
    channel_id: input.channelId,
    channel,
    app_permissions: world.permissionsIn(input.channelId, world.bot.id).toString(),
    locale,
    entitlements: [],
    // A guild-installed app: keyed 0 by the guild, or "0" in the bot's DMs.
    authorizing_integration_owners: { '0': guildId ?? '0' },
    context: guildId ? 0 : 1,
    attachment_size_limit: ATTACHMENT_SIZE_LIMIT,
  };
  if (guildId) {
    const guild = world.guild(guildId);
    const member = guild.members.get(user.id);
    if (!member) throw new Error(`fake discord: user ${user.id} is not a member of guild ${guildId}`);
    payload.guild_id = guildId;
    payload.guild = { id: guildId, locale: 'en-US', features: [] };
    payload.guild_locale = 'en-US';
    payload.member = {
      ...buildMember(member, user),
      permissions: world.permissionsIn(input.channelId, user.id).toString(),
    };
  } else {
    payload.user = user;
  }
  const record: InteractionRecord = {
    id,
    token,
    type: input.type,
    channelId: input.channelId,
    guildId,
    userId: user.id,
    commandName: input.commandName,
    createdAt: Date.now(),
    callbackType: undefined,
    originalMessageId: undefined,
    componentMessageId: undefined,
    followUpIds: [],
  };
  return { payload, record };
}

function descend(
  definitions: APIApplicationCommand['options'],
  name: string,
  type: ApplicationCommandOptionType,
  path: string,
) {
  if (definitions === undefined) return undefined;
  const found = definitions.find((option) => option.name === name && option.type === type);
  if (!found) throw new Error(`fake discord: ${path} has no ${ApplicationCommandOptionType[type]} ${name}`);
  return (found as { options?: APIApplicationCommand['options'] }).options ?? [];
}

function buildOptions(
  world: World,
  guildId: string | undefined,
  path: string,
  definitions: APIApplicationCommand['options'] | undefined,
  values: Record<string, OptionValue>,
  resolved: Record<string, Record<string, unknown>>,
) {
  if (definitions) {
    for (const definition of definitions) {
      if ((definition as { required?: boolean }).required && !(definition.name in values)) {
        throw new Error(
          `fake discord: ${path} needs option ${definition.name}; Discord would not send it without`,
        );
      }
    }
  }
  return Object.entries(values).map(([name, value]) => {
    const definition = definitions?.find((option) => option.name === name);
    if (definitions && !definition) throw new Error(`fake discord: ${path} has no option ${name}`);
    const type = definition?.type ?? inferOptionType(value);
    resolveOption(world, guildId, type, String(value), resolved);
    return { name, type, value };
  });
}

function inferOptionType(value: OptionValue): ApplicationCommandOptionType {
  if (typeof value === 'boolean') return ApplicationCommandOptionType.Boolean;
  if (typeof value === 'number') {
    return Number.isInteger(value)
      ? ApplicationCommandOptionType.Integer
      : ApplicationCommandOptionType.Number;
  }
  return ApplicationCommandOptionType.String;
}

/** User, channel and role options come with their objects in `resolved`, as Discord sends them. */
function resolveOption(
  world: World,
  guildId: string | undefined,
  type: ApplicationCommandOptionType,
  id: string,
  resolved: Record<string, Record<string, unknown>>,
): void {
  const add = (kind: string, value: unknown) => ((resolved[kind] ??= {})[id] = value);
  const isUser =
    type === ApplicationCommandOptionType.User || type === ApplicationCommandOptionType.Mentionable;
  if (isUser && world.users.has(id)) {
    add('users', world.user(id));
    const member = guildId ? world.guild(guildId).members.get(id) : undefined;
    if (member) {
      const { user: _user, ...withoutUser } = buildMember(member, world.user(id));
      add('members', { ...withoutUser, permissions: '0' });
    }
  }
  const isRole =
    type === ApplicationCommandOptionType.Role || type === ApplicationCommandOptionType.Mentionable;
  const role = guildId ? world.guild(guildId).roles.get(id) : undefined;
  if (isRole && role) add('roles', role);
  if (type === ApplicationCommandOptionType.Channel) {
    const channel = world.channels.get(id);
    if (!channel) throw new Error(`fake discord: channel option names unknown channel ${id}`);
    add('channels', {
      id,
      type: channel.type,
      name: 'name' in channel ? channel.name : null,
      permissions: world.permissionsIn(id, world.bot.id).toString(),
    });
  }
}

/** The routes of interactions and application commands, answered here rather than in routes.ts. */
export type InteractionRoute =
  | 'POST /interactions/:interaction_id/:interaction_token/callback'
  | 'POST /webhooks/:application_id/:interaction_token'
  | 'GET /webhooks/:application_id/:interaction_token/messages/:message_id'
  | 'PATCH /webhooks/:application_id/:interaction_token/messages/:message_id'
  | 'DELETE /webhooks/:application_id/:interaction_token/messages/:message_id'
  | 'GET /applications/:application_id/commands'
  | 'PUT /applications/:application_id/commands'
  | 'POST /applications/:application_id/commands'
  | 'GET /applications/:application_id/guilds/:guild_id/commands'
  | 'PUT /applications/:application_id/guilds/:guild_id/commands'
  | 'POST /applications/:application_id/guilds/:guild_id/commands';

export type InteractionHandlers = Pick<Handlers, InteractionRoute>;

export function createInteractionHandlers(context: FakeContext): InteractionHandlers {
  const { world, dispatcher } = context;
  const { echo, notify } = gatewayFollowUps(context);

  const respond = (
    record: InteractionRecord,
    body: any,
    files: Call['request']['files'],
    type: MessageType,
    isLoading = false,
  ) =>
    composeMessage(context, {
      channelId: record.channelId,
      body,
      files,
      author: world.bot,
      type,
      allowsEphemeral: true,
      isLoading,
      webhookId: world.applicationId,
      applicationId: world.applicationId,
      interactionMetadata: interactionMetadata(world, record),
    });

  const webhookInteraction = (params: Record<string, string>) => {
    if (params.application_id !== world.applicationId) throw failures.unknownWebhook();
    const record = [...world.interactions.values()].find(
      (interaction) => interaction.token === params.interaction_token,
    );
    if (!record || record.callbackType === undefined) throw failures.unknownWebhook();
    return record;
  };

  const webhookMessage = (record: InteractionRecord, messageId: string) => {
    const id = messageId === '@original' ? record.originalMessageId : messageId;
    const isOwn = id !== undefined && (id === record.originalMessageId || record.followUpIds.includes(id));
    const message = isOwn ? world.findMessage(id) : undefined;
    if (!message) throw failures.unknownMessage();
    return message;
  };

  const commandsRoute = (params: Record<string, string>) => {
    if (params.application_id !== world.applicationId) throw failures.unknownApplication();
    const guildId = params.guild_id;
    if (guildId === undefined) return 'global' as const;
    if (!world.guilds.get(guildId)?.members.has(world.bot.id)) throw failures.missingAccess();
    return { guildId };
  };

  const overwrite = ({ params, request }: Call): Outcome => {
    const scope = commandsRoute(params);
    if (!Array.isArray(request.body))
      throw failures.invalidFormBody([], 'BASE_TYPE_ARRAY', 'Must be an array.');
    validateCommands(request.body);
    const previous = world.commandsFor(scope);
    const commands = request.body.map((definition: any) =>
      toCommand(
        world,
        scope,
        definition,
        previous.find((old) => sameCommand(old, definition)),
      ),
    );
    world.commands.set(scope === 'global' ? 'global' : scope.guildId, commands);
    return { status: 200, body: commands };
  };

  const createOne = ({ params, request }: Call): Outcome => {
    const scope = commandsRoute(params);
    const existing = world.commandsFor(scope);
    validateCommands([...existing.filter((old) => !sameCommand(old, request.body)), request.body]);
    const previous = existing.find((old) => sameCommand(old, request.body));
    const command = toCommand(world, scope, request.body, previous);
    world.commands.set(scope === 'global' ? 'global' : scope.guildId, [
      ...existing.filter((old) => old !== previous),
      command,
    ]);
    return { status: previous ? 200 : 201, body: command };
  };

  return {
    'POST /interactions/:interaction_id/:interaction_token/callback': ({ params, request, query }) => {
      const record = world.interactions.get(params.interaction_id!);
      if (!record || record.token !== params.interaction_token) throw failures.unknownInteraction();
      // Discord forgets an interaction nobody acknowledged within three seconds.
      if (
        record.callbackType === undefined &&
        Date.now() - record.createdAt > context.interactionDeadlineMs
      ) {
        throw failures.unknownInteraction();
      }
      if (record.callbackType !== undefined) throw failures.alreadyAcknowledged();
      const type = Number(request.body?.type);
      const data = request.body?.data;
      const isComponent = record.componentMessageId !== undefined;
      const responseType =
        record.type === InteractionType.ApplicationCommand
          ? MessageType.ChatInputCommand
          : MessageType.Default;
      let message: APIMessage | undefined;
      let after: (() => void) | undefined;
      switch (type) {
        case InteractionResponseType.ChannelMessageWithSource:
          message = respond(record, data, request.files, responseType);
          record.originalMessageId = message.id;
          after = echo(() => dispatcher.messageCreate(message!));
          break;
        case InteractionResponseType.DeferredChannelMessageWithSource:
          message = respond(
            record,
            { flags: Number(data?.flags ?? 0) & MessageFlags.Ephemeral },
            [],
            responseType,
            true,
          );
          record.originalMessageId = message.id;
          after = echo(() => dispatcher.messageCreate(message!));
          break;
        case InteractionResponseType.DeferredMessageUpdate:
        case InteractionResponseType.UpdateMessage: {
          if (!isComponent) {
            throw failures.invalidFormBody(
              ['type'],
              'INTERACTION_RESPONSE_TYPE_INVALID',
              'Interaction response type is invalid for this interaction.',
            );
          }
          record.originalMessageId = record.componentMessageId;
          if (type === InteractionResponseType.UpdateMessage) {
            message = editMessage(
              context,
              world.findMessage(record.componentMessageId!)!,
              data,
              request.files,
            );
            after = echo(() => dispatcher.messageUpdate(message!));
          }
          break;
        }
        case InteractionResponseType.ApplicationCommandAutocompleteResult:
        case InteractionResponseType.Modal:
          break;
        default:
          throw failures.invalidFormBody(
            ['type'],
            'BASE_TYPE_CHOICES',
            `Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}.`,
          );
      }
      record.callbackType = type;
      if (query.get('with_response') !== 'true') return { status: 204, after };
      return {
        status: 200,
        after,
        body: {
          interaction: {
            id: record.id,
            type: record.type,
            ...(message
              ? {
                  response_message_id: message.id,
                  response_message_loading: ((message.flags ?? 0) & MessageFlags.Loading) !== 0,
                  response_message_ephemeral: ((message.flags ?? 0) & MessageFlags.Ephemeral) !== 0,
                }
              : {}),
          },
          resource: { type, ...(message ? { message } : {}) },
        },
      };
    },
    'POST /webhooks/:application_id/:interaction_token': ({ params, request, query }) => {
      const record = webhookInteraction(params);
      const message = respond(record, request.body, request.files, MessageType.Default);
      record.followUpIds.push(message.id);
      const after = echo(() => dispatcher.messageCreate(message));
      return query.get('wait') === 'true' ? { status: 200, body: message, after } : { status: 204, after };
    },
    'GET /webhooks/:application_id/:interaction_token/messages/:message_id': ({ params }) => {
      const record = webhookInteraction(params);
      return { status: 200, body: webhookMessage(record, params.message_id!) };
    },
    'PATCH /webhooks/:application_id/:interaction_token/messages/:message_id': ({ params, request }) => {
      const record = webhookInteraction(params);
      const updated = editMessage(
        context,
        webhookMessage(record, params.message_id!),
        request.body,
        request.files,
      );
      return { status: 200, body: updated, after: echo(() => dispatcher.messageUpdate(updated)) };
    },
    'DELETE /webhooks/:application_id/:interaction_token/messages/:message_id': ({ params }) => {
      const record = webhookInteraction(params);
      const message = webhookMessage(record, params.message_id!);
      world.deleteMessage(message.channel_id, message.id);
      return { status: 204, after: notify(() => dispatcher.messageDelete(message)) };
    },
    'GET /applications/:application_id/commands': ({ params }) => ({
      status: 200,
      body: world.commandsFor(commandsRoute(params)),
    }),
    'PUT /applications/:application_id/commands': overwrite,
    'POST /applications/:application_id/commands': createOne,
    'GET /applications/:application_id/guilds/:guild_id/commands': ({ params }) => ({
      status: 200,
      body: world.commandsFor(commandsRoute(params)),
    }),
    'PUT /applications/:application_id/guilds/:guild_id/commands': overwrite,
    'POST /applications/:application_id/guilds/:guild_id/commands': createOne,
  };
}

function interactionMetadata(world: World, record: InteractionRecord): APIMessage['interaction_metadata'] {
  const base = {
    id: record.id,
    user: world.user(record.userId),
    authorizing_integration_owners: { '0': record.guildId ?? '0' },
  };
  if (record.componentMessageId !== undefined) {
    return {
      ...base,
      type: InteractionType.MessageComponent,
      interacted_message_id: record.componentMessageId,
    };
  }
  return {
    ...base,
    type: InteractionType.ApplicationCommand,
    ...(record.commandName === undefined ? {} : { name: record.commandName }),
    command_type: ApplicationCommandType.ChatInput,
  } as APIMessage['interaction_metadata'];
}

/** Command names: 1–32 lowercase letters, digits, `-` and `_` (Unicode letters allowed). */
const COMMAND_NAME = /^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$/u;
const MAX_COMMAND_OPTIONS = 25;
const MAX_SLASH_COMMANDS = 100;

/**
 * The checks Discord runs on a command registration, with its error shapes; a bad definition fails here
 * the way `npm run deploy-commands` would fail against Discord.
 * https://discord.com/developers/docs/interactions/application-commands#application-command-object
 */
function validateCommands(definitions: any[]): void {
  const seen = new Set<string>();
  definitions.forEach((definition, index) => {
    const type = Number(definition?.type ?? ApplicationCommandType.ChatInput);
    const isSlash = type === ApplicationCommandType.ChatInput;
    const name = String(definition?.name ?? '');
    if (!COMMAND_NAME.test(name) || (isSlash && name !== name.toLowerCase())) {
      throw failures.invalidFormBody(
        [index, 'name'],
        'APPLICATION_COMMAND_INVALID_NAME',
        'Command name is invalid',
      );
    }
    const key = `${type}:${name}`;
    if (seen.has(key)) {
      throw failures.invalidFormBody(
        [index, 'name'],
        'APPLICATION_COMMANDS_DUPLICATE_NAME',
        'Application command names must be unique',
      );
    }
    seen.add(key);
    const description = String(definition?.description ?? '');
    if (isSlash && (description.length < 1 || description.length > 100)) {
      throw failures.invalidFormBody(
        [index, 'description'],
        'BASE_TYPE_BAD_LENGTH',
        'Must be between 1 and 100 in length.',
      );
    }
    if (isSlash) validateOptions(definition?.options ?? [], [index, 'options']);
  });
  const slashCount = definitions.filter((definition) => Number(definition?.type ?? 1) === 1).length;
  if (slashCount > MAX_SLASH_COMMANDS) {
    throw failures.invalidFormBody(
      [],
      'APPLICATION_COMMAND_TOO_MANY',
      'Maximum number of application commands reached (100).',
    );
  }
}

function validateOptions(options: any[], path: (string | number)[]): void {
  if (options.length > MAX_COMMAND_OPTIONS) {
    throw failures.invalidFormBody(
      path,
      'BASE_TYPE_MAX_LENGTH',
      `Must be ${MAX_COMMAND_OPTIONS} or fewer in length.`,
    );
  }
  let sawOptional = false;
  options.forEach((option, index) => {
    const name = String(option?.name ?? '');
    if (!COMMAND_NAME.test(name) || name !== name.toLowerCase()) {
      throw failures.invalidFormBody(
        [...path, index, 'name'],
        'APPLICATION_COMMAND_INVALID_NAME',
        'Command name is invalid',
      );
    }
    const description = String(option?.description ?? '');
    if (description.length < 1 || description.length > 100) {
      throw failures.invalidFormBody(
        [...path, index, 'description'],
        'BASE_TYPE_BAD_LENGTH',
        'Must be between 1 and 100 in length.',
      );
    }
    if (option?.required && sawOptional) {
      throw failures.invalidFormBody(
        [...path, index, 'required'],
        'APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID',
        'Required options must be placed before non-required options',
      );
    }
    if (!option?.required) sawOptional = true;
    const isContainer =
      option?.type === ApplicationCommandOptionType.Subcommand ||
      option?.type === ApplicationCommandOptionType.SubcommandGroup;
    if (isContainer) validateOptions(option.options ?? [], [...path, index, 'options']);
  });
}

function sameCommand(old: APIApplicationCommand, definition: any): boolean {
  return old.name === definition?.name && (old.type ?? 1) === Number(definition?.type ?? 1);
}

/** A stored command; re-registering a name keeps its id, as Discord's bulk overwrite does. */
function toCommand(
  world: World,
  scope: 'global' | { guildId: string },
  definition: any,
  previous: APIApplicationCommand | undefined,
): APIApplicationCommand {
  const command: Record<string, unknown> = {
    id: previous?.id ?? nextSnowflake(),
    application_id: world.applicationId,
    version: nextSnowflake(),
    default_member_permissions: definition.default_member_permissions ?? null,
    type: Number(definition.type ?? ApplicationCommandType.ChatInput),
    name: definition.name,
    name_localizations: definition.name_localizations ?? null,
    description: definition.description ?? '',
    description_localizations: definition.description_localizations ?? null,
    contexts: definition.contexts ?? null,
    integration_types: definition.integration_types ?? [0],
    nsfw: definition.nsfw ?? false,
  };
  if (Array.isArray(definition.options) && definition.options.length > 0)
    command.options = definition.options;
  if (scope === 'global') command.dm_permission = definition.dm_permission ?? true;
  else command.guild_id = scope.guildId;
  return command as unknown as APIApplicationCommand;
}
