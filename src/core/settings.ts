import type { EscalationMode } from './escalation.js';

/** What a server's admins chose with /settings; a server that changed nothing has the defaults. */
export interface ServerSettings {
  escalationMode: EscalationMode;
  showFooter: boolean;
  alertsChannelId: string | null;
  /** A conversation a message starts in a text channel goes on in a thread the bot opens (opt-in). */
  answersInThreads: boolean;
}

export const DEFAULT_SETTINGS: ServerSettings = {
  escalationMode: 'auto',
  showFooter: true,
  alertsChannelId: null,
  answersInThreads: false,
};
