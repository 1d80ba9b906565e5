import {
  type APIMessage,
  type APIRole,
  type APIThreadChannel,
  ChannelType,
  GatewayIntentBits,
  MessageFlags,
} from 'discord.js';
import type { FakeGateway } from './gateway.js';
import { buildMember, buildMemberWithoutUser, withoutContent } from './payloads.js';
import type { FakeChannel, World } from './world.js';

/**
 * Turns changes in the world into the gateway events Discord would send, with Discord's rules about who
 * sees what: guild messages need GUILD_MESSAGES, DMs need DIRECT_MESSAGES, other people's message text
 * needs MESSAGE_CONTENT, ephemeral messages are never dispatched.
 * https://discord.com/developers/docs/events/gateway#list-of-intents
 */
export class Dispatcher {
  readonly #world: World;
  readonly #gateway: FakeGateway;

  constructor(world: World, gateway: FakeGateway) {
    this.#world = world;
    this.#gateway = gateway;
  }

  /** Whether a bot has identified: before that there is nobody to dispatch to. */
  get hasSession(): boolean {
    return this.#gateway.intents !== undefined;
  }

  messageCreate(message: APIMessage, options: { toEverySession?: boolean } = {}): void {
    this.#messageEvent('MESSAGE_CREATE', message, options);
  }

  messageUpdate(message: APIMessage): void {
    this.#messageEvent('MESSAGE_UPDATE', message);
  }

  messageDelete(message: APIMessage): void {
    if (isEphemeral(message)) return;
    const channel = this.#world.channel(message.channel_id);
    const guildId = this.#world.guildIdOf(channel);
    this.#gateway.dispatch(
      'MESSAGE_DELETE',
      { id: message.id, channel_id: message.channel_id, ...(guildId ? { guild_id: guildId } : {}) },
      messageIntent(channel),
    );
  }

  threadCreate(thread: APIThreadChannel): void {
    const data: Record<string, unknown> = { ...thread, newly_created: true };
    if (thread.owner_id === this.#world.bot.id) {
      data.member = {
        id: thread.id,
        user_id: this.#world.bot.id,
        join_timestamp: thread.thread_metadata?.create_timestamp,
        flags: 0,
      };
    }
    this.#gateway.dispatch('THREAD_CREATE', data, GatewayIntentBits.Guilds);
  }

  channelCreate(channel: FakeChannel): void {
    this.#gateway.dispatch('CHANNEL_CREATE', channel, GatewayIntentBits.Guilds);
  }

  channelUpdate(channel: FakeChannel): void {
    this.#gateway.dispatch('CHANNEL_UPDATE', channel, GatewayIntentBits.Guilds);
  }

  guildCreate(guildId: string): void {
    const intents = this.#gateway.intents ?? 0;
    const data = this.#world.guildCreatePayload(guildId, (intents & GatewayIntentBits.GuildPresences) !== 0);
    this.#gateway.dispatch('GUILD_CREATE', data, GatewayIntentBits.Guilds);
  }

  roleCreate(guildId: string, role: APIRole): void {
    this.#gateway.dispatch('GUILD_ROLE_CREATE', { guild_id: guildId, role }, GatewayIntentBits.Guilds);
  }

  memberAdd(guildId: string, userId: string): void {
    const member = this.#world.guild(guildId).members.get(userId)!;
    this.#gateway.dispatch(
      'GUILD_MEMBER_ADD',
      { ...buildMember(member, this.#world.user(userId)), guild_id: guildId },
      GatewayIntentBits.GuildMembers,
    );
  }

  /** A message as MESSAGE_CREATE carries it: plus `guild_id`, the author's `member`, `channel_type`. */
  toGatewayMessage(message: APIMessage): Record<string, unknown> {
    const channel = this.#world.channel(message.channel_id);
    const guildId = this.#world.guildIdOf(channel);
    const data: Record<string, unknown> = { ...message, channel_type: channel.type };
    if (guildId) {
      const guild = this.#world.guild(guildId);
      data.guild_id = guildId;
      const authorMember = guild.members.get(message.author.id);
      // Webhook messages (interaction responses among them) have no member.
      if (authorMember && message.webhook_id === undefined)
        data.member = buildMemberWithoutUser(authorMember);
      data.mentions = message.mentions.map((user) => {
        const member = guild.members.get(user.id);
        return member ? { ...user, member: buildMemberWithoutUser(member) } : user;
      });
    }
    return data;
  }

  /** Whether the bot sees this message blanked for want of the MESSAGE_CONTENT intent. */
  isContentHidden(message: APIMessage, intents: number): boolean {
    if (intents & GatewayIntentBits.MessageContent) return false;
    const botId = this.#world.bot.id;
    const channel = this.#world.channel(message.channel_id);
    return (
      message.author.id !== botId &&
      channel.type !== ChannelType.DM &&
      !message.mentions.some((user) => user.id === botId)
    );
  }

  #messageEvent(
    t: 'MESSAGE_CREATE' | 'MESSAGE_UPDATE',
    message: APIMessage,
    options: { toEverySession?: boolean } = {},
  ): void {
    if (isEphemeral(message)) return;
    const channel = this.#world.channel(message.channel_id);
    const intents = this.#gateway.intents ?? 0;
    const visible = this.isContentHidden(message, intents) ? withoutContent(message) : message;
    this.#gateway.dispatch(t, this.toGatewayMessage(visible), messageIntent(channel), options);
  }
}

function messageIntent(channel: FakeChannel): GatewayIntentBits {
  return channel.type === ChannelType.DM ? GatewayIntentBits.DirectMessages : GatewayIntentBits.GuildMessages;
}

function isEphemeral(message: APIMessage): boolean {
  return ((message.flags ?? 0) & MessageFlags.Ephemeral) !== 0;
}
