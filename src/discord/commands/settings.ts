import {
  ChannelType,
  type ChatInputCommandInteraction,
  InteractionContextType,
  MessageFlags,
  PermissionFlagsBits,
  SlashCommandBuilder,
} from 'discord.js';
import { ESCALATION_MODES, type EscalationMode } from '../../core/escalation.js';
import { modelLabel } from '../../core/models.js';
import type { SettingsStore } from '../../core/ports.js';
import { NO_MENTIONS } from '../live-reply.js';
import { THREAD_PERMISSIONS } from '../threads.js';
import { type CommandContext, requireAdmin, requireServer, type SlashCommand, UserError } from './command.js';

const TEXT_CHANNELS = [ChannelType.GuildText, ChannelType.GuildAnnouncement] as const;
const THREAD_MODES = ['on', 'off'] as const;

/** /settings: how tierbot behaves in this server. */
export const settings: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('settings')
    .setDescription('How tierbot behaves in this server (Manage Server)')
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .setContexts(InteractionContextType.Guild)
    .addSubcommand((subcommand) =>
      subcommand
        .setName('escalation')
        .setDescription('When answers go to Claude Haiku')
        .addStringOption((option) =>
          option
            .setName('mode')
            .setDescription('auto: when a check says so; manual: only when asked; off: never')
            .setRequired(true)
            .addChoices(...ESCALATION_MODES.map((mode) => ({ name: mode, value: mode }))),
        ),
    )
    .addSubcommand((subcommand) =>
      subcommand
        .setName('footer')
        .setDescription('The line under each answer: models, reason, tokens, cost')
        .addBooleanOption((option) => option.setName('show').setDescription('Show it').setRequired(true)),
    )
    .addSubcommandGroup((group) =>
      group
        .setName('channel')
        .setDescription('Channels where every message is answered without a mention')
        .addSubcommand((subcommand) =>
          subcommand
            .setName('add')
            .setDescription('Answer every message in a channel')
            .addChannelOption((option) =>
              option
                .setName('channel')
                .setDescription('Default: this channel')
                .addChannelTypes(...TEXT_CHANNELS),
            ),
        )
        .addSubcommand((subcommand) =>
          subcommand
            .setName('remove')
            .setDescription('Back to answering mentions only')
            .addChannelOption((option) =>
              option
                .setName('channel')
                .setDescription('Default: this channel')
                .addChannelTypes(...TEXT_CHANNELS),
            ),
        )
        .addSubcommand((subcommand) => subcommand.setName('list').setDescription('The channels answered')),
    )
    .addSubcommand((subcommand) =>
      subcommand
        .setName('alerts')
        .setDescription("Where alerts about the server's budget go")
        .addChannelOption((option) =>
          option
            .setName('channel')
            .setDescription('The channel')
            .setRequired(true)
            .addChannelTypes(...TEXT_CHANNELS),
        ),
    )
    .addSubcommand((subcommand) =>
      subcommand
        .setName('threads')
        .setDescription('Answer in a thread opened from the question, where the conversation goes on')
        .addStringOption((option) =>
          option
            .setName('mode')
            .setDescription('on: answers go in a thread; off: in the channel, as replies')
            .setRequired(true)
            .addChoices(...THREAD_MODES.map((mode) => ({ name: mode, value: mode }))),
        ),
    )
    .toJSON(),

  async execute(interaction, context) {
    const guildId = requireServer(interaction, '/settings');
    requireAdmin(interaction, context, '/settings');
    const content = await apply(interaction, guildId, context);
    await interaction.reply({ content, flags: MessageFlags.Ephemeral, allowedMentions: NO_MENTIONS });
  },
};

async function apply(
  interaction: ChatInputCommandInteraction,
  guildId: string,
  context: CommandContext,
): Promise<string> {
  const store = context.app.storage.settings;
  const by = interaction.user.id;
  const group = interaction.options.getSubcommandGroup();
  const subcommand = interaction.options.getSubcommand(true);
  if (group === 'channel') {
    if (subcommand === 'list') {
      const channels = await store.answeredChannelsOf(guildId);
      return channels.length === 0
        ? 'No channels are answered without a mention.'
        : `Answered without a mention: ${channels.map((id) => `<#${id}>`).join(', ')}`;
    }
    const channelId = interaction.options.getChannel('channel')?.id ?? interaction.channelId;
    if (subcommand === 'add') {
      await store.addAnsweredChannel(guildId, channelId, by);
      return `Every message in <#${channelId}> is answered now, without a mention.`;
    }
    if (subcommand === 'remove') {
      await store.removeAnsweredChannel(guildId, channelId);
      return `<#${channelId}> is back to mentions and replies only.`;
    }
  }
  switch (subcommand) {
    case 'escalation': {
      const mode = interaction.options.getString('mode', true) as EscalationMode;
      if (!ESCALATION_MODES.includes(mode)) {
        throw new UserError(`Not changed: mode must be one of ${ESCALATION_MODES.join(', ')}.`);
      }
      await store.update(guildId, { escalationMode: mode }, by);
      const { fastModel, smartModel } = context.app.engine;
      return `Escalation is now ${mode}: ${modeMeaning(mode, modelLabel(fastModel), modelLabel(smartModel))}.`;
    }
    case 'footer': {
      const show = interaction.options.getBoolean('show', true);
      await store.update(guildId, { showFooter: show }, by);
      return show
        ? 'Answers show their footer (models, reason, tokens, cost).'
        : 'Answers no longer show their footer; notes that matter (fallbacks, budget) still show.';
    }
    case 'threads':
      return setThreads(interaction, guildId, store, by);
    case 'alerts': {
      const channel = interaction.options.getChannel('channel', true);
      await store.update(guildId, { alertsChannelId: channel.id }, by);
      return `Server budget alerts (80% and 100% of its cap) go to <#${channel.id}>.`;
    }
  }
  throw new UserError(`/settings has no subcommand ${[group, subcommand].filter(Boolean).join(' ')}.`);
}

async function setThreads(
  interaction: ChatInputCommandInteraction,
  guildId: string,
  store: SettingsStore,
  by: string,
): Promise<string> {
  const mode = interaction.options.getString('mode', true);
  if (mode !== 'on' && mode !== 'off') {
    throw new UserError(`Not changed: mode must be one of ${THREAD_MODES.join(', ')}.`);
  }
  await store.update(guildId, { answersInThreads: mode === 'on' }, by);
  if (mode === 'off') return 'Questions are answered in their channel again, as replies.';
  const content =
    'A question asked in a text channel is now answered in a thread opened from it, where the ' +
    'conversation goes on (not in announcement channels, DMs or existing threads).';
  // What the bot may do where the command was used: the admin hears now, not from the first fallback.
  const missing = THREAD_PERMISSIONS.filter(
    ([permission]) => interaction.appPermissions?.has(permission) === false,
  ).map(([, name]) => name);
  return missing.length === 0
    ? content
    : `${content}\n⚠️ In <#${interaction.channelId}> I lack ${missing.join(' and ')}: answers there stay ` +
        `in the channel until I get ${missing.length === 1 ? 'it' : 'them'}.`;
}

function modeMeaning(mode: EscalationMode, fast: string, smart: string): string {
  switch (mode) {
    case 'auto':
      return `${fast} answers, and a check sends answers that fall short to ${smart}`;
    case 'manual':
      return `${fast} answers; ${smart} only when someone asks (/escalate, the Escalate button)`;
    case 'off':
      return `${fast} answers everything`;
  }
}
