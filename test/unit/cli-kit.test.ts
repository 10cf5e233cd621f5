import { describe, it, expect } from '@jest/globals';
import { CliError, EXIT, parseOptions, pickNode, type CliOptions } from '../../bin/cli-kit.js';

const OPTS: CliOptions = { node: { type: 'string' }, json: { type: 'boolean' } };
const USAGE = 'supernet thing ARG [--node NAME] [--json]';

function usageError(f: () => unknown): CliError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    return e as CliError;
  }
  throw new Error('expected a CliError');
}

describe('parseOptions (the net, fs storage and configfs commands)', () => {
  it('returns values and positionals', () => {
    const r = parseOptions(['x', '--node', 'a1', '--json'], OPTS, USAGE);
    expect(r.values).toEqual({ node: 'a1', json: true });
    expect(r.positionals).toEqual(['x']);
    expect(parseOptions(['--node=c1'], OPTS, USAGE).values.node).toBe('c1');
  });

  it('refuses an unknown option with exit 64, naming it and the usage line', () => {
    const e = usageError(() => parseOptions(['--nod', 'a1'], OPTS, USAGE));
    expect(e.code).toBe(EXIT.USAGE);
    expect(e.message).toMatch(/--nod\b/);
    expect(e.message).toContain(`usage: ${USAGE}`);
  });

  it('refuses a missing value and a value given to a flag', () => {
    expect(usageError(() => parseOptions(['--node'], OPTS, USAGE)).message).toMatch(/--node/);
    expect(usageError(() => parseOptions(['--json=yes'], OPTS, USAGE)).message).toMatch(/--json/);
  });

  it('refuses positionals when the command takes none', () => {
    expect(parseOptions(['--json'], OPTS, USAGE, false).positionals).toEqual([]);
    const e = usageError(() => parseOptions(['stray'], OPTS, USAGE, false));
    expect(e.code).toBe(EXIT.USAGE);
    expect(e.message).toMatch(/stray/);
  });
});

describe('pickNode (--node NAME [--supernet ID])', () => {
  const nodes = [
    { name: 'a1', supernet: '0x4711', vip: '10.71.17.2' },
    { name: 'c1', supernet: '0x4711', vip: '10.71.17.3' },
    { name: 'c1', supernet: '0x0815', vip: '10.8.15.2' },
  ];
  it('finds the one node the name (and Supernet) names', () => {
    expect(pickNode(nodes, 'a1', undefined).vip).toBe('10.71.17.2');
    expect(pickNode(nodes, 'c1', '0x0815').vip).toBe('10.8.15.2');
  });
  it('a missing node is a data error naming it; an ambiguous name asks for --supernet', () => {
    const none = usageError(() => pickNode(nodes, 'b1', '0x4711'));
    expect(none.code).toBe(EXIT.DATA);
    expect(none.message).toBe('no node b1 on this host in 0x4711');
    const two = usageError(() => pickNode(nodes, 'c1', undefined));
    expect(two.code).toBe(EXIT.USAGE);
    expect(two.message).toMatch(/several nodes named c1; add --supernet/);
  });
});
