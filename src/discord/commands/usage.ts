import {
  AttachmentBuilder,
  type ChatInputCommandInteraction,
  escapeMarkdown,
  MessageFlags,
  SlashCommandBuilder,
  type SlashCommandSubcommandBuilder,
} from 'discord.js';
import {
  botView,
  memberView,
  periodPhrase,
  serverView,
  USAGE_PERIODS,
  usageWindow,
  type ViewFigures,
} from '../../core/reports.js';
import type { UsagePeriod } from '../../core/usage.js';
import { collectCsv } from '../../usage-csv.js';
import { NO_MENTIONS } from '../live-reply.js';
import { roleIdsOf } from '../members.js';
import {
  type CommandContext,
  requireAdmin,
  requireOperator,
  requireServer,
  type SlashCommand,
  UserError,
} from './command.js';
import {
  botLines,
  chartAttachment,
  fitMessage,
  type Labels,
  memberLines,
  serverLines,
} from './usage-views.js';

/**
 * /usage: what tierbot spent, as subcommands (Discord runs no command with subcommands bare, so "mine" is
 * one of them): `me` and `member` (one member against their budget), `server` (the server against its
 * cap, with a forecast and the biggest spenders), `export` (the server's calls as CSV) and `bot` (every
 * server, for the bot's operators). Everything is private, and every view but `me` is checked by the bot
 * itself: Discord lets server admins change who sees a command, and one command has one visibility.
 */

/** Discord's attachment limit for a bot in a server without boosts, when the interaction does not say. */
export const DEFAULT_ATTACHMENT_LIMIT_BYTES = 10 * 1024 * 1024;
/** Names shown for servers in the bot's view are cut to this many characters. */
const SERVER_NAME_LENGTH = 40;

const withPeriod = (subcommand: SlashCommandSubcommandBuilder, what: string) =>
  subcommand.addStringOption((option) =>
    option
      .setName('period')
      .setDescription(what)
      .addChoices(...USAGE_PERIODS.map((period) => ({ name: period, value: period }))),
  );

export const usage: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('usage')
    .setDescription("What tierbot spent: yours, a member's, this server's, every server's")
    .addSubcommand((subcommand) =>
      withPeriod(
        subcommand.setName('me').setDescription('Your spend against your budget, with a chart'),
        'Which period (default: the one your budget runs over)',
      ),
    )
    .addSubcommand((subcommand) =>
      withPeriod(
        subcommand
          .setName('member')
          .setDescription("A member's spend against their budget (Manage Server)")
          .addUserOption((option) => option.setName('user').setDescription('The member').setRequired(true)),
        'Which period (default: the one their budget runs over)',
      ),
    )
    .addSubcommand((subcommand) =>
      withPeriod(
        subcommand
          .setName('server')
          .setDescription("This server's spend, its forecast and its biggest spenders (Manage Server)"),
        "Which period (default: the server cap's)",
      ),
    )
    .addSubcommand((subcommand) =>
      withPeriod(
        subcommand
          .setName('export')
          .setDescription("This server's model calls as a CSV file (Manage Server)"),
        'Which period (default: the current month)',
      ),
    )
    .addSubcommand((subcommand) =>
      withPeriod(
        subcommand.setName('bot').setDescription("Spend across every server (the bot's operators)"),
        'Which period (default: the bot default budget period)',
      ),
    )
    .toJSON(),

  async execute(interaction, context) {
    const subcommand = interaction.options.getSubcommand(true);
    const requested = interaction.options.getString('period') as UsagePeriod | null;
    if (requested !== null && !USAGE_PERIODS.includes(requested)) {
      throw new UserError(`period must be one of ${USAGE_PERIODS.join(', ')}.`);
    }
    const period = requested ?? undefined;
    switch (subcommand) {
      case 'me':
        return showMember(interaction, context, period, false);
      case 'member':
        if (!interaction.inGuild())
          throw new UserError("Looking at another member's usage works in a server.");
        requireAdmin(interaction, context, "Looking at another member's usage");
        return showMember(interaction, context, period, true);
      case 'server':
        requireServer(interaction, '/usage server');
        requireAdmin(interaction, context, '/usage server');
        return showServer(interaction, context, period);
      case 'export':
        requireServer(interaction, '/usage export');
        requireAdmin(interaction, context, '/usage export');
        return exportCalls(interaction, context, period ?? 'month');
      case 'bot':
        requireOperator(interaction, context, '/usage bot');
        return showBot(interaction, context, period);
      default:
        throw new UserError(`/usage has no ${subcommand} any more.`);
    }
  },
};

function labelsOf(context: CommandContext): Labels {
  return { fastModel: context.app.engine.fastModel, smartModel: context.app.engine.smartModel };
}

function viewInput(context: CommandContext, period: UsagePeriod | undefined) {
  return {
    period,
    defaultPeriod: context.config.defaultUserBudget.period,
    nowMs: context.now?.() ?? Date.now(),
    smartModel: context.app.engine.smartModel,
  };
}

async function reply(
  interaction: ChatInputCommandInteraction,
  lines: string[],
  view: ViewFigures,
  title: string,
  context: CommandContext,
) {
  await interaction.editReply({
    content: fitMessage(lines),
    files: [await chartAttachment(view, title, labelsOf(context))],
    allowedMentions: NO_MENTIONS,
  });
}

async function showMember(
  interaction: ChatInputCommandInteraction,
  context: CommandContext,
  period: UsagePeriod | undefined,
  isOtherMember: boolean,
) {
  // The chart takes a moment to draw (the first one about a second): acknowledge first.
  await interaction.deferReply({ flags: MessageFlags.Ephemeral });
  const target = isOtherMember ? interaction.options.getUser('user', true) : interaction.user;
  const guildId = interaction.guildId;
  // Another member's roles come with the option's member payload.
  const member = isOtherMember ? interaction.options.getMember('user') : interaction.member;
  const view = await memberView(context.app.storage, {
    ...viewInput(context, period),
    member: { userId: target.id, guildId, roleIds: roleIdsOf(member, guildId) },
  });
  const lines = memberLines(view, labelsOf(context), isOtherMember ? target.username : undefined);
  const whose = isOtherMember ? `${target.username}'s` : 'Your';
  await reply(interaction, lines, view, `${whose} spend ${periodPhrase(view.period)} (UTC)`, context);
}

async function showServer(
  interaction: ChatInputCommandInteraction,
  context: CommandContext,
  period: UsagePeriod | undefined,
) {
  await interaction.deferReply({ flags: MessageFlags.Ephemeral });
  const guildId = interaction.guildId ?? '';
  const guild = interaction.guild;
  const view = await serverView(context.app.storage, {
    ...viewInput(context, period),
    guildId,
    askerId: interaction.user.id,
    // Roles of the members the bot has seen lately (its member cache fills from messages and
    // interactions, with no privileged intent), the asker's from this interaction: no REST call per member.
    rolesOf: (userId) => {
      if (userId === interaction.user.id) return roleIdsOf(interaction.member, guildId);
      const cached = guild?.members.cache.get(userId);
      return cached ? roleIdsOf(cached, guildId) : undefined;
    },
  });
  const name = guild?.name ?? 'This server';
  await reply(
    interaction,
    serverLines(view, labelsOf(context)),
    view,
    `${name}: spend ${periodPhrase(view.period)} (UTC)`,
    context,
  );
}

async function showBot(
  interaction: ChatInputCommandInteraction,
  context: CommandContext,
  period: UsagePeriod | undefined,
) {
  await interaction.deferReply({ flags: MessageFlags.Ephemeral });
  const view = await botView(context.app.storage, viewInput(context, period));
  // The servers this process runs are cached by name; others (other shards' processes) go by id.
  const serverName = (guildId: string) => {
    const name = context.client.guilds.cache.get(guildId)?.name;
    return name ? `${escapeMarkdown(name.slice(0, SERVER_NAME_LENGTH))} (${guildId})` : guildId;
  };
  await reply(
    interaction,
    botLines(view, labelsOf(context), serverName),
    view,
    `Bot spend across every server ${periodPhrase(view.period)} (UTC)`,
    context,
  );
}

/** A shorter period to suggest when an export is too large, or none below a day. */
const SHORTER: Record<UsagePeriod, UsagePeriod | undefined> = {
  all: 'month',
  month: 'week',
  week: 'day',
  day: undefined,
};

/**
 * /usage export: the server's calls in the period as a CSV attachment, built as the rows are read. Over
 * the attachment limit Discord gives this interaction (10 MiB in a server without boosts), nothing is
 * uploaded: it says so and suggests a shorter period.
 */
async function exportCalls(
  interaction: ChatInputCommandInteraction,
  context: CommandContext,
  period: UsagePeriod,
) {
  await interaction.deferReply({ flags: MessageFlags.Ephemeral });
  const guildId = interaction.guildId ?? '';
  const nowMs = context.now?.() ?? Date.now();
  const window = usageWindow(period, nowMs);
  const limitBytes = interaction.attachmentSizeLimit || DEFAULT_ATTACHMENT_LIMIT_BYTES;
  const result = await collectCsv(context.app.storage.usage.calls({ guildId, window }), limitBytes);
  if (!result.ok) {
    const shorter = SHORTER[period];
    const advice = shorter
      ? `try a shorter period: \`/usage export period:${shorter}\``
      : `run \`npm run report -- --server ${guildId} --period day --csv calls.csv\` on the bot's host instead`;
    throw new UserError(
      `This server's calls ${periodPhrase(period)} come to more than ${formatMib(limitBytes)}, the most Discord ` +
        `lets the bot upload here (stopped after about ${result.rows.toLocaleString('en-US')} calls); ${advice}. Nothing was uploaded.`,
    );
  }
  const day = new Date(nowMs).toISOString().slice(0, 10);
  await interaction.editReply({
    content: `${result.rows.toLocaleString('en-US')} model calls ${periodPhrase(period)} (times in UTC, cost in USD).`,
    files: [
      new AttachmentBuilder(result.csv, {
        name: `tierbot-calls-${guildId}-${period}-${day}.csv`,
        description: `Model calls of this server ${periodPhrase(period)}`,
      }),
    ],
    allowedMentions: NO_MENTIONS,
  });
}

function formatMib(bytes: number): string {
  return `${(bytes / 2 ** 20).toLocaleString('en-US', { maximumFractionDigits: 1 })} MiB`;
}
