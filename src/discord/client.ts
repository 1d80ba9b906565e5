import { Client, GatewayIntentBits, Partials, type RESTOptions } from 'discord.js';
import type { Config } from '../config.js';
import { NO_MENTIONS } from './live-reply.js';

/**
 * The Discord client: intents for servers, their messages and DMs (MessageContent is privileged: enable it
 * in the developer portal), partial channels so DMs arrive, and mentions off for everything it sends.
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
    rest: { ...(config.apiUrl ? { api: config.apiUrl } : {}), ...rest },
  });
}
