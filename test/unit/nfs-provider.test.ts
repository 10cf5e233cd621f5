/**
 * The provider's ganesha configuration and command lines (fs/provider.ts),
 * and the client-list resolution of `storage serve` (fs/provider-clients.ts).
 */
import { describe, it, expect } from '@jest/globals';
import { checkClient, ganeshaConfig, launchCommand, MAX_IO } from '../../fs/provider.js';
import {
  followClients,
  parseClientSpec,
  resolveClients,
  type NodeContext,
} from '../../fs/provider-clients.js';

const base = {
  exportDir: '/srv/bigdisk1',
  stateDir: '/var/lib/supernet/storage/bigdisk1',
  clients: ['10.71.17.2', '10.71.17.3'],
  nfsPort: 2049,
  mountPort: 20048,
  exportPath: '/export',
  anonUid: 1001,
  anonGid: 1002,
};

describe('ganesha configuration', () => {
  it('exports one folder, NFSv3/TCP only, to the listed clients only, squashed to its owner', () => {
    const c = ganeshaConfig({ ...base, listen: '10.71.17.4' });
    for (const line of [
      'Protocols = 3;',
      'NFS_Port = 2049;',
      'MNT_Port = 20048;',
      'Enable_NLM = false;',
      'Enable_RQUOTA = false;',
      'Enable_UDP = false;',
      'Mount_Path_Pseudo = true;',
      'Bind_addr = 10.71.17.4;',
      'Graceless = true;',
      'RecoveryBackend = fs;',
      'RecoveryRoot = /var/lib/supernet/storage/bigdisk1/recovery;',
      'Path = /srv/bigdisk1;',
      'Pseudo = /export;',
      'Transports = TCP;',
      'SecType = sys;',
      'Squash = All_Squash;',
      'Anonymous_Uid = 1001;',
      'Anonymous_Gid = 1002;',
      `MaxWrite = ${MAX_IO};`,
      'Clients = 10.71.17.2, 10.71.17.3;',
      'Name = VFS;',
    ])
      expect(c).toContain(line);
    // Nobody outside the CLIENT block: the export's own access type is None.
    const exportBlock = c.slice(c.indexOf('EXPORT {'));
    expect(exportBlock.indexOf('Access_Type = None;')).toBeLessThan(
      exportBlock.indexOf('CLIENT {'),
    );
    expect(exportBlock.slice(exportBlock.indexOf('CLIENT {'))).toContain('Access_Type = RW;');
    expect(ganeshaConfig(base)).not.toContain('Bind_addr');
  });

  it('with no clients, the export admits nobody', () => {
    const c = ganeshaConfig({ ...base, clients: [] });
    const exportBlock = c.slice(c.indexOf('EXPORT {'));
    expect(exportBlock).not.toContain('CLIENT {');
    expect(exportBlock).not.toContain('Access_Type = RW');
    expect(exportBlock).toContain('Access_Type = None;');
  });

  it('refuses input that would admit everybody or inject configuration', () => {
    expect(() => ganeshaConfig({ ...base, clients: ['0.0.0.0'] })).toThrow(/everybody/);
    expect(() => ganeshaConfig({ ...base, clients: ['10.0.0.0/0'] })).toThrow(/everybody/);
    expect(() => ganeshaConfig({ ...base, clients: ['*'] })).toThrow(/not an IPv4/);
    expect(() => ganeshaConfig({ ...base, clients: ['10.1.1.1; }'] })).toThrow(/not an IPv4/);
    expect(() => ganeshaConfig({ ...base, clients: ['10.1.1.1/33'] })).toThrow(/prefix length/);
    expect(() => ganeshaConfig({ ...base, clients: ['256.1.1.1'] })).toThrow(/not an IPv4/);
    expect(() => ganeshaConfig({ ...base, exportDir: '/srv/a; }' })).toThrow(/export folder/);
    expect(() => ganeshaConfig({ ...base, exportDir: 'relative' })).toThrow(/absolute/);
    expect(() => ganeshaConfig({ ...base, exportPath: '/' })).toThrow(/must not be \//);
    expect(() => ganeshaConfig({ ...base, nfsPort: 0 })).toThrow(/NFS port/);
    expect(() => ganeshaConfig({ ...base, listen: 'bigdisk1' })).toThrow(/listen address/);
    expect(checkClient('10.71.17.0/24')).toBe('10.71.17.0/24');
  });

  it('enters the node namespace, then a private mount namespace', () => {
    expect(launchCommand('sn-h3-bigdisk1', ['node', 'cli.js'])).toEqual([
      'nsenter',
      '--net=/run/netns/sn-h3-bigdisk1',
      '--',
      'unshare',
      '--mount',
      '--propagation',
      'private',
      '--',
      'node',
      'cli.js',
    ]);
    expect(launchCommand(null, ['x'])[0]).toBe('unshare');
  });
});

describe('storage serve --clients', () => {
  const node: NodeContext = {
    name: 'bigdisk1',
    supernet: '0x4711',
    ns: 'ns',
    vip: '10.71.17.4',
    channels: [0x123],
    peers: new Map([
      ['a1', { vip: '10.71.17.2', channels: [0x01, 0x123] }],
      ['c1', { vip: '10.71.17.3', channels: [0x01, 0x123] }],
      ['x1', { vip: '10.71.17.9', channels: [0x01] }],
    ]),
  };
  it('resolves peer names to their virtual addresses and keeps addresses', () => {
    const spec = parseClientSpec('c1, a1,10.9.9.9', true);
    expect(resolveClients(spec, node, true)).toEqual(['10.71.17.2', '10.71.17.3', '10.9.9.9']);
  });
  it('channel:ID admits the peers that share the channel, not the others', () => {
    const spec = parseClientSpec('channel:0x123', true);
    expect(spec.channels).toEqual([0x123]);
    expect(resolveClients(spec, node, true)).toEqual(['10.71.17.2', '10.71.17.3']);
    const alone = { ...node, peers: new Map([...node.peers].filter(([n]) => n === 'x1')) };
    expect(resolveClients(spec, alone, true)).toEqual([]);
  });
  it('names what it cannot resolve', () => {
    expect(() => resolveClients(parseClientSpec('a1,mallory', true), node, true)).toThrow(
      /mallory is not a peer of bigdisk1/,
    );
    expect(() => resolveClients(parseClientSpec('channel:0x01', true), node, true)).toThrow(
      /bigdisk1 is not in channel 0x01/,
    );
    expect(() => parseClientSpec('a1', false)).toThrow(/need --node/);
    expect(() => parseClientSpec('channel:0x123', false)).toThrow(/need --node/);
    expect(() => parseClientSpec('channel:zz', true)).toThrow(/channel id/);
    expect(() => parseClientSpec('a b', true)).toThrow(/not an address, node name or channel/);
    expect(() => parseClientSpec('0.0.0.0', true)).toThrow(/everybody/);
    expect(() => parseClientSpec(' , ', true)).toThrow(/names nobody/);
  });
  it('while following, a peer that left is dropped, not an error', () => {
    const gone = { ...node, peers: new Map([...node.peers].filter(([n]) => n !== 'c1')) };
    expect(resolveClients(parseClientSpec('a1,c1', true), gone, false)).toEqual(['10.71.17.2']);
  });
  it('follows membership changes and keeps the last list while the agent is unreachable', async () => {
    const views: Array<NodeContext | Error> = [
      node,
      new Error('agent restarting'),
      { ...node, peers: new Map([...node.peers].filter(([n]) => n !== 'c1')) },
      new Error('agent restarting'),
    ];
    const changes: string[][] = [];
    const warnings: string[] = [];
    let calls = 0;
    const done = new Promise<void>((res) => {
      const stop = followClients(
        parseClientSpec('channel:0x123', true),
        ['10.71.17.2'],
        async () => {
          const v = views[Math.min(calls++, views.length - 1)]!;
          if (calls >= views.length + 1) {
            stop();
            res();
          }
          if (v instanceof Error) throw v;
          return v;
        },
        (l) => changes.push(l),
        (w) => warnings.push(w),
        5,
      );
    });
    await done;
    // The first view adds c1; the outage keeps it; the next view drops it.
    expect(changes).toEqual([['10.71.17.2', '10.71.17.3'], ['10.71.17.2']]);
    expect(warnings.filter((w) => w.includes('keeping the last client list')).length).toBe(2);
    expect(warnings.filter((w) => w.includes('answers again')).length).toBe(1);
  });
});
