import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { newId } from '../core/ids.js';
import type { LeaseHolder } from './ledger.js';
import type { InstanceRow, InstanceStore } from './store.js';

/**
 * How long a process's lease lasts unless renewed. Shorter: a dead host's reservations are charged and
 * freed sooner. Longer: a process paused this long (a GC pause, a VM migration, a partition) keeps its
 * reservations. Either way no money is lost or counted twice: a swept reservation is charged its worst
 * case, and a late settle of it changes nothing.
 */
export const DEFAULT_LEASE_MS = 30_000;
/** When this process started, to the millisecond: with its PID, it names the process on this host. */
const PROCESS_STARTED_AT = Math.round(performance.timeOrigin);
/** A lease is renewed this many times per period, so that one late renewal does not lose it. */
const RENEWALS_PER_LEASE = 3;

/**
 * This host: the hostname and, on Linux, the PID namespace, so that two containers (or `unshare --pid`
 * "hosts") on one machine are told apart. Processes on one host may check each other's PIDs.
 */
export function thisHost(): string {
  try {
    return `${hostname()}/${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    return hostname();
  }
}

/** Whether a process on this host is still running. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface LeaseOptions {
  ttlMs?: number;
  host?: string;
  pid?: number;
  /** Before a lapsed lease is renewed: write what waits (its reservations may have been swept meanwhile). */
  beforeRecovery: () => Promise<void>;
  onLapse?: () => void;
}

/**
 * This process's instance and its lease, renewed on the database's clock. Reservations belong to the
 * instance; when its lease expires, any process charges them at their worst case. A process that finds
 * its lease lapsed (it was paused, or cut off from the database) writes what it was waiting to write and
 * registers again before it reserves anything more.
 */
export class Lease implements LeaseHolder {
  readonly instanceId = newId();
  readonly host: string;
  readonly ttlMs: number;
  private isFresh = false;
  /** When the latest successful renewal was sent, by the monotonic clock. */
  private renewedAt = Number.NEGATIVE_INFINITY;
  private recovering: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly instances: InstanceStore,
    private readonly options: LeaseOptions,
  ) {
    this.host = options.host ?? thisHost();
    this.ttlMs = options.ttlMs ?? DEFAULT_LEASE_MS;
  }

  private get identity(): InstanceRow {
    return {
      id: this.instanceId,
      host: this.host,
      pid: this.options.pid ?? process.pid,
      processStartedAt: PROCESS_STARTED_AT,
    };
  }

  async start(): Promise<void> {
    const sentAt = performance.now();
    await this.instances.register(this.identity, this.ttlMs);
    this.renewedAt = sentAt;
    this.isFresh = true;
    this.timer = setInterval(
      () => void this.renew().catch(() => this.lapsed()),
      this.ttlMs / RENEWALS_PER_LEASE,
    );
    this.timer.unref();
  }

  async ready(): Promise<void> {
    if (this.isFresh) return;
    this.recovering ??= this.recover().finally(() => {
      this.recovering = undefined;
    });
    await this.recovering;
  }

  isSurelyFresh(): boolean {
    // The lease runs until the database's clock at renewal plus its length; this process's clock has run
    // at least as long since it sent that renewal. Half a lease of margin covers any drift between them.
    return this.isFresh && performance.now() - this.renewedAt < this.ttlMs / 2;
  }

  lapsed(): void {
    if (this.isFresh) this.options.onLapse?.();
    this.isFresh = false;
  }

  /** Whether the lease is fresh by the database's clock (for /readyz). */
  check(): Promise<boolean> {
    return this.instances.isFresh(this.instanceId);
  }

  /** Extends the lease; a lease found lapsed is recovered at once. */
  async renew(): Promise<void> {
    const sentAt = performance.now();
    if (this.isFresh && (await this.instances.renew(this.instanceId, this.ttlMs))) {
      this.renewedAt = sentAt;
      return;
    }
    this.lapsed();
    await this.ready();
  }

  /**
   * Other instances registered on this host whose process is gone: their reservations need no wait. One
   * with this process's PID but another start time was an earlier process (a container's bot is often
   * PID 1 on every start); one with this very process's PID and start time shares it (tests open several).
   */
  async deadOnThisHost(isAlive: (pid: number) => boolean = isProcessAlive): Promise<string[]> {
    const others = await this.instances.onHost(this.host);
    const ownPid = this.options.pid ?? process.pid;
    return others
      .filter(({ id, pid, processStartedAt }) => {
        if (id === this.instanceId) return false;
        if (pid === ownPid) return processStartedAt !== PROCESS_STARTED_AT;
        return !isAlive(pid);
      })
      .map(({ id }) => id);
  }

  /** Stops renewing and removes the instance (call once its reservations are closed). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.isFresh = false;
    await this.instances.remove(this.instanceId);
  }

  /** Stops renewing, leaving the instance to expire (as a crash would). */
  abandon(): void {
    clearInterval(this.timer);
  }

  private async recover(): Promise<void> {
    await this.options.beforeRecovery();
    const sentAt = performance.now();
    await this.instances.register(this.identity, this.ttlMs);
    this.renewedAt = sentAt;
    this.isFresh = true;
  }
}
