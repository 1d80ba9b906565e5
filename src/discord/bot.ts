import { setTimeout as sleep } from 'node:timers/promises';
import {
  ChannelType,
  type Client,
  Events,
  type Message,
  RESTEvents,
  type RESTOptions,
  SnowflakeUtil,
  Status,
} from 'discord.js';
import type { Config } from '../config.js';
import { newId } from '../core/ids.js';
import { formatUsd } from '../core/money.js';
import { type Health, NO_TELEMETRY, type Telemetry } from '../core/ports.js';
import type { Logger } from '../log.js';
import { type AnswerContext, type BotServices, streamTurn } from './answer.js';
import { applyShards, createDiscordClient } from './client.js';
import { handleInteraction, warnIfCommandsDiffer } from './commands/index.js';
import { buildConversation, isForBot } from './conversation.js';
import { NO_MENTIONS } from './live-reply.js';
import { logIn } from './login.js';
import { roleIdsOf } from './members.js';
import { RateLimitWatch } from './rate-limits.js';
import { RecentIds } from './recent-ids.js';
import { answerPlace } from './threads.js';
import { Cooldown } from './cooldown.js';
import { MESSAGES_WAITING_PER_USER, TURNS_IN_FLIGHT_PER_USER, UserLanes } from './user-lanes.js';

/** The answer to a bare mention: nothing to ask a model about. */
export const EMPTY_QUESTION_HINT = 'Ask me something after the mention, or reply to one of my messages.';

/**
 * The answer to a message that finds its sender's queue full (MESSAGES_WAITING_PER_USER). One notice
 * covers a whole flood: further refused messages get none until one of theirs is taken again, because a
 * notice per message would be a flood of its own in the channel's rate limit, holding up everyone's answers.
 */
export const ONE_AT_A_TIME =
  "⏳ One at a time, please: I'm still answering your earlier messages, so I skipped this one (and will " +
  'skip more until one of them is answered).';

/** The answer to a question whose attachment could not be downloaded: answering without it would be a guess. */
export const DOWNLOAD_FAILED =
  'Your attachment could not be downloaded, so this was not answered (nothing was charged); try sending it again.';

/**
 * Answers being written at once, whoever asked; more wait their turn, in order. Discord's 50 requests per
 * second bound how fast answers can be delivered (about 16 a second, at 3 requests each), so a burst
 * gains nothing from more model streams open at once, and memory stays bounded however large the burst.
 */
export const TURNS_IN_FLIGHT = 64;

/** On SIGTERM, answers in progress get this long to finish before they are cancelled. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * A DM channel nothing was said in for this long is dropped from discord.js's cache (its cached messages
 * are gone by then too, see client.ts). discord.js keeps one for every person who ever wrote to the bot,
 * has no sweeper for them and must not have its channel cache limited; the next DM brings it back.
 */
export const DIRECT_MESSAGE_CHANNEL_IDLE_MS = 30 * 60_000;
const DIRECT_MESSAGE_SWEEP_INTERVAL_MS = 5 * 60_000;

export interface BotOptions {
  editIntervalMs?: number;
  shutdownGraceMs?: number;
  /** discord.js REST options over the defaults (tests shorten the request timeout). */
  rest?: Partial<RESTOptions>;
  /** How long an interaction may run before it is stopped (default: 14 minutes of its 15). */
  interactionDeadlineMs?: number;
  turnsInFlight?: number;
  /** How long one attachment may take to download (default DOWNLOAD_TIMEOUT_MS). */
  downloadTimeoutMs?: number;
  /** The clock the /usage views read (tests move it to check forecasts); default Date.now. */
  clock?: () => number;
  /** The operator's metrics: Discord's rate limits as discord.js meets them. */
  telemetry?: Telemetry;
}

/** How many entries the bot's per-person and per-id bookkeeping holds; each forgets what no longer matters. */
export interface Remembered {
  /** People with an answer in progress or waiting. */
  lanes: number;
  /** People inside their cooldown. */
  cooldowns: number;
  /** Message and interaction ids taken recently (to answer a redelivery once). */
  recentIds: number;
  /** Channels and interactions discord.js reported rate-limited lately. */
  rateLimits: number;
  /** Answers and interactions in progress. */
  inFlight: number;
}

export interface RunningBot {
  client: Client<true>;
  /** Stops taking new messages, lets answers in progress finish (or cancels them after 10 s), logs out. */
  stop(): Promise<void>;
  /** What the per-person and per-id bookkeeping holds right now (for tests and diagnostics). */
  remembered(): Remembered;
  /** Whether every shard of this process is connected to Discord's gateway (for /readyz). */
  gateway(): Health;
}

/** Logs in and answers messages until stopped. */
export async function startBot(
  config: Config,
  app: BotServices,
  log: Logger,
  options: BotOptions = {},
): Promise<RunningBot> {
  const client = createDiscordClient(config.discord, options.rest);
  const inFlight = new Map<Promise<void>, AbortController>();
  let isStopping = false;

  const lanes = new UserLanes(TURNS_IN_FLIGHT_PER_USER, MESSAGES_WAITING_PER_USER);
  const slots = new UserLanes(options.turnsInFlight ?? TURNS_IN_FLIGHT);
  const cooldown = new Cooldown(config.discord.userCooldownMs);
  const limits = new RateLimitWatch(client.rest);
  const telemetry = options.telemetry ?? NO_TELEMETRY;
  if (telemetry !== NO_TELEMETRY) {
    client.rest.on(RESTEvents.RateLimited, (info) =>
      telemetry.discordRateLimited(info.global ? 'global' : 'route'),
    );
  }
  const answerContext = (): AnswerContext => ({
    app,
    client: client as Client<true>,
    log,
    editIntervalMs: options.editIntervalMs,
    limits,
  });
  /** Work in progress, so that shutdown can wait for it (or cancel it through `controller`). */
  const track = (controller: AbortController, task: Promise<void>) => {
    inFlight.set(task, controller);
    void task.finally(() => inFlight.delete(task));
  };
  /** A one-line notice in reply to a message that is not answered: no model, no charge, nobody pinged. */
  const notify = (message: Message, content: string) =>
    void message
      .reply({ content, allowedMentions: NO_MENTIONS })
      .catch((error: unknown) => log.warn({ err: error, messageId: message.id }, 'could not send a notice'));

  // A message or interaction delivered twice is answered once (one model call, one charge, one reply).
  const taken = new RecentIds();

  client.on(Events.InteractionCreate, (interaction) => {
    if (isStopping || !client.isReady() || !taken.take(interaction.id)) return;
    const controller = new AbortController();
    const handle = async () => {
      // Another process may have it (a shard running twice during a deploy): answered once, by the first.
      if (!(await app.storage.events.claim(`interaction:${interaction.id}`))) return;
      await handleInteraction(interaction, {
        ...answerContext(),
        config,
        signal: controller.signal,
        interactionDeadlineMs: options.interactionDeadlineMs,
        now: options.clock,
      });
    };
    track(
      controller,
      handle().catch((error: unknown) =>
        log.error({ err: error, interactionId: interaction.id }, 'handling an interaction failed'),
      ),
    );
  });

  const isAnswered = (guildId: string | null, channelId: string) =>
    app.storage.settings.isAnsweredChannel(guildId, channelId);
  client.on(Events.MessageCreate, (message) => {
    // The author's roles are read now, while the payload's member is in discord.js's cache: the cache
    // keeps MEMBERS_PER_GUILD members per server, so a busy server's later messages push it out while
    // this one waits its turn, and a role budget read then would be missed.
    const roleIds = roleIdsOf(message.member, message.guildId);
    void takeMessage(message, roleIds).catch((error: unknown) =>
      log.error({ err: error, messageId: message.id }, 'taking a message failed'),
    );
  });

  /** A message for the bot is queued in its author's lane, in the order messages arrived. */
  const takeMessage = async (message: Message, roleIds: readonly string[]) => {
    if (isStopping || !client.isReady()) return;
    if (!(await isForBot(message, client.user.id, isAnswered))) return;
    if (!taken.take(message.id)) return;
    const check = cooldown.take(message.author.id);
    if (!check.isAllowed) {
      if (check.isFirstRefusal)
        notify(message, `⏳ You can ask again in ${Math.ceil(check.waitMs / 1000)} s.`);
      return;
    }
    const controller = new AbortController();
    const offer = lanes.offer(message.author.id, async () => {
      // Another process may have it (a shard running twice during a deploy): answered once, by the first.
      if (!(await app.storage.events.claim(`message:${message.id}`))) return;
      await slots.run('every answer', async () => {
        // A message still waiting its turn when shutdown began is not started.
        if (!isStopping)
          await answerMessage({ message, roleIds }, controller.signal, answerContext(), options);
      });
    });
    if (!offer.isAccepted) {
      if (offer.isFirstRefusal) notify(message, ONE_AT_A_TIME);
      return;
    }
    track(
      controller,
      offer.result.catch((error: unknown) =>
        log.error({ err: error, messageId: message.id }, 'answering a message failed'),
      ),
    );
  };

  const ready = new Promise<Client<true>>((resolve) => client.once(Events.ClientReady, resolve));
  await applyShards(client, config.discord);
  await logIn(client, config.discord.token);
  const readyClient = await ready;
  const directMessageSweep = setInterval(
    () => sweepIdleDirectMessageChannels(readyClient, (userId) => lanes.has(userId)),
    DIRECT_MESSAGE_SWEEP_INTERVAL_MS,
  );
  directMessageSweep.unref();
  void warnIfCommandsDiffer(readyClient, config, log);
  log.info(
    {
      guilds: readyClient.guilds.cache.size,
      shards: readyClient.ws.shards.map((shard) => shard.id),
      shardCount: readyClient.options.shardCount,
      fastModel: config.fastModel,
      smartModel: config.smartModel,
      userBudget: `${formatUsd(config.defaultUserBudget.amountMicros)}/${config.defaultUserBudget.period}`,
    },
    `tierbot ready as ${readyClient.user.tag}`,
  );

  return {
    client: readyClient,
    remembered: () => ({
      lanes: lanes.size,
      cooldowns: cooldown.size,
      recentIds: taken.size,
      rateLimits: limits.size,
      inFlight: inFlight.size,
    }),
    gateway: () => gatewayHealth(readyClient),
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
      clearInterval(directMessageSweep);
      await client.destroy();
    },
  };
}

/**
 * Connected means every shard this process runs is READY: one that is resuming, reconnecting or waiting
 * for its servers cannot hear new messages yet.
 */
function gatewayHealth(client: Client<true>): Health {
  const shards = [...client.ws.shards.values()];
  if (shards.length === 0) return { ok: false, reason: 'no gateway shard is connected' };
  const down = shards.filter((shard) => shard.status !== Status.Ready);
  if (down.length === 0) return { ok: true };
  // Status names read as words: WaitingForGuilds → waiting for guilds.
  const stateOf = (status: Status) =>
    (Status[status] ?? 'Down').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
  const states = down.map((shard) => `shard ${shard.id} ${stateOf(shard.status)}`);
  return { ok: false, reason: `the Discord gateway is not connected (${states.join(', ')})` };
}

/**
 * Drops from discord.js's cache the DM channels idle for {@link DIRECT_MESSAGE_CHANNEL_IDLE_MS}, except those
 * of people with an answer in progress or waiting (a message finds its channel through the cache).
 * Returns how many were dropped.
 */
export function sweepIdleDirectMessageChannels(
  client: Client,
  isAnswering: (userId: string) => boolean,
  now = Date.now(),
): number {
  return client.channels.cache.sweep((channel) => {
    if (channel.type !== ChannelType.DM || isAnswering(channel.recipientId)) return false;
    const lastAt = channel.lastMessageId ? SnowflakeUtil.timestampFrom(channel.lastMessageId) : 0;
    return now - lastAt >= DIRECT_MESSAGE_CHANNEL_IDLE_MS;
  });
}

/**
 * One message in, one answer out: streamed (in a thread opened from the message, when its server chose
 * so), footed, and charged to the person who asked.
 */
async function answerMessage(
  { message, roleIds }: { message: Message; roleIds: readonly string[] },
  signal: AbortSignal,
  context: AnswerContext,
  options: BotOptions,
): Promise<void> {
  const { messages, warnings, isDownloadFailed } = await buildConversation(message, context.client.user.id, {
    timeoutMs: options.downloadTimeoutMs,
    signal,
  });
  // Shutdown cancelled the turn while its attachments were downloading: nothing to say.
  if (signal.aborted) return;
  if (isDownloadFailed) {
    const content = [DOWNLOAD_FAILED, ...warnings.map((warning) => `-# ${warning}`)].join('\n');
    await message.reply({ content, allowedMentions: NO_MENTIONS });
    return;
  }
  const question = messages.at(-1)?.content;
  if (question === undefined || question === '') {
    // Nothing to ask a model: a bare mention, or only attachments that could not be sent (say why).
    const content = [EMPTY_QUESTION_HINT, ...warnings.map((warning) => `-# ${warning}`)].join('\n');
    await message.reply({ content, allowedMentions: NO_MENTIONS });
    return;
  }
  const settings = await context.app.storage.settings.of(message.guildId);
  const place = await answerPlace(message, settings, context.log);
  await streamTurn(
    {
      turnId: newId(),
      owner: {
        userId: message.author.id,
        guildId: message.guildId,
        channelId: place.channelId,
        roleIds,
      },
      conversation: messages,
      mode: settings.escalationMode,
      choice: 'auto',
      warnings,
      signal,
      questionMessageId: message.id,
    },
    place.surface,
    settings,
    context,
  );
}
