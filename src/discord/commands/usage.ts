import { AttachmentBuilder, MessageFlags, SlashCommandBuilder } from 'discord.js';
import {
  BUDGET_PERIODS,
  formatResetTime,
  type PeriodWindow,
  periodWindow,
  remainingMicros,
} from '../../core/budget.js';
import { formatUsd } from '../../core/money.js';
import { modelLabel } from '../../core/models.js';
import { totalTokens } from '../../core/pricing.js';
import type { EscalationSource } from '../../core/turn.js';
import type { UsageReport } from '../../core/usage.js';
import { roleIdsOf } from '../members.js';
import { NO_MENTIONS } from '../live-reply.js';
import { renderSpendChart } from '../usage-chart.js';
import { requireAdmin, type SlashCommand, UserError } from './command.js';

const PERIODS = [...BUDGET_PERIODS, 'all'] as const;
type UsagePeriod = (typeof PERIODS)[number];

const DAY_MS = 86_400_000;

/** Why answers went to the smart model, as /usage counts them (a turn's escalation source). */
const ESCALATION_REASONS: Record<EscalationSource, string> = {
  router: 'triage',
  rule: 'code rule',
  check: 'check',
  signal: 'draft cut off or empty',
  user: 'asked',
  pdf: 'PDF',
  fallback: 'fallback',
};

function reasonLabel(reason: string): string {
  return ESCALATION_REASONS[reason as EscalationSource] ?? reason;
}

/** /usage: what a member spent, against which limit, on what, and what the cascade saved; with a chart. */
export const usage: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName('usage')
    .setDescription('What you (or a member) spent on tierbot, with a chart')
    .addUserOption((option) => option.setName('user').setDescription('Another member (needs Manage Server)'))
    .addStringOption((option) =>
      option
        .setName('period')
        .setDescription('Which period (default: the one your budget runs over)')
        .addChoices(...PERIODS.map((period) => ({ name: period, value: period }))),
    )
    .toJSON(),

  async execute(interaction, context) {
    const { app, config } = context;
    const target = interaction.options.getUser('user') ?? interaction.user;
    if (target.id !== interaction.user.id) {
      if (!interaction.inGuild()) throw new UserError("Looking at another member's usage works in a server.");
      requireAdmin(interaction, context, "Looking at another member's usage");
    }
    const requested = interaction.options.getString('period') as UsagePeriod | null;
    if (requested !== null && !PERIODS.includes(requested)) {
      throw new UserError(`period must be one of ${PERIODS.join(', ')}.`);
    }
    // The chart takes a moment to draw (the first one about a second): acknowledge first.
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });

    const guildId = interaction.guildId;
    const now = Date.now();
    // Another member's roles come with the option's member payload.
    const member =
      target.id === interaction.user.id ? interaction.member : interaction.options.getMember('user');
    const standings = await app.storage.budgets.standings({
      userId: target.id,
      guildId,
      roleIds: roleIdsOf(member, guildId),
    });
    const limit = standings.find((standing) => standing.kind === 'user');
    const period: UsagePeriod = requested ?? limit?.budget.period ?? config.defaultUserBudget.period;
    const window: PeriodWindow =
      period === 'all' ? { startMs: 0, endMs: now + 1 } : periodWindow(period, now);
    const report = await app.storage.usage.report({
      userId: target.id,
      guildId,
      window,
      smartModel: app.engine.smartModel,
    });
    const applies = limit && limit.budget.period === period ? limit : undefined;

    const spentMicros = report.byModel.reduce((sum, row) => sum + row.costMicros, 0);
    const lines = [
      `Spent ${formatUsd(spentMicros)} of ${applies ? formatUsd(applies.budget.amountMicros) : 'no limit'} this ${period}`,
    ];
    if (target.id !== interaction.user.id) lines.push(`-# usage of ${target.username}`);
    if (applies) {
      const held =
        applies.reservedMicros > 0
          ? ` (${formatUsd(applies.reservedMicros)} held by answers in progress)`
          : '';
      lines.push(
        `${formatUsd(remainingMicros(applies))} left${held}; resets ${formatResetTime(applies.window.endMs)}`,
      );
    }
    lines.push(...describeReport(report, app.engine.smartModel));

    const chart = await renderSpendChart({
      title: `Spend per day, ${period === 'all' ? 'all time' : `this ${period}`}`,
      days: chartDays(report, window, period, now),
      fastLabel: modelLabel(app.engine.fastModel),
      smartLabel: modelLabel(app.engine.smartModel),
    });
    await interaction.editReply({
      content: lines.join('\n'),
      files: [new AttachmentBuilder(chart, { name: 'spend.png', description: 'Spend per day' })],
      allowedMentions: NO_MENTIONS,
    });
  },
};

/** Tokens and cost by model, answers and why they escalated, and the savings against the smart model. */
function describeReport(report: UsageReport, smartModel: string): string[] {
  const lines: string[] = [];
  if (report.byModel.length === 0) return ['No model calls in this period.'];
  lines.push('**By model**');
  for (const row of report.byModel) {
    lines.push(
      `- ${modelLabel(row.model)}: ${row.calls.toLocaleString('en-US')} calls · ` +
        `${totalTokens(row).toLocaleString('en-US')} tokens · ${formatUsd(row.costMicros)}`,
    );
  }
  const answers = report.routes.reduce((sum, route) => sum + route.answers, 0);
  const escalated = report.routes.filter((route) => route.reason !== null);
  const escalations = escalated.reduce((sum, route) => sum + route.answers, 0);
  lines.push(
    `**Answers**: ${answers.toLocaleString('en-US')} · escalated to ${modelLabel(smartModel)}: ${escalations.toLocaleString('en-US')}` +
      (escalated.length > 0
        ? ` (${escalated.map((route) => `${reasonLabel(route.reason ?? '')} ${route.answers}`).join(', ')})`
        : ''),
  );
  const cost = report.routes.reduce((sum, route) => sum + route.costMicros, 0);
  const smartOnly = report.routes.reduce((sum, route) => sum + route.smartOnlyCostMicros, 0);
  lines.push(
    `**Saved** ${formatUsd(Math.max(0, smartOnly - cost))} against sending every answer to ${modelLabel(smartModel)} ` +
      `(${formatUsd(smartOnly)})`,
  );
  return lines;
}

/** Every day of the period (so that the chart spans it), with the days that had spend filled in. */
function chartDays(report: UsageReport, window: PeriodWindow, period: UsagePeriod, now: number) {
  const firstMs = period === 'all' ? (report.firstChargeAt ?? now) : window.startMs;
  const lastMs = period === 'all' ? now : window.endMs - 1;
  const first = new Date(Math.floor(firstMs / DAY_MS) * DAY_MS).toISOString().slice(0, 10);
  const last = new Date(Math.floor(lastMs / DAY_MS) * DAY_MS).toISOString().slice(0, 10);
  const edges = [first, last].map((day) => ({ day, fastMicros: 0, smartMicros: 0 }));
  return [...edges, ...report.days];
}
