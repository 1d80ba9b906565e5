import {
  type APIGatewayBotInfo,
  Client,
  GatewayIntentBits,
  Options,
  Partials,
  type RESTOptions,
  Routes,
} from 'discord.js';
import type { Config } from '../config.js';
import { NO_MENTIONS } from './live-reply.js';

/**
 * Messages kept per channel (discord.js keeps 200). With the MessageContent intent every message in every
 * channel the bot can see lands in this cache, not only those for the bot. A reply chain that reaches past
 * the cache is fetched over REST (`fetchReference`, `messages.fetch`), one request per message.
 */
export const MESSAGES_PER_CHANNEL = 50;
/** A cached message is dropped this long after it was sent or last edited: replies mostly come sooner. */
const MESSAGE_LIFETIME_SECONDS = 30 * 60;
const MESSAGE_SWEEP_INTERVAL_SECONDS = 5 * 60;
/** Users cached for messages and members; discord.js never drops them on its own. */
const USER_SWEEP_INTERVAL_SECONDS = 60 * 60;
/** Members kept per server, besides the bot's own (discord.js reads that one for permission checks). */
export const MEMBERS_PER_GUILD = 200;

/**
 * The Discord client: intents for servers, their messages and DMs (MessageContent is privileged: enable it
 * in the developer portal), partial channels so DMs arrive, mentions off for everything it sends, and
 * caches bounded so that a bot in busy servers does not grow for as long as it runs (discord.js's
 * defaults keep every user, member and reaction it has seen, and 200 messages per channel for good).
 * https://discordjs.guide/miscellaneous/cache-customization
 */
export function createDiscordClient(config: Config['discord'], rest: Partial<RESTOptions> = {}): Client {
  return new Client({
    intents: [
      GatewayIntentBits.Guilds,
      GatewayIntentBits.GuildMessages,
      GatewayIntentBits.MessageContent,
      GatewayIntentBits.DirectMessages,
    ],
    partials: [Partials.Channel],
    allowedMentions: NO_MENTIONS,
    enforceNonce: true,
    makeCache: Options.cacheWithLimits({
      ...Options.DefaultMakeCacheSettings,
      MessageManager: MESSAGES_PER_CHANNEL,
      GuildMemberManager: {
        maxSize: MEMBERS_PER_GUILD,
        keepOverLimit: (member) => member.id === member.client.user.id,
      },
      // The bot reads no reactions.
      ReactionManager: 0,
    }),
    sweepers: {
      ...Options.DefaultSweeperSettings,
      messages: { interval: MESSAGE_SWEEP_INTERVAL_SECONDS, lifetime: MESSAGE_LIFETIME_SECONDS },
      users: {
        interval: USER_SWEEP_INTERVAL_SECONDS,
        filter: () => (user) => user.id !== user.client.user.id,
      },
    },
    rest: { ...(config.apiUrl ? { api: config.apiUrl } : {}), ...rest },
  });
}

/**
 * Which shards this process runs, for discord.js's own sharding (its `shards` and `shardCount` options):
 * all of Discord's recommended count (`auto`), all of a fixed count, or the listed ones of it. With a
 * list and `auto`, the count is asked of Discord (GET /gateway/bot) first, as every process of a
 * deployment must agree on it; a listed shard outside it is a configuration error.
 */
export async function applyShards(client: Client, config: Config['discord']): Promise<void> {
  const { shardCount, shardIds } = config;
  if (shardCount === undefined && shardIds === undefined) return;
  if (shardIds === undefined) {
    client.options.shards =
      shardCount === 'auto' ? 'auto' : Array.from({ length: shardCount ?? 1 }, (_, id) => id);
    if (typeof shardCount === 'number') client.options.shardCount = shardCount;
    return;
  }
  let count = shardCount;
  if (count === 'auto' || count === undefined) {
    client.rest.setToken(config.token);
    count = ((await client.rest.get(Routes.gatewayBot())) as APIGatewayBotInfo).shards;
  }
  const outside = shardIds.filter((id) => id >= (count as number));
  if (outside.length > 0) {
    throw new ShardConfigError(
      `DISCORD_SHARD_IDS: shard ${outside.join(', ')} is not below the shard count (${count}, recommended by Discord)`,
    );
  }
  client.options.shards = shardIds;
  client.options.shardCount = count;
}

/** The shards asked for do not fit the shard count: the configuration is wrong. */
export class ShardConfigError extends Error {
  override readonly name = 'ShardConfigError';
}
