/** API keys shaped like real ones (so the secret scans know them when they leak) and worth nothing. */
export const TEST_KEYS = {
  OPENAI_API_KEY: 'sk-test-openai-key-0000000000',
  ANTHROPIC_API_KEY: 'sk-ant-test-key-0000000000',
} as const;

/**
 * The variables that point the bot's configuration at the loopback servers and a database file: what
 * every test that starts the bot (in this process or as `npm start`) sets. Without `discord`, enough for
 * the engine alone (the terminal chat). The router is off unless a test sets ROUTER.
 */
export function loopbackEnvironment(servers: {
  discord?: { token: string; apiUrl: string };
  openai: { url: string };
  anthropic: { url: string };
  /** A database file, or a temporary database of either backend (its variables). */
  databasePath?: string;
  database?: { environment: Record<string, string> };
}): Record<string, string> {
  return {
    ...(servers.discord
      ? { DISCORD_TOKEN: servers.discord.token, DISCORD_API_URL: servers.discord.apiUrl }
      : {}),
    ...TEST_KEYS,
    OPENAI_BASE_URL: servers.openai.url,
    ANTHROPIC_BASE_URL: servers.anthropic.url,
    ...(servers.database?.environment ?? { DATABASE_PATH: servers.databasePath ?? './data/tierbot.db' }),
    // Today's cascade, call by call as most tests script it (draft, then check). The router's own tests
    // (test/core/router.test.ts, test/discord/router.test.ts) turn it on, with a fake per kind of call.
    ROUTER: 'off',
  };
}
