import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, Events, type Message } from 'discord.js';
import type { App } from '../app.js';
import type { Config } from '../config.js';
import { ProvidersUnavailableError } from '../core/calls.js';
import { footerLines } from '../core/footer.js';
import { newId } from '../core/ids.js';
import { formatUsd } from '../core/money.js';
import { modelLabel } from '../core/models.js';
import { answerTurn } from '../core/turn.js';
import type { Logger } from '../log.js';
import { createDiscordClient } from './client.js';
import { buildConversation, isForBot } from './conversation.js';
import { EDIT_INTERVAL_MS, LiveReply, NO_MENTIONS } from './live-reply.js';
import { Cooldown } from './cooldown.js';
import { UserLanes } from './user-lanes.js';

/** The answer to a bare mention: nothing to ask a model about. */
export const EMPTY_QUESTION_HINT = 'Ask me something after the mention, or reply to one of my messages.';

/** On SIGTERM, answers in progress get this long to finish before they are cancelled. */
const SHUTDOWN_GRACE_MS = 10_000;

export interface BotOptions {
  editIntervalMs?: number;
  shutdownGraceMs?: number;
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
  const client = createDiscordClient(config.discord);
  const inFlight = new Map<Promise<void>, AbortController>();
  let isStopping = false;

  const lanes = new UserLanes();
  const cooldown = new Cooldown(config.discord.userCooldownMs);

  client.on(Events.MessageCreate, (message) => {
    const isAnswered = (guildId: string | null, channelId: string) =>
      app.settings.isAnsweredChannel(guildId, channelId);
    if (isStopping || !client.isReady() || !isForBot(message, client.user.id, isAnswered)) return;
    const botId = client.user.id;
    const waitMs = cooldown.take(message.author.id);
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      void message
        .reply({ content: `⏳ You can ask again in ${seconds} s.`, allowedMentions: NO_MENTIONS })
        .catch((error: unknown) => log.warn({ err: error }, 'could not send the cooldown notice'));
      return;
    }
    const controller = new AbortController();
    const turn = lanes
      .run(message.author.id, async () => {
        // A message still waiting its turn when shutdown began is not started.
        if (!isStopping) await answerMessage(message, botId, app, controller.signal, options);
      })
      .catch((error: unknown) =>
        log.error({ err: error, messageId: message.id }, 'answering a message failed'),
      );
    inFlight.set(turn, controller);
    void turn.finally(() => inFlight.delete(turn));
  });

  const ready = new Promise<Client<true>>((resolve) => client.once(Events.ClientReady, resolve));
  await client.login(config.discord.token);
  const readyClient = await ready;
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
async function answerMessage(
  message: Message,
  botId: string,
  app: App,
  signal: AbortSignal,
  options: BotOptions,
): Promise<void> {
  const { messages, warnings } = await buildConversation(message, botId);
  const question = messages.at(-1)?.content;
  if (question === undefined || question === '') {
    // Nothing to ask a model: a bare mention, or only attachments that could not be sent (say why).
    const content = [EMPTY_QUESTION_HINT, ...warnings.map((warning) => `-# ${warning}`)].join('\n');
    await message.reply({ content, allowedMentions: NO_MENTIONS });
    return;
  }
  const settings = app.settings.of(message.guildId);
  const live = new LiveReply(message, options.editIntervalMs ?? EDIT_INTERVAL_MS);
  void live.start();
  try {
    const result = await answerTurn(
      {
        turnId: newId(),
        owner: { userId: message.author.id, guildId: message.guildId, channelId: message.channelId },
        conversation: messages,
        mode: settings.escalationMode,
        choice: 'auto',
        warnings,
        signal,
      },
      app.engine,
      (event) => {
        if (event.type === 'delta') live.append(event.text);
        else live.replace(`-# refining with ${modelLabel(event.model)}…`);
      },
    );
    if (result.status === 'answered') {
      // With the footer off, the notes that matter to the person (fallback, kept draft, budget) stay.
      const lines = settings.showFooter ? footerLines(result) : footerLines(result).slice(1);
      await live.finish(
        result.text,
        lines.map((line) => `-# ${line}`),
      );
    } else {
      // A refusal is the message itself, not a footnote: which limit, what is left, when it resets.
      await live.finish(result.warnings.join('\n'), []);
    }
  } catch (error) {
    if (error instanceof ProvidersUnavailableError) {
      await live.finish('', ['both model providers are unavailable right now; nothing was charged']);
      throw error;
    }
    throw error;
  }
}
