import type { EscalationMode } from './escalation.js';

/** What a server's admins chose with /settings; a server that changed nothing has the defaults. */
export interface ServerSettings {
  escalationMode: EscalationMode;
  showFooter: boolean;
  alertsChannelId: string | null;
}

export const DEFAULT_SETTINGS: ServerSettings = {
  escalationMode: 'auto',
  showFooter: true,
  alertsChannelId: null,
};
