import {
  type APIRole,
  type ChatInputCommandInteraction,
  type Role,
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
  highestRoleBudget,
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
        .setDescription("Remove a member's own budget (back to their roles' or the default)")
        .addUserOption((option) => option.setName('user').setDescription('The member').setRequired(true)),
    )
    .addSubcommand((subcommand) =>
      withAmount(
        subcommand
          .setName('role')
          .setDescription("The budget of members with a role (the highest of their roles' applies)")
          .addRoleOption((option) => option.setName('role').setDescription('The role').setRequired(true)),
      ),
    )
    .addSubcommand((subcommand) =>
      subcommand
        .setName('role-clear')
        .setDescription("Remove a role's budget")
        .addRoleOption((option) => option.setName('role').setDescription('The role').setRequired(true)),
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
  role: 'role',
  'role-clear': 'role',
  default: 'server-default',
  server: 'server-total',
};

/** What each scope falls back to once cleared, for the line that says so. */
const AFTER_CLEARING: Partial<Record<BudgetScope, string>> = {
  user: "the highest of their roles' budgets, else the server's default, applies again",
  role: "its members fall back to their own budget, another role's or the server's default",
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
  const roleId = scope === 'role' ? roleOption(interaction, guildId) : undefined;
  const who =
    userId !== undefined
      ? `<@${userId}>'s budget`
      : roleId !== undefined
        ? `<@&${roleId}>'s budget`
        : scope === 'server-total'
          ? "the server's cap"
          : 'the default budget';
  const audit = {
    guildId,
    scope,
    changedBy: interaction.user.id,
    ...(userId ? { userId } : {}),
    ...(roleId ? { roleId } : {}),
  };
  if (subcommand === 'clear' || subcommand === 'role-clear') {
    const old = await context.app.storage.budgets.clearBudget(audit);
    return old
      ? `Cleared ${who} (was ${describeBudget(old)}); ${AFTER_CLEARING[scope]}.`
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

/**
 * The role a budget is for: one that people are given. @everyone is every member's (that is the server's
 * default budget), and a managed role belongs to an integration (a bot's own role, a booster role): no
 * person is given it by an admin.
 */
function roleOption(interaction: ChatInputCommandInteraction, guildId: string): string {
  const role: Role | APIRole = interaction.options.getRole('role', true);
  if (role.id === guildId) {
    throw new UserError(
      'Not changed: @everyone is every member; use `/budget default` for the budget of members without their own.',
    );
  }
  if (role.managed) {
    throw new UserError(
      `Not changed: <@&${role.id}> is managed by an integration (a bot's or a subscription's own role); budgets are for roles people are given.`,
    );
  }
  return role.id;
}

async function show(
  interaction: ChatInputCommandInteraction,
  guildId: string,
  context: CommandContext,
): Promise<string> {
  const user = interaction.options.getUser('user');
  const { budgets } = context.app.storage;
  const roleIds = user ? roleIdsOf(interaction.options.getMember('user'), guildId) : [];
  // Without a member: what a member with no budget of their own and no budgeted role gets, and the cap.
  const [standings, roleBudgets, entries] = await Promise.all([
    budgets.standings({ userId: user?.id ?? '', guildId, roleIds }),
    budgets.roleBudgets(guildId),
    budgets.auditLog(guildId, AUDIT_ENTRIES_SHOWN),
  ]);
  const lines = [user ? `**Limits for <@${user.id}>**` : '**Limits in this server**'];
  for (const standing of standings) {
    if (standing.kind === 'user' && !user) {
      lines.push(
        `- Members without their own budget or a budgeted role: ${describeBudget(standing.budget)} (${SOURCE[standing.source]})`,
      );
    } else lines.push(`- ${describeStanding(standing)}`);
    if (standing.kind === 'user' && user) {
      const theirs = roleBudgets.filter((role) => roleIds.includes(role.roleId));
      lines.push(`- Why: ${whyThisBudget(standing, theirs)}`);
    }
  }
  if (!user) {
    lines.push('**Role budgets** (a member gets their own budget, else the highest of their roles’)');
    if (roleBudgets.length === 0) lines.push('- none');
    for (const role of byRate(roleBudgets))
      lines.push(`- <@&${role.roleId}>: ${describeBudget(role.budget)}`);
  }
  lines.push(`**Last ${AUDIT_ENTRIES_SHOWN} changes**`);
  if (entries.length === 0) lines.push('- none yet');
  lines.push(...entries.map((entry) => `- ${describeAudit(entry)}`));
  return lines.join('\n');
}

/** Role budgets, most generous first (as they are compared: by daily rate). */
function byRate(roles: readonly RoleBudget[]): RoleBudget[] {
  const left = [...roles];
  const sorted: RoleBudget[] = [];
  for (let best = highestRoleBudget(left); best; best = highestRoleBudget(left)) {
    sorted.push(best);
    left.splice(left.indexOf(best), 1);
  }
  return sorted;
}

type RoleBudget = { roleId: string; budget: Budget };

/** Why a member is held to the budget they are: the order the bot looks in, and where it stopped. */
function whyThisBudget(standing: LimitStanding, theirRoles: readonly RoleBudget[]): string {
  const roleList = byRate(theirRoles)
    .map((role) => `<@&${role.roleId}> ${describeBudget(role.budget)}`)
    .join(', ');
  switch (standing.source) {
    case 'own':
      return theirRoles.length > 0
        ? `their own budget, which comes before their roles' (${roleList})`
        : 'their own budget';
    case 'role':
      return theirRoles.length > 1
        ? `no budget of their own; the highest of their roles' budgets (${roleList}), compared per day`
        : `no budget of their own; their only budgeted role`;
    case 'server-default':
      return "no budget of their own and none of their roles has one: the server's default";
    default:
      return "no budget of their own, none of their roles has one, and the server has no default: the bot's default";
  }
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
  const source =
    standing.source === 'role' && standing.roleId !== undefined
      ? `<@&${standing.roleId}>'s`
      : SOURCE[standing.source];
  return (
    `${whose}: ${formatUsd(standing.spentMicros)} of ${formatUsd(standing.budget.amountMicros)} spent ` +
    `${describePeriod(standing.budget.period)}${held} (${source}); resets ${formatResetTime(standing.window.endMs)}`
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
