/**
 * Bare namespaces for tests that need the kernel but not the test bed's
 * hosts and agents (the TUN tests: a device moved into a namespace and
 * configured there). Names carry a random per-run prefix; every namespace
 * made is deleted by {@link ScratchNamespaces.cleanup}, and by a process
 * 'exit' hook if a test fails before its afterAll runs.
 */
import { randomBytes } from 'node:crypto';
import { addNamespace, deleteNamespace, deleteNamespaceSync } from './netns.js';
import { runArgv } from './proc.js';

/** `ip ARGS…`; throws with ip's stderr if it fails. */
export async function ip(...args: string[]): Promise<void> {
  await runArgv(['ip', ...args]);
}

/** The namespaces (and, by their prefix, the device names) of one test file. */
export class ScratchNamespaces {
  /** `sn<tag><4 hex>`: short enough to leave room for a device-name suffix (IFNAMSIZ 16). */
  readonly prefix: string;
  private readonly made = new Set<string>();
  private readonly onExit = (): void => this.cleanup();

  /** @param tag one letter naming the test file, so its leftovers are recognisable */
  constructor(tag: string) {
    this.prefix = `sn${tag}${randomBytes(2).toString('hex')}`;
    process.on('exit', this.onExit);
  }

  /** Creates namespace `name`, which must start with {@link prefix}. */
  async add(name: string): Promise<void> {
    if (!name.startsWith(this.prefix))
      throw new Error(`namespace ${name} lacks this run's prefix ${this.prefix}`);
    await addNamespace(name);
    this.made.add(name);
  }

  /** Deletes one namespace this object made (the test wants it gone now). */
  async delete(name: string): Promise<void> {
    await deleteNamespace(name);
    this.made.delete(name);
  }

  /** Deletes every namespace still standing; safe to call more than once. */
  cleanup(): void {
    for (const name of this.made) deleteNamespaceSync(name);
    this.made.clear();
  }
}
