/**
 * Acceptance 6: volumes written by earlier versions keep mounting. Each
 * folder under test/fixtures/fs is a frozen volume; a copy of it is mounted
 * and must show exactly its manifest, and pass `fs check`.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { cp, mkdir, readFile, readdir } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { makeBed, unmount, DIST, type Bed } from './fs-kit.js';

const execp = promisify(execFile);
const FIXTURES = resolve(DIST, '..', 'test/fixtures/fs');
let bed: Bed;
beforeAll(async () => {
  bed = await makeBed('fixture');
});
afterAll(async () => {
  await bed.cleanup();
});

const MANIFEST = `find . -mindepth 1 | sort | while read p; do
  if [ -L "$p" ]; then echo "$p link $(readlink "$p")";
  elif [ -d "$p" ]; then echo "$p dir $(stat -c %a "$p")";
  else echo "$p file $(stat -c '%a %s %Y' "$p") $(sha256sum < "$p" | cut -c1-64)"; fi; done`;

describe('fs: frozen fixtures keep mounting', () => {
  it('mounts every fixture version and shows its manifest', async () => {
    const versions = (await readdir(FIXTURES, { withFileTypes: true }))
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
    expect(versions).toContain('v1');
    for (const v of versions) {
      const src = join(FIXTURES, v);
      const work = join(bed.dir, v);
      await cp(src, work, { recursive: true });
      const vid = JSON.parse(await readFile(join(work, 'anchor.json'), 'utf8')).volume as string;
      await mkdir(join(bed.env.SUPERNET_FS_STATE!, vid), { recursive: true });
      await cp(join(work, 'anchor.json'), join(bed.env.SUPERNET_FS_STATE!, vid, 'anchor.json'));
      const chk = await bed.cli([
        'fs',
        'check',
        join(work, 'backing'),
        '--key',
        join(work, 'key.json'),
      ]);
      expect({ v, code: chk.code, out: chk.stdout }).toEqual({
        v,
        code: 0,
        out: expect.stringContaining('volume is consistent'),
      });
      const mnt = join(work, 'mnt');
      const child = await bed.mount(join(work, 'backing'), mnt, join(work, 'key.json'));
      const got = await execp('sh', ['-c', MANIFEST], { cwd: mnt });
      expect(got.stdout).toBe(await readFile(join(work, 'manifest.txt'), 'utf8'));
      await unmount(bed, mnt, child);
    }
  });
});
