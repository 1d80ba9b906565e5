import { REST, Routes } from 'discord.js';
import type { DiscordConfig } from '../../config.js';
import { COMMANDS } from './index.js';

/**
 * Registers every slash command in one bulk overwrite: in DISCORD_GUILD_ID when set (updates show at
 * once, for development), otherwise globally. Returns the names Discord now has.
 */
export async function registerCommands(config: DiscordConfig): Promise<string[]> {
  const rest = new REST(config.apiUrl ? { api: config.apiUrl } : {}).setToken(config.token);
  const route = config.guildId
    ? Routes.applicationGuildCommands(config.applicationId, config.guildId)
    : Routes.applicationCommands(config.applicationId);
  const registered = (await rest.put(route, { body: COMMANDS.map((command) => command.data) })) as {
    name: string;
  }[];
  return registered.map((command) => command.name);
}
