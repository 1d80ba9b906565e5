/**
 * How tierbot's processes end when they cannot do their job, one code per reason an operator must act on,
 * so that a supervisor can tell them apart (systemd: `RestartPreventExitStatus=64 77 78 79` stops a restart
 * loop that cannot succeed). sysexits(3) codes where one fits. The README's table lists the same.
 */
export const EXIT_CODES = {
  /** EX_USAGE: an unknown command-line flag or argument. */
  usage: 64,
  /** EX_UNAVAILABLE: Discord could not be reached (connection refused, no such host). */
  discordUnreachable: 69,
  /** EX_NOPERM: Discord refused the bot token. */
  tokenRefused: 77,
  /** EX_CONFIG: the configuration is missing or invalid; restarting will not help. */
  configuration: 78,
  /** tierbot's own: the Message Content intent is not enabled for the application. */
  intentsDisallowed: 79,
} as const;
