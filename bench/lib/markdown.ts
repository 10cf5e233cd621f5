/**
 * docs/benchmarks.md is shared: each benchmark owns one `## ` section and
 * replaces only that, leaving the header and the other sections as they are.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';

/** What a new docs/benchmarks.md starts with. */
export const BENCHMARKS_HEADER =
  '# Benchmarks\n\n' +
  'Results of `bin/dev bench` (`node dist/bench/run.js`), one section per benchmark, each with the ' +
  'exact command that produced it, the date and the machine. Numbers from different machines or ' +
  'different days are not comparable; ratios measured in the same run are.\n';

/**
 * Returns `doc` with the section headed `heading` (e.g. '## Network')
 * replaced by `section` (which must start with that heading), or with
 * `section` appended when there is none. A section runs from its heading to
 * the next line starting with '## ', or to the end.
 */
export function replaceSection(doc: string, heading: string, section: string): string {
  if (!/^## \S/.test(heading) || heading.includes('\n'))
    throw new Error(`not a level-2 heading: ${JSON.stringify(heading)}`);
  if (!section.startsWith(heading + '\n'))
    throw new Error(`section must start with its heading ${JSON.stringify(heading)}`);
  const body = section.trimEnd() + '\n';
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.trimEnd() === heading);
  if (start < 0) return doc.trimEnd() + '\n\n' + body;
  let end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  if (end < 0) end = lines.length;
  const before = lines.slice(0, start).join('\n');
  const after = lines.slice(end).join('\n');
  return (
    (before ? before.trimEnd() + '\n\n' : '') +
    body +
    (after.trim() ? '\n' + after.trimEnd() + '\n' : '')
  );
}

/** Replaces (or appends) one section of the Markdown file `file`, creating it with a header if missing. */
export async function writeSection(file: string, heading: string, section: string): Promise<void> {
  let doc: string;
  try {
    doc = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    doc = BENCHMARKS_HEADER;
  }
  const next = replaceSection(doc, heading, section);
  // Write-then-rename: a reader (or a crash) never sees half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, next);
  await rename(tmp, file);
}

/** A Markdown table; `align` per column: 'l' or 'r'. */
export function table(header: string[], rows: string[][], align: ('l' | 'r')[] = []): string {
  const sep = header.map((_, i) => (align[i] === 'r' ? '---:' : '---'));
  return [header, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}
