import { AttachmentBuilder } from 'discord.js';
import { formatUsd } from '../../core/money.js';
import { modelLabel } from '../../core/models.js';
import { totalTokens } from '../../core/pricing.js';
import {
  answersText,
  type BotView,
  budgetShareText,
  leftLine,
  type MemberView,
  periodPhrase,
  savingsText,
  type ServerView,
  shareOfTotal,
  spentLine,
  viewForecastLine,
  type ViewFigures,
} from '../../core/reports.js';
import { MESSAGE_LIMIT } from '../split.js';
import { describeChart, renderSpendChart } from '../usage-chart.js';

/** The /usage views as Discord messages: the figures of src/core/reports.ts, in Discord markdown. */

export interface Labels {
  fastModel: string;
  smartModel: string;
}

/** A member's view: spent of their budget, what is left, the forecast, and the figures. */
export function memberLines(view: MemberView, labels: Labels, otherMember?: string): string[] {
  const lines = [spentLine('Spent', view.spentMicros, view.period, { noun: 'budget', standing: view.limit })];
  if (otherMember !== undefined) lines.push(`-# usage of ${otherMember}`);
  if (view.limit) lines.push(leftLine(view.limit));
  return [...lines, ...viewForecastLine(view, 'the budget'), ...figureLines(view, labels)];
}

/**
 * A server's view: spent of its cap, what is left, the forecast, the biggest spenders against their own
 * budgets, and the figures. A member whose roles the bot has not seen lately (not in its member cache) is
 * measured without role budgets, and marked so.
 */
export function serverLines(view: ServerView, labels: Labels): string[] {
  const lines = [
    spentLine('Server spent', view.spentMicros, view.period, { noun: 'cap', standing: view.cap }),
  ];
  if (view.cap) lines.push(leftLine(view.cap));
  lines.push(...viewForecastLine(view, 'the cap'));
  if (view.top.length > 0) {
    lines.push(`**Top members** (${periodPhrase(view.period)}; each against their own budget)`);
    view.top.forEach((member, index) => {
      const share = member.budget ? ` · ${budgetShareText(member.budget, (roleId) => `<@&${roleId}>`)}` : '';
      const unknown = member.isBudgetCertain ? '' : ' · roles not seen lately';
      lines.push(`${index + 1}. <@${member.userId}> ${formatUsd(member.spentMicros)}${share}${unknown}`);
    });
  }
  return [...lines, ...figureLines(view, labels)];
}

/** The operator's view: spent across every server, the forecast, the biggest servers, and the figures. */
export function botLines(view: BotView, labels: Labels, serverName: (guildId: string) => string): string[] {
  const lines = [spentLine('Bot spent', view.spentMicros, view.period)];
  lines.push(...viewForecastLine(view, 'the cap'));
  if (view.top.length > 0) {
    lines.push(`**Top servers** (${periodPhrase(view.period)})`);
    view.top.forEach((server, index) => {
      const name = server.id === null ? 'direct messages' : serverName(server.id);
      lines.push(
        `${index + 1}. ${name} ${formatUsd(server.spentMicros)} · ${shareOfTotal(server.spentMicros, view.spentMicros)}`,
      );
    });
  }
  return [...lines, ...figureLines(view, labels)];
}

/** Tokens and cost by model, answers and why they escalated, and the savings against the smart model. */
function figureLines(view: ViewFigures, labels: Labels): string[] {
  if (view.byModel.length === 0) return ['No model calls in this period.'];
  const smartLabel = modelLabel(labels.smartModel);
  return [
    '**By model**',
    ...view.byModel.map(
      (row) =>
        `- ${modelLabel(row.model)}: ${row.calls.toLocaleString('en-US')} calls · ` +
        `${totalTokens(row).toLocaleString('en-US')} tokens · ${formatUsd(row.costMicros)}`,
    ),
    `**Answers**: ${answersText(view.answers, smartLabel)}`,
    `**Saved** ${savingsText(view.answers, smartLabel)}`,
  ];
}

/** The lines as one message within Discord's limit: lines that do not fit are left out, and it says so. */
export function fitMessage(lines: readonly string[]): string {
  const kept: string[] = [];
  let length = 0;
  for (const line of lines) {
    if (length + line.length + 1 > MESSAGE_LIMIT - 2) {
      kept.push('…');
      break;
    }
    kept.push(line);
    length += line.length + 1;
  }
  return kept.join('\n');
}

/** The view's cumulative chart as an attachment, with the chart in words as its alt text. */
export async function chartAttachment(
  view: ViewFigures,
  title: string,
  labels: Labels,
): Promise<AttachmentBuilder> {
  const png = await renderSpendChart({
    title,
    data: view.chart,
    fastLabel: modelLabel(labels.fastModel),
    smartLabel: modelLabel(labels.smartModel),
  });
  return new AttachmentBuilder(png, { name: 'spend.png', description: describeChart(view.chart) });
}
