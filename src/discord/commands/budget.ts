import {
  type ChatInputCommandInteraction,
  InteractionContextType,
  MessageFlags,
  PermissionFlagsBits,
  SlashCommandBuilder,
  type SlashCommandSubcommandBuilder,
} from 'discord.js';
import {
  type AuditEntry,
  BUDGET_PERIODS,
  type Budget,
  type BudgetPeriod,
  type BudgetScope,
  describePeriod,
  formatResetTime,
  type LimitSource,
  type LimitStanding,
} from '../../core/budget.js';
import { formatUsd, usdNumberToMicros } from '../../core/money.js';
import { NO_MENTIONS } from '../live-reply.js';
import { roleIdsOf } from '../members.js';
import { type CommandContext, requireAdmin, requireServer, type SlashCommand, UserError } from './command.js';

const AUDIT_ENTRIES_SHOWN = 10;

const withAmount = (subcommand: SlashCommandSubcommandBuilder) =>
  subcommand
    .addNumberOption((option) =>
      option
        .setName('usd')
        .setDescription('US dollars, 0 to 10,000, at most 4 decimals (0 blocks)')
        .setRequired(true),
    )
    .addStringOption((option) =>
      option
        .setName('period')
        .setDescription('The period the budget runs over (default: the bot default)')
        .addChoices(...BUDGET_PERIODS.map((period) => ({ name: period, value: period }))),
    );

/** /budget: admins set what members and the whole server may spend; every change is audited. */
export const budget: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('budget')
    .setDescription("Set this server's budgets (Manage Server)")
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .setContexts(InteractionContextType.Guild)
    .addSubcommand((subcommand) =>
      withAmount(
        subcommand
          .setName('set')
          .setDescription("A member's own budget in this server")
          .addUserOption((option) => option.setName('user').setDescription('The member').setRequired(true)),
      ),
    )
    .addSubcommand((subcommand) =>
      withAmount(subcommand.setName('default').setDescription('The budget of members without their own')),
    )
    .addSubcommand((subcommand) =>
      withAmount(subcommand.setName('server').setDescription("A cap on the whole server's spend")),
    )
    .addSubcommand((subcommand) =>
      subcommand
        .setName('clear')
        .setDescription("Remove a member's own budget (back to the default)")
        .addUserOption((option) => option.setName('user').setDescription('The member').setRequired(true)),
    )
    .addSubcommand((subcommand) =>
      subcommand
        .setName('show')
        .setDescription('The limits that apply, spend against each, and the last changes')
        .addUserOption((option) => option.setName('user').setDescription('A member (default: the server)')),
    )
    .toJSON(),

  async execute(interaction, context) {
    const guildId = requireServer(interaction, '/budget');
    requireAdmin(interaction, context, '/budget');
    const subcommand = interaction.options.getSubcommand(true);
    const content =
      subcommand === 'show'
        ? await show(interaction, guildId, context)
        : await change(interaction, guildId, subcommand, context);
    await interaction.reply({ content, flags: MessageFlags.Ephemeral, allowedMentions: NO_MENTIONS });
  },
};

const SCOPE_OF: Record<string, BudgetScope> = {
  set: 'user',
  clear: 'user',
  default: 'server-default',
  server: 'server-total',
};

async function change(
  interaction: ChatInputCommandInteraction,
  guildId: string,
  subcommand: string,
  context: CommandContext,
): Promise<string> {
  const scope = SCOPE_OF[subcommand];
  if (scope === undefined) throw new UserError(`/budget has no subcommand ${subcommand}.`);
  const userId = scope === 'user' ? memberOption(interaction) : undefined;
  const who =
    userId === undefined
      ? scope === 'server-total'
        ? "the server's cap"
        : 'the default budget'
      : `<@${userId}>'s budget`;
  const audit = { guildId, scope, changedBy: interaction.user.id, ...(userId ? { userId } : {}) };
  if (subcommand === 'clear') {
    const old = await context.app.storage.budgets.clearBudget(audit);
    return old
      ? `Cleared ${who} (was ${describeBudget(old)}); the server's default applies again.`
      : `${who[0]?.toUpperCase()}${who.slice(1)} was not set; nothing changed.`;
  }
  const budget = amountOption(interaction, context);
  const old = await context.app.storage.budgets.setBudget(audit, budget);
  const blocks = budget.amountMicros === 0 ? ' (0 blocks all spending)' : '';
  return `Set ${who} to ${describeBudget(budget)}${blocks}; was ${old ? describeBudget(old) : 'not set'}.`;
}

/** The amount and period options, checked: refused with the reason, and nothing written. */
function amountOption(interaction: ChatInputCommandInteraction, context: CommandContext): Budget {
  const usd = interaction.options.getNumber('usd');
  const parsed = usdNumberToMicros(usd ?? Number.NaN);
  if (!parsed.ok) throw new UserError(`Not changed: ${parsed.reason}.`);
  const period = (interaction.options.getString('period') ??
    context.config.defaultUserBudget.period) as BudgetPeriod;
  if (!BUDGET_PERIODS.includes(period)) {
    throw new UserError(`Not changed: period must be one of ${BUDGET_PERIODS.join(', ')}.`);
  }
  return { amountMicros: parsed.micros, period };
}

/** The member a budget is for: a person in this server, not a bot. */
function memberOption(interaction: ChatInputCommandInteraction): string {
  const user = interaction.options.getUser('user', true);
  if (user.bot) throw new UserError(`Not changed: <@${user.id}> is a bot; budgets are for people.`);
  if (!interaction.options.getMember('user')) {
    throw new UserError(`Not changed: <@${user.id}> is not a member of this server.`);
  }
  return user.id;
}

async function show(
  interaction: ChatInputCommandInteraction,
  guildId: string,
  context: CommandContext,
): Promise<string> {
  const user = interaction.options.getUser('user');
  const { budgets } = context.app.storage;
  // Without a member: what a member with no budget of their own gets, and the server's cap.
  const standings = await budgets.standings({
    userId: user?.id ?? '',
    guildId,
    roleIds: user ? roleIdsOf(interaction.options.getMember('user'), guildId) : [],
  });
  const lines = [user ? `**Limits for <@${user.id}>**` : '**Limits in this server**'];
  for (const standing of standings) {
    if (standing.kind === 'user' && !user) {
      lines.push(
        `- Members without their own budget: ${describeBudget(standing.budget)} (${SOURCE[standing.source]})`,
      );
    } else lines.push(`- ${describeStanding(standing)}`);
  }
  const entries = await budgets.auditLog(guildId, AUDIT_ENTRIES_SHOWN);
  lines.push(`**Last ${AUDIT_ENTRIES_SHOWN} changes**`);
  if (entries.length === 0) lines.push('- none yet');
  lines.push(...entries.map((entry) => `- ${describeAudit(entry)}`));
  return lines.join('\n');
}

const SOURCE: Record<LimitSource, string> = {
  own: 'their own',
  role: "a role's",
  'server-default': "the server's default",
  'bot-default': "the bot's default",
  'server-cap': "the server's cap",
  'bot-cap': "the bot's cap for every server",
};

function describeStanding(standing: LimitStanding): string {
  const whose = standing.kind === 'user' ? 'Budget' : 'Server cap';
  const held = standing.reservedMicros > 0 ? `, ${formatUsd(standing.reservedMicros)} held` : '';
  return (
    `${whose}: ${formatUsd(standing.spentMicros)} of ${formatUsd(standing.budget.amountMicros)} spent ` +
    `${describePeriod(standing.budget.period)}${held} (${SOURCE[standing.source]}); resets ${formatResetTime(standing.window.endMs)}`
  );
}

function describeBudget(budget: Budget): string {
  return `${formatUsd(budget.amountMicros)} per ${budget.period}`;
}

const SCOPE_NAME: Record<BudgetScope, string> = {
  user: 'budget of',
  role: 'budget of role',
  'server-default': 'default',
  'server-total': 'server cap',
};

function describeAudit(entry: AuditEntry): string {
  const what =
    entry.scope === 'user'
      ? `budget of <@${entry.subjectId}>`
      : entry.scope === 'role'
        ? `budget of <@&${entry.subjectId}>`
        : SCOPE_NAME[entry.scope];
  const from = entry.oldBudget ? describeBudget(entry.oldBudget) : 'not set';
  const to = entry.newBudget ? describeBudget(entry.newBudget) : 'cleared';
  return `${formatResetTime(entry.changedAt)} · <@${entry.changedBy}> · ${what}: ${from} → ${to}`;
}
