import type { ModelConfig } from './config.js';
import { modelLabel } from './core/models.js';
import type { TurnDependencies } from './core/turn.js';
import { NO_TELEMETRY, type Storage, type Telemetry } from './core/ports.js';
import { meteredLedger } from './core/telemetry.js';
import { openStorage } from './db/storage.js';
import type { Logger } from './log.js';
import type { ModelGateway } from './providers/gateway.js';
import { createModelGateway } from './providers/index.js';

/** What the bot and the terminal chat run on: storage behind its ports, and the engine's dependencies. */
export interface App {
  storage: Storage;
  gateway: ModelGateway;
  /** Everything answerTurn() needs, wired to the real pieces. */
  engine: TurnDependencies;
  close(): Promise<void>;
}

/**
 * The pieces every entry point shares: storage (the database migrated once, this process's lease, the
 * reservations other processes left behind swept), the model gateway and the engine's dependencies. The
 * bot (src/main.ts) adds Discord; the terminal chat (src/chat.ts) adds stdin and stdout. With
 * `telemetry`, the gateway, the engine and the ledger report to the operator's metrics.
 */
export async function createApp(
  config: ModelConfig,
  log: Logger,
  telemetry: Telemetry = NO_TELEMETRY,
): Promise<App> {
  const storage = await openStorage({
    databaseUrl: config.databaseUrl,
    databasePath: config.databasePath,
    prices: config.prices,
    smartModel: config.smartModel,
    defaultUserBudget: config.defaultUserBudget,
    defaultServerCap: config.defaultServerCap,
    leaseMs: config.leaseMs,
    log,
  });
  // With metrics on, every reservation and charge is also counted for the operator.
  const gateway = createModelGateway(config, meteredLedger(storage.ledger, telemetry), telemetry);
  const engine: TurnDependencies = {
    models: gateway,
    fastModel: config.fastModel,
    smartModel: config.smartModel,
    modelLabel,
    systemPrompt: config.systemPrompt,
    maxOutputTokens: config.maxOutputTokens,
    policy: config.policy,
    budgetNotice: (member) => storage.notices.forUser(member),
    turns: storage.turns,
    telemetry,
  };
  return { storage, gateway, engine, close: () => storage.close() };
}
