import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/*
 * Simulated hosts for the tests of several machines on one PostgreSQL database. A host is a PID namespace
 * (`unshare --pid --fork --mount-proc`, util-linux) kept open by a sleeping init, and a worker runs on it
 * under `nsenter --target <that init> --pid --mount`: it sees only its host's processes, its PIDs may be
 * the very numbers another host's processes have, and tierbot's host key (hostname and PID namespace,
 * src/db/leases.ts thisHost()) tells the hosts apart. Where namespaces cannot be made (not root, no
 * util-linux), every "host" is this machine and the workers are separate processes with distinct
 * instance ids; HOST_ISOLATION says which, for the tests to say in their titles.
 */

export type HostIsolation = 'PID namespaces' | 'separate processes only (no PID namespaces here)';

export const HOST_ISOLATION: HostIsolation = canMakePidNamespaces()
  ? 'PID namespaces'
  : 'separate processes only (no PID namespaces here)';

export interface SimulatedHost {
  name: string;
  /** Prefix for a worker's command line that runs it on this host (see WorkerSpec.launcher). */
  launcher(cwd: string): string[];
}

export interface SimulatedHosts {
  hosts: SimulatedHost[];
  /** Ends every process of every host. */
  close(): Promise<void>;
}

/** How long a new namespace's init has to appear (it is a fork of `unshare`, milliseconds away). */
const INIT_TIMEOUT_MS = 5_000;

export async function startSimulatedHosts(count: number): Promise<SimulatedHosts> {
  if (HOST_ISOLATION !== 'PID namespaces') {
    return {
      hosts: Array.from({ length: count }, (_, index) => ({ name: `host-${index + 1}`, launcher: () => [] })),
      close: async () => {},
    };
  }
  const started: { unshare: ChildProcess; initPid: number }[] = [];
  try {
    for (let index = 0; index < count; index += 1) started.push(await startNamespace());
  } catch (error) {
    await Promise.all(started.map(stopNamespace));
    throw error;
  }
  return {
    hosts: started.map(({ initPid }, index) => ({
      name: `host-${index + 1}`,
      launcher: (cwd) => ['nsenter', `--target=${initPid}`, '--pid', '--mount', `--wd=${cwd}`, '--'],
    })),
    close: async () => {
      await Promise.all(started.map(stopNamespace));
    },
  };
}

function canMakePidNamespaces(): boolean {
  if (process.platform !== 'linux') return false;
  const probe = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
  const nsenter = spawnSync('nsenter', ['--version'], { stdio: 'ignore' });
  return probe.status === 0 && nsenter.status === 0;
}

async function startNamespace(): Promise<{ unshare: ChildProcess; initPid: number }> {
  const unshare = spawn('unshare', ['--pid', '--fork', '--mount-proc', 'sleep', 'infinity'], {
    stdio: 'ignore',
  });
  const pid = unshare.pid;
  if (pid === undefined) throw new Error('could not start unshare');
  const deadline = Date.now() + INIT_TIMEOUT_MS;
  for (;;) {
    const [child] = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
    // The init is ready once it runs `sleep`: unshare's fork mounts the namespace's /proc before it execs.
    if (child && readFileSync(`/proc/${child}/cmdline`, 'utf8').startsWith('sleep')) {
      return { unshare, initPid: Number(child) };
    }
    if (Date.now() > deadline) {
      unshare.kill('SIGKILL');
      throw new Error('the PID namespace of a simulated host did not start');
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** SIGKILL to a namespace's init ends every process in it (an init ignores SIGTERM from outside). */
async function stopNamespace({ unshare, initPid }: { unshare: ChildProcess; initPid: number }) {
  const exited = new Promise((resolve) => unshare.once('close', resolve));
  try {
    process.kill(initPid, 'SIGKILL');
  } catch {
    // Already gone.
  }
  if (unshare.exitCode === null && unshare.signalCode === null) await exited;
}
