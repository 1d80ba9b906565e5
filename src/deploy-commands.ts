import { ConfigError, loadConfig } from './config.js';
import { registerCommands } from './discord/commands/register.js';
import { createLogger } from './log.js';

/**
 * `npm run deploy-commands`: registers the slash commands with Discord with the bot's own configuration
 * (DISCORD_GUILD_ID: in that server only; otherwise globally). The bot itself never registers; it warns
 * at start-up when what Discord has differs from its own.
 */
try {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const names = await registerCommands(config.discord);
  log.info(
    { commands: names, scope: config.discord.guildId ? `guild ${config.discord.guildId}` : 'global' },
    `registered ${names.length} slash commands`,
  );
} catch (error) {
  process.stderr.write(
    error instanceof ConfigError
      ? `${error.message}\n`
      : `could not register the commands: ${String(error)}\n`,
  );
  process.exitCode = 1;
}
