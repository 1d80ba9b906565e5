import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, Events, type Message, type RESTOptions } from 'discord.js';
import type { App } from '../app.js';
import type { Config } from '../config.js';
import { newId } from '../core/ids.js';
import { formatUsd } from '../core/money.js';
import type { Logger } from '../log.js';
import { type AnswerContext, streamTurn } from './answer.js';
import { createDiscordClient } from './client.js';
import { handleInteraction, warnIfCommandsDiffer } from './commands/index.js';
import { buildConversation, isForBot } from './conversation.js';
import { messageSurface, NO_MENTIONS } from './live-reply.js';
import { logIn } from './login.js';
import { RateLimitWatch } from './rate-limits.js';
import { RecentIds } from './recent-ids.js';
import { Cooldown } from './cooldown.js';
import { UserLanes } from './user-lanes.js';

/** The answer to a bare mention: nothing to ask a model about. */
export const EMPTY_QUESTION_HINT = 'Ask me something after the mention, or reply to one of my messages.';

/**
 * Answers being written at once, whoever asked; more wait their turn, in order. Discord's 50 requests per
 * second bound how fast answers can be delivered (about 16 a second, at 3 requests each), so a burst
 * gains nothing from more model streams open at once, and memory stays bounded however large the burst.
 */
export const TURNS_IN_FLIGHT = 64;

/** On SIGTERM, answers in progress get this long to finish before they are cancelled. */
const SHUTDOWN_GRACE_MS = 10_000;

export interface BotOptions {
  editIntervalMs?: number;
  shutdownGraceMs?: number;
  /** discord.js REST options over the defaults (tests shorten the request timeout). */
  rest?: Partial<RESTOptions>;
  /** How long an interaction may run before it is stopped (default: 14 minutes of its 15). */
  interactionDeadlineMs?: number;
  turnsInFlight?: number;
}

export interface RunningBot {
  client: Client<true>;
  /** Stops taking new messages, lets answers in progress finish (or cancels them after 10 s), logs out. */
  stop(): Promise<void>;
}

/** Logs in and answers messages until stopped. */
export async function startBot(
  config: Config,
  app: App,
  log: Logger,
  options: BotOptions = {},
): Promise<RunningBot> {
  const client = createDiscordClient(config.discord, options.rest);
  const inFlight = new Map<Promise<void>, AbortController>();
  let isStopping = false;

  const lanes = new UserLanes();
  const slots = new UserLanes(options.turnsInFlight ?? TURNS_IN_FLIGHT);
  const cooldown = new Cooldown(config.discord.userCooldownMs);
  const limits = new RateLimitWatch(client.rest);
  const answerContext = (): AnswerContext => ({
    app,
    client: client as Client<true>,
    log,
    editIntervalMs: options.editIntervalMs,
    limits,
  });
  /** Work in progress, so that shutdown can wait for it (or cancel it after the grace period). */
  const track = (work: (signal: AbortSignal) => Promise<void>) => {
    const controller = new AbortController();
    const task = work(controller.signal);
    inFlight.set(task, controller);
    void task.finally(() => inFlight.delete(task));
  };

  // A message or interaction delivered twice is answered once (one model call, one charge, one reply).
  const taken = new RecentIds();

  client.on(Events.InteractionCreate, (interaction) => {
    if (isStopping || !client.isReady() || !taken.take(interaction.id)) return;
    track((signal) =>
      handleInteraction(interaction, {
        ...answerContext(),
        config,
        signal,
        interactionDeadlineMs: options.interactionDeadlineMs,
      }).catch((error: unknown) =>
        log.error({ err: error, interactionId: interaction.id }, 'handling an interaction failed'),
      ),
    );
  });

  client.on(Events.MessageCreate, (message) => {
    const isAnswered = (guildId: string | null, channelId: string) =>
      app.settings.isAnsweredChannel(guildId, channelId);
    if (isStopping || !client.isReady() || !isForBot(message, client.user.id, isAnswered)) return;
    if (!taken.take(message.id)) return;
    const waitMs = cooldown.take(message.author.id);
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      void message
        .reply({ content: `⏳ You can ask again in ${seconds} s.`, allowedMentions: NO_MENTIONS })
        .catch((error: unknown) => log.warn({ err: error }, 'could not send the cooldown notice'));
      return;
    }
    track((signal) =>
      lanes
        .run(message.author.id, async () => {
          // A message still waiting its turn when shutdown began is not started.
          await slots.run('every answer', async () => {
            if (!isStopping) await answerMessage(message, signal, answerContext());
          });
        })
        .catch((error: unknown) =>
          log.error({ err: error, messageId: message.id }, 'answering a message failed'),
        ),
    );
  });

  const ready = new Promise<Client<true>>((resolve) => client.once(Events.ClientReady, resolve));
  await logIn(client, config.discord.token);
  const readyClient = await ready;
  void warnIfCommandsDiffer(readyClient, config, log);
  log.info(
    {
      guilds: readyClient.guilds.cache.size,
      fastModel: config.fastModel,
      smartModel: config.smartModel,
      userBudget: `${formatUsd(config.defaultUserBudget.amountMicros)}/${config.defaultUserBudget.period}`,
    },
    `tierbot ready as ${readyClient.user.tag}`,
  );

  return {
    client: readyClient,
    async stop() {
      isStopping = true;
      const finished = Promise.allSettled([...inFlight.keys()]);
      const graceOver = sleep(options.shutdownGraceMs ?? SHUTDOWN_GRACE_MS, undefined, { ref: false }).then(
        () => 'grace-over' as const,
      );
      if ((await Promise.race([finished, graceOver])) === 'grace-over') {
        for (const controller of inFlight.values()) controller.abort();
        await finished;
      }
      await client.destroy();
    },
  };
}

/** One message in, one answer out: streamed, footed, and charged to the person who asked. */
async function answerMessage(message: Message, signal: AbortSignal, context: AnswerContext): Promise<void> {
  const { messages, warnings } = await buildConversation(message, context.client.user.id);
  const question = messages.at(-1)?.content;
  if (question === undefined || question === '') {
    // Nothing to ask a model: a bare mention, or only attachments that could not be sent (say why).
    const content = [EMPTY_QUESTION_HINT, ...warnings.map((warning) => `-# ${warning}`)].join('\n');
    await message.reply({ content, allowedMentions: NO_MENTIONS });
    return;
  }
  const settings = context.app.settings.of(message.guildId);
  await streamTurn(
    {
      turnId: newId(),
      owner: { userId: message.author.id, guildId: message.guildId, channelId: message.channelId },
      conversation: messages,
      mode: settings.escalationMode,
      choice: 'auto',
      warnings,
      signal,
      questionMessageId: message.id,
    },
    messageSurface(message),
    settings,
    context,
  );
}
