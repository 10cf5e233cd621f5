/**
 * `bin/dev demo`: the paper's Figure 6 on this one machine. Three simulated
 * physical hosts (network namespaces on a bridge), the admin service with
 * its lowdb file on h1, a host agent on each host, Supernet 0x4711 with
 * nodes a1 (h1), c1 (h2) and bigdisk1 (h3) on channels 0x01 and 0x123;
 * stock Apache inside c1, and curl inside a1 fetching its page through the
 * Supernet; then the paper's outsourced storage: bigdisk1 serves an NFS
 * export to channel 0x123 (`supernet storage serve`), a1 mounts an
 * encrypting volume from it with keys from the admin's storage key group,
 * writes a file, and the provider's folder is shown to hold only opaque
 * objects. Everything is removed at the end (or on Ctrl-C); `--keep` keeps
 * it up until Ctrl-C.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { volumeKeysDir } from '../fs/cli-storage.js';
import { TestBed } from '../test/bed/bed.js';
import { FIGURE6, SUPERNET_BIN, figure6, type SupernetBed } from '../test/scenario/supernet-bed.js';
import { apacheCommand, writeApacheSite } from '../test/scenario/apache.js';

const keep = process.argv.includes('--keep');
const say = (s: string): void => {
  process.stdout.write(s + '\n');
};

async function main(): Promise<number> {
  say('Supernet demo: the paper’s Figure 6 (Supernet 0x4711) on three simulated hosts');
  const bed = await TestBed.create({ hosts: ['h1', 'h2', 'h3'] });
  const stop = async (): Promise<void> => {
    say('removing the demo (namespaces, processes) ...');
    await bed.teardown();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    for (const h of bed.hosts) say(`  host ${h.name}: namespace ${h.ns}, underlay ${h.addr}`);
    say(
      'starting the admin service on h1, creating Supernet 0x4711, starting host agents, logging nodes in ...',
    );
    const { sn, nodes } = await figure6(bed);
    for (const spec of FIGURE6.nodes) {
      const n = nodes.get(spec.name)!;
      say(
        `  node ${n.name.padEnd(9)} on ${spec.host}: ${n.vip.padEnd(12)} channels ${n.channels.join(',')}`,
      );
    }
    const c1 = nodes.get('c1')!;
    const site = writeApacheSite(bed.dir, {
      listen: c1.vip,
      serverName: 'c1',
      pages: { 'index.html': '<h1>Hello from c1, inside Supernet 0x4711</h1>\n' },
    });
    say(`$ supernet exec c1 -- ${apacheCommand(site, 'start').join(' ')}`);
    await sn.exec('h2', 'c1', apacheCommand(site, 'start'));
    const p = await sn.exec('h1', 'a1', ['ping', '-n', '-c', '3', '-i', '0.2', c1.vip], {
      allowFail: true,
    });
    say(
      `$ supernet exec a1 -- ping -c 3 ${c1.vip}\n${p.stdout.trim().split('\n').slice(-2).join('\n')}`,
    );
    let page = await sn.exec('h1', 'a1', ['curl', '-sS', '--max-time', '5', `http://${c1.vip}/`], {
      allowFail: true,
    });
    for (let i = 0; i < 20 && page.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 250));
      page = await sn.exec('h1', 'a1', ['curl', '-sS', '--max-time', '5', `http://${c1.vip}/`], {
        allowFail: true,
      });
    }
    say(`$ supernet exec a1 -- curl http://${c1.vip}/`);
    say(`  ${page.stdout.trim() || page.stderr.trim()}`);
    const st = await sn.cli('h1', ['status', '--agent', sn.agentSocket('h1')]);
    say(`$ supernet status   (host agent on h1)\n${st.stdout}`);
    const ok = page.code === 0 && page.stdout.includes('Hello from c1');
    say(ok ? 'OK: the page came through the Supernet.' : 'FAILED: the page did not come through.');
    await sn.exec('h2', 'c1', apacheCommand(site, 'stop'), { allowFail: true });
    const stored = await storageDemo(bed, sn);
    say(
      stored
        ? 'OK: a1 stored and read back a file on bigdisk1, which holds only ciphertext.'
        : 'FAILED: outsourced storage did not work.',
    );
    if (keep) {
      say(
        `\nKept running. Try:\n  ${SUPERNET_BIN} status --agent ${sn.agentSocket('h2')}\n  ${SUPERNET_BIN} exec a1 --agent ${sn.agentSocket('h1')} -- ping ${c1.vip}\nCtrl-C removes everything.`,
      );
      await new Promise(() => undefined);
    }
    return ok && stored ? 0 : 1;
  } finally {
    if (!keep) await stop();
  }
}

/**
 * Figure 6's storage use: bigdisk1 exports a folder to channel 0x123, a1
 * mounts an encrypting volume from it over the channel and writes a file.
 */
async function storageDemo(bed: TestBed, sn: SupernetBed): Promise<boolean> {
  const exportDir = join(bed.dir, 'bigdisk1-export');
  mkdirSync(exportDir, { recursive: true });
  say(
    `\n$ supernet storage serve --node bigdisk1 --export ${exportDir} --clients channel:0x123   (on h3)`,
  );
  const { proc: provider, line } = await sn.serveStorage('h3', 'bigdisk1', {
    exportDir,
    clients: 'channel:0x123',
    state: join(bed.dir, 'bigdisk1-provider'),
    logFile: 'provider.log',
  });
  say(`  ${line}`);
  const fs = async (args: string[]): Promise<string> =>
    (
      await bed.run(bed.host('h1').ns, SUPERNET_BIN, args, { mounts: 'shared', timeoutMs: 120_000 })
    ).stdout.trim();
  const url = 'nfs://bigdisk1/export';
  const node = ['--node', 'a1', '--agent', sn.agentSocket('h1'), '--volume', 'vol1'];
  const state = ['--state', join(bed.dir, 'fs-state-a1')];
  const mnt = join(bed.dir, 'mnt-a1');
  mkdirSync(mnt, { recursive: true });
  let mounted = false;
  try {
    say('$ supernet storage-role grant 0x4711 vol1 a1');
    await sn.cli(null, ['storage-role', 'grant', '0x4711', 'vol1', 'a1']);
    say(`$ supernet fs init --node a1 --volume vol1 ${url}`);
    say((await fs(['fs', 'init', ...node, url, ...state])).replace(/^/gm, '  '));
    say(`$ supernet fs mount --node a1 --volume vol1 ${url} ${mnt}`);
    await fs(['fs', 'mount', ...node, url, mnt, ...state]);
    mounted = true;
    const file = join(mnt, 'plan.txt');
    const text = 'stored by a1 on bigdisk1, encrypted before it left a1';
    await sn.exec('h1', 'a1', ['sh', '-c', `echo '${text}' > ${file}`]);
    const back = (await sn.exec('h1', 'a1', ['cat', file])).stdout.trim();
    say(`$ supernet exec a1 -- cat ${file}\n  ${back}`);
    await fs(['fs', 'unmount', mnt]);
    mounted = false;
    const objects = readdirSync(join(exportDir, 'objects'));
    say(
      `$ ls ${exportDir}   (what bigdisk1's operator sees)\n  ${readdirSync(exportDir).join('  ')}\n  objects/: ${objects.length} entries, e.g. ${objects.slice(0, 3).join(', ')}`,
    );
    // Neither the file's name nor its content is in anything the provider stores.
    const leaked = readdirSync(exportDir, { recursive: true })
      .map((n) => join(exportDir, String(n)))
      .filter((f) => statSync(f).isFile())
      .some((f) => {
        const b = readFileSync(f);
        return b.includes(text) || b.includes('plan.txt');
      });
    say(
      leaked
        ? '  the plaintext IS visible to the provider'
        : '  (no object holds the name or the text)',
    );
    return back === text && !leaked;
  } finally {
    if (mounted) await bed.run(null, 'fusermount', ['-u', mnt], { allowFail: true });
    await provider.stop('SIGTERM', 10_000);
    rmSync(join(volumeKeysDir(), '0x4711-a1-vol1.json'), { force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
