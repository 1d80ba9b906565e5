import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  type Client,
  type Message,
  type MessageActionRowComponentBuilder,
} from 'discord.js';
import { ProvidersUnavailableError } from '../core/calls.js';
import { ProviderError, providerLabel } from '../core/chat.js';
import { footerLines } from '../core/footer.js';
import { describeProvidersDown } from '../core/outage.js';
import { modelLabel } from '../core/models.js';
import { answerTurn, type TurnRequest, type TurnResult } from '../core/turn.js';
import type { Storage } from '../core/ports.js';
import type { ServerSettings } from '../core/settings.js';
import type { TurnDependencies } from '../core/turn.js';
import type { Logger } from '../log.js';
import type { RateLimitWatch } from './rate-limits.js';
import {
  type Components,
  EDIT_INTERVAL_MS,
  LiveReply,
  NO_MENTIONS,
  type ReplySurface,
} from './live-reply.js';

/** What people are told when neither provider answers (its home is src/core/outage.ts). */
export { PROVIDERS_DOWN } from '../core/outage.js';

/** The Escalate button under a fast-model answer: its custom id names the turn it would improve. */
const ESCALATE_PREFIX = 'escalate:';

export function escalateButtonId(turnId: string): string {
  return `${ESCALATE_PREFIX}${turnId}`;
}

/** The turn an Escalate button belongs to, or undefined for any other component. */
export function turnOfEscalateButton(customId: string): string | undefined {
  return customId.startsWith(ESCALATE_PREFIX) ? customId.slice(ESCALATE_PREFIX.length) : undefined;
}

function escalateButton(turnId: string, smartModel: string): Components {
  return [
    new ActionRowBuilder<MessageActionRowComponentBuilder>().addComponents(
      new ButtonBuilder()
        .setCustomId(escalateButtonId(turnId))
        .setLabel(`Escalate to ${modelLabel(smartModel)}`)
        .setStyle(ButtonStyle.Secondary),
    ),
  ];
}

/** What the Discord layer runs on: storage behind its ports and the engine (see src/app.ts). */
export interface BotServices {
  storage: Storage;
  engine: TurnDependencies;
}

export interface AnswerContext {
  app: BotServices;
  client: Client<true>;
  log: Logger;
  editIntervalMs?: number | undefined;
  /** What discord.js reports rate-limited: interim edits wait it out. */
  limits?: RateLimitWatch | undefined;
}

/**
 * Runs a turn and shows it on a surface as it is written: text streamed into the reply, the draft replaced
 * by "refining with Claude Haiku…" when the smart model takes over, then the final text with its footer
 * (and, under a fast-model answer, the Escalate button). A server whose spending just crossed 80% or 100%
 * of its cap hears of it in its alerts channel, after the answer is shown.
 */
export async function streamTurn(
  request: TurnRequest,
  surface: ReplySurface,
  settings: ServerSettings,
  context: AnswerContext,
  options: StreamOptions = {},
): Promise<StreamedTurn> {
  const { app } = context;
  const startedAt = performance.now();
  const live = new LiveReply(surface, context.editIntervalMs ?? EDIT_INTERVAL_MS, context.limits);
  void live.start();
  // A refusal is the message itself, not a footnote: which limit, what is left, when it resets.
  const refuse = options.refuse ?? ((text: string) => live.finish(text, []).then(() => undefined));
  let result: TurnResult;
  try {
    result = await answerTurn(request, app.engine, (event) => {
      if (event.type === 'delta') live.append(event.text);
      else live.replace(`-# refining with ${modelLabel(event.model)}…`);
    });
  } catch (error) {
    if (error instanceof ProviderError && error.kind === 'invalid_request') {
      // The provider refused the request itself: an image it cannot read, a conversation too long.
      context.log.warn({ err: error, turnId: request.turnId }, 'a provider refused the request');
      await refuse(
        `${providerLabel(error.provider)} could not read this message (an attachment it cannot open, or ` +
          'more text than it takes); nothing was charged',
      );
      return { result: undefined, messages: [] };
    }
    if (error instanceof ProvidersUnavailableError) {
      context.log.error({ err: error, turnId: request.turnId }, 'both model providers failed');
      await refuse(describeProvidersDown(error.costMicros));
      return { result: undefined, messages: [] };
    }
    throw error;
  }
  // What the person is about to see as done is on disk first: a crash after the last edit loses no charge.
  await app.storage.flush();
  let messages: Message[] = [];
  if (result.status === 'answered') {
    // With the footer off, the notes that matter to the person (fallback, kept draft, budget) stay.
    const lines = settings.showFooter ? footerLines(result) : footerLines(result).slice(1);
    const canEscalate = result.model === app.engine.fastModel && settings.escalationMode !== 'off';
    messages = await live.finish(
      result.text,
      lines.map((line) => `-# ${line}`),
      canEscalate ? escalateButton(request.turnId, app.engine.smartModel) : undefined,
    );
  } else {
    await refuse(result.warnings.join('\n'));
  }
  logTurn(request, result, performance.now() - startedAt, context.log);
  if (request.owner.guildId !== null && result.costMicros > 0) {
    await alertServer(request.owner.guildId, settings, context);
  }
  return { result, messages };
}

export interface StreamOptions {
  /**
   * How a turn that gives no answer (a budget denial, escalation turned off, both providers down) is
   * told; by default, in place of the answer. Commands tell it privately.
   */
  refuse?: (text: string) => Promise<void>;
}

export interface StreamedTurn {
  /** undefined: both providers were down. */
  result: TurnResult | undefined;
  /** The messages of the answer, first to last (none when refused). */
  messages: Message[];
}

/**
 * One line per turn, once it is shown: what it cost and where its time went. `ms` runs from the start of the
 * turn to its last message sent; `providerMs` of that was spent inside the providers' calls; the rest is
 * the bot's own work and Discord's.
 */
function logTurn(request: TurnRequest, result: TurnResult, elapsedMs: number, log: Logger): void {
  log.info(
    {
      turnId: request.turnId,
      messageId: request.questionMessageId,
      userId: request.owner.userId,
      guildId: request.owner.guildId,
      status: result.status,
      models: result.models,
      // Why it went to the smart model (router, rule, check, signal, user, pdf, fallback) and what the
      // router's triage said, acted on or (in shadow mode) not: an operator compares it with the check.
      route: result.escalation?.source,
      escalation: result.escalation?.reason,
      triage: result.triage ? `${result.triage.route} ${result.triage.category}` : undefined,
      tokens: result.tokens,
      costMicros: result.costMicros,
      ms: roundMs(elapsedMs),
      providerMs: roundMs(result.providerMs),
    },
    'turn done',
  );
}

/** Milliseconds to the microsecond: finer is noise, coarser hides the overhead figures' sub-ms parts. */
function roundMs(ms: number): number {
  return Math.round(ms * 1_000) / 1_000;
}

/** Tells a server's alerts channel (if it has one) that its spending crossed 80% or 100% of its cap. */
async function alertServer(guildId: string, settings: ServerSettings, context: AnswerContext): Promise<void> {
  try {
    // Without a channel to tell, the notice is not used up: it goes out once one is set.
    if (settings.alertsChannelId === null) return;
    const notice = await context.app.storage.notices.forServer(guildId);
    if (notice === undefined) return;
    const channel = await context.client.channels.fetch(settings.alertsChannelId);
    if (!channel?.isSendable()) throw new Error('the alerts channel is gone or not a text channel');
    await channel.send({ content: `⚠️ ${notice}`, allowedMentions: NO_MENTIONS });
  } catch (error) {
    context.log.warn({ err: error, guildId }, 'could not post the server budget alert');
  }
}
