import { loadCommandsConfig, loadOrExit } from './config.js';
import { createLogger } from './log.js';

/**
 * `npm run deploy-commands`: registers the slash commands with Discord (DISCORD_GUILD_ID: in that server
 * only; otherwise globally). It needs Discord's settings only, not the model keys. The bot itself never
 * registers; it warns at start-up when what Discord has differs from its own.
 */
const config = loadOrExit(() => loadCommandsConfig());
const log = createLogger(config.logLevel);
// discord.js loads in a few hundred ms, which a mistake in the configuration should not wait for.
const [
  { DefaultRestOptions },
  { registerCommands },
  { classifyDiscordFailure, describeLoginFailure, loginExitCode },
] = await Promise.all([
  import('discord.js'),
  import('./discord/commands/register.js'),
  import('./discord/login.js'),
]);
try {
  const names = await registerCommands(config.discord);
  log.info(
    { commands: names, scope: config.discord.guildId ? `guild ${config.discord.guildId}` : 'global' },
    `registered ${names.length} slash commands`,
  );
} catch (error) {
  const failure = classifyDiscordFailure(error);
  const apiUrl = config.discord.apiUrl ?? DefaultRestOptions.api;
  process.stderr.write(
    failure
      ? `could not register the commands: ${describeLoginFailure(failure, apiUrl)}\n`
      : `could not register the commands: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exitCode = (failure && loginExitCode(failure)) ?? 1;
}
