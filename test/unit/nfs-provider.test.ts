/**
 * The provider's ganesha configuration and command lines (fs/provider.ts),
 * and the client-list resolution of `storage serve` (fs/cli-storage.ts).
 */
import { describe, it, expect } from '@jest/globals';
import { checkClient, ganeshaConfig, launchCommand, MAX_IO } from '../../fs/provider.js';
import { resolveClients, type NodeContext } from '../../fs/cli-storage.js';

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

  it('refuses input that would admit everybody or inject configuration', () => {
    expect(() => ganeshaConfig({ ...base, clients: [] })).toThrow(/at least one client/);
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
    peers: new Map([
      ['a1', '10.71.17.2'],
      ['c1', '10.71.17.3'],
    ]),
  };
  it('resolves peer names to their virtual addresses and keeps addresses', () => {
    expect(resolveClients('a1, c1,10.9.9.9', node)).toEqual([
      '10.71.17.2',
      '10.71.17.3',
      '10.9.9.9',
    ]);
  });
  it('names what it cannot resolve', () => {
    expect(() => resolveClients('a1,mallory', node)).toThrow(/mallory is not a peer of bigdisk1/);
    expect(() => resolveClients('a1', null)).toThrow(/need --node/);
    expect(() => resolveClients(' , ', node)).toThrow(/names nobody/);
  });
});
