/**
 * The README's first command, `bin/dev demo` (bin/demo.ts): it must show the
 * paper's Figure 6 working — a page fetched by curl in a1 from Apache in c1
 * through the Supernet, and a file stored by a1 on bigdisk1 over channel
 * 0x123 that the provider holds only as ciphertext — and leave nothing
 * behind (namespaces, FUSE mounts, processes).
 */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { listNamespaces } from '../bed/netns.js';

const execp = promisify(execFile);
const DEMO = fileURLToPath(new URL('../../bin/demo.js', import.meta.url));

describe('bin/dev demo', () => {
  it('shows the web page and the outsourced file come through, then removes everything', async () => {
    const r = await execp(process.execPath, [DEMO], { timeout: 180_000, maxBuffer: 1 << 24 });
    const out = r.stdout;
    expect(out).toMatch(/<h1>Hello from c1, inside Supernet 0x4711<\/h1>/);
    expect(out).toMatch(/^OK: the page came through the Supernet\.$/m);
    expect(out).toMatch(
      /^ {2}serving nfs:\/\/10\.71\.17\.\d+\/export .* to 10\.71\.17\.\d+,10\.71\.17\.\d+ /m,
    );
    expect(out).toMatch(/^ {2}stored by a1 on bigdisk1, encrypted before it left a1$/m);
    expect(out).toMatch(/no object holds the name or the text/);
    expect(out).toMatch(
      /^OK: a1 stored and read back a file on bigdisk1, which holds only ciphertext\.$/m,
    );
    // Nothing of the run is left: its namespaces and its mounts are gone.
    const prefix = /namespace (sn[a-z0-9]+)-h1/.exec(out)![1]!;
    expect(listNamespaces().filter((n) => n.startsWith(prefix))).toEqual([]);
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(`supernet-bed-${prefix}`);
  }, 200_000);
});
