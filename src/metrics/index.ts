import type { MetricsConfig } from '../config.js';
import type { Health, Storage } from '../core/ports.js';
import { PrometheusTelemetry, type ScrapeSources } from './prometheus.js';
import { type OperationsServer, startOperationsServer } from './server.js';

export { MetricsListenError } from './server.js';

/** What the endpoints read, from the parts of a running bot. */
export interface WatchedParts extends ScrapeSources {
  storage: Pick<Storage, 'health'>;
  /** Discord's gateway: undefined until the bot has logged in. */
  gateway(): Health | undefined;
  /** Errors while serving a scrape (logged; the scraper gets a 500). */
  onError(error: unknown): void;
}

/**
 * The operator's metrics and health endpoints (METRICS_PORT): the telemetry the app and the bot report to
 * from the start, and the HTTP server, started once the database is open (before Discord, so that
 * /readyz says "not connected yet" while the bot logs in).
 */
export class Metrics {
  readonly telemetry: PrometheusTelemetry;
  #server: OperationsServer | undefined;

  constructor(
    private readonly config: MetricsConfig,
    now?: () => number,
  ) {
    this.telemetry = new PrometheusTelemetry(now);
  }

  /** Where the endpoints are, once started (e.g. http://127.0.0.1:9464). */
  get url(): string | undefined {
    return this.#server?.url;
  }

  async start(parts: WatchedParts): Promise<string> {
    this.telemetry.watch(parts);
    this.#server = await startOperationsServer(this.config, {
      registry: this.telemetry.registry,
      readiness: { gateway: () => parts.gateway(), storage: () => parts.storage.health() },
      onError: (error) => parts.onError(error),
    });
    return this.#server.url;
  }

  async close(): Promise<void> {
    await this.#server?.close();
    this.#server = undefined;
  }
}
