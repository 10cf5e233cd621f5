/** bench/lib/markdown.ts: each benchmark replaces only its own section of docs/benchmarks.md. */
import { describe, it, expect } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BENCHMARKS_HEADER,
  replaceSection,
  table,
  writeSection,
} from '../../bench/lib/markdown.js';

const DOC =
  '# Benchmarks\n\nintro\n\n## Filesystem\n\nfs table\n\n## Network\n\nold net\n\n### detail\n\nmore old\n\n## Group keys\n\nkeys\n';

describe('benchmark docs sections', () => {
  it('replaces only its own section, up to the next level-2 heading', () => {
    const out = replaceSection(DOC, '## Network', '## Network\n\nnew net\n');
    expect(out).toBe(
      '# Benchmarks\n\nintro\n\n## Filesystem\n\nfs table\n\n## Network\n\nnew net\n\n## Group keys\n\nkeys\n',
    );
  });

  it('appends a missing section and keeps a last section last', () => {
    expect(replaceSection('# B\n', '## Network', '## Network\n\nx')).toBe(
      '# B\n\n## Network\n\nx\n',
    );
    const last = replaceSection(DOC, '## Group keys', '## Group keys\n\nnew keys\n');
    expect(last.endsWith('## Group keys\n\nnew keys\n')).toBe(true);
    expect(last).toContain('## Network\n\nold net');
  });

  it('does not mistake a longer heading for its own', () => {
    const doc = '# B\n\n## Networking notes\n\nkeep\n';
    expect(replaceSection(doc, '## Network', '## Network\n\nx\n')).toBe(
      '# B\n\n## Networking notes\n\nkeep\n\n## Network\n\nx\n',
    );
  });

  it('rejects a section that does not start with its heading, and non-level-2 headings', () => {
    expect(() => replaceSection(DOC, '## Network', 'no heading')).toThrow(
      /must start with its heading/,
    );
    expect(() => replaceSection(DOC, '# Network', '# Network\n')).toThrow(/not a level-2 heading/);
  });

  it('creates the file with the header when missing, then rewrites in place', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bench-md-'));
    try {
      const file = join(dir, 'benchmarks.md');
      await writeSection(file, '## Network', '## Network\n\none\n');
      expect(await readFile(file, 'utf8')).toBe(BENCHMARKS_HEADER + '\n## Network\n\none\n');
      await writeFile(file, (await readFile(file, 'utf8')) + '\n## Filesystem\n\nfs\n');
      await writeSection(file, '## Network', '## Network\n\ntwo\n');
      expect(await readFile(file, 'utf8')).toBe(
        BENCHMARKS_HEADER + '\n## Network\n\ntwo\n\n## Filesystem\n\nfs\n',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('renders tables with alignment', () => {
    expect(table(['a', 'b'], [['1', '2']], ['l', 'r'])).toBe(
      '| a | b |\n| --- | ---: |\n| 1 | 2 |',
    );
  });
});
