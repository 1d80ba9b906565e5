import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { MetricsConfig } from '../config.js';
import type { Health } from '../core/ports.js';
import { redactSecrets } from '../log.js';

/** A readiness check that has not answered in this long counts as failed: a probe must not hang. */
export const READINESS_TIMEOUT_MS = 2_000;

/** What /readyz asks, each part saying why it cannot do its job. */
export interface ReadinessChecks {
  /** Discord's gateway: undefined while the bot is still logging in. */
  gateway(): Health | undefined;
  /** The database answers and this process's lease is fresh. */
  storage(): Promise<Health>;
}

export interface OperationsServer {
  /** Where it listens, e.g. http://127.0.0.1:9464 (the port the system chose, for METRICS_PORT=0). */
  readonly url: string;
  close(): Promise<void>;
}

/** The server could not listen (the port is taken, the address is not this host's): one line says so. */
export class MetricsListenError extends Error {
  override readonly name = 'MetricsListenError';
}

/**
 * The operator's endpoints on METRICS_HOST:METRICS_PORT: `/metrics` (Prometheus's text format),
 * `/healthz` (the process answers: its event loop runs) and `/readyz` (it can do its job: connected to
 * Discord's gateway, the database answering, its lease fresh; 503 with the reasons otherwise).
 */
export async function startOperationsServer(
  config: MetricsConfig,
  parts: { registry: Registry; readiness: ReadinessChecks; onError(error: unknown): void },
): Promise<OperationsServer> {
  const server = createServer((request, response) => {
    handle(request, response, parts).catch((error: unknown) => {
      parts.onError(error);
      if (!response.headersSent) respond(response, 500, 'the metrics could not be read\n');
      else response.destroy();
    });
  });
  // Probes and scrapes are small and frequent: no request should hold a socket for long.
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new MetricsListenError(
          `METRICS_PORT: cannot listen on ${config.host}:${config.port} (${error.code ?? error.message}); ` +
            'choose a free port, or leave METRICS_PORT unset to run without metrics',
        ),
      ),
    );
    server.listen(config.port, config.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(
  request: IncomingMessage,
  response: ServerResponse,
  parts: { registry: Registry; readiness: ReadinessChecks },
): Promise<void> {
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD');
    respond(response, 405, 'only GET\n');
    return;
  }
  switch (path) {
    case '/metrics': {
      const body = await parts.registry.metrics();
      respond(response, 200, body, parts.registry.contentType);
      return;
    }
    case '/healthz':
      respond(response, 200, 'alive\n');
      return;
    case '/readyz': {
      const health = await checkReadiness(parts.readiness);
      if (health.ok) respond(response, 200, 'ready\n');
      else respond(response, 503, `not ready: ${health.reason}\n`);
      return;
    }
    default:
      respond(response, 404, 'not found: try /metrics, /healthz or /readyz\n');
  }
}

/** Every part at once; not ready names each part that is not, in one line. */
export async function checkReadiness(
  checks: ReadinessChecks,
  timeoutMs = READINESS_TIMEOUT_MS,
): Promise<Health> {
  const gateway = checks.gateway() ?? {
    ok: false,
    reason: 'the Discord gateway is not connected yet (logging in)',
  };
  const storage = await withTimeout(checks.storage(), timeoutMs);
  const reasons = [gateway, storage].flatMap((health) => (health.ok ? [] : [health.reason]));
  // A driver's message could carry a secret-shaped string: scrubbed as every log line is.
  return reasons.length === 0 ? { ok: true } : { ok: false, reason: redactSecrets(reasons.join('; ')) };
}

async function withTimeout(check: Promise<Health>, timeoutMs: number): Promise<Health> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Health>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, reason: `the database did not answer within ${timeoutMs / 1_000} s` }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([
      check.catch((error: unknown) => ({
        ok: false as const,
        reason: `the database check failed (${(error as Error).message})`,
      })),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function respond(response: ServerResponse, status: number, body: string, contentType = 'text/plain'): void {
  response.writeHead(status, {
    'content-type': contentType.includes('charset') ? contentType : `${contentType}; charset=utf-8`,
    'cache-control': 'no-store',
  });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}
