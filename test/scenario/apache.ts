/**
 * A stock Apache (Debian's apache2, unmodified) serving static pages from a
 * folder, configured by one file of its own: what the Figure 6 tests and
 * `bin/dev demo` start inside node c1 with `supernet exec` (paper §5: stock
 * applications run unmodified in a node). Only the modules a static page
 * needs are loaded, and the pid file, runtime folder and logs live under the
 * caller's folder, so nothing of the host's Apache set-up is used or touched.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where {@link writeApacheSite} put things. */
export interface ApacheSite {
  /** the configuration file (`apache2 -f CONF`) */
  conf: string;
  docRoot: string;
  /** error.log lives here */
  logDir: string;
}

/** What {@link writeApacheSite} serves. */
export interface ApacheSiteOptions {
  /** the address to listen on, port 80 (a node's virtual address) */
  listen: string;
  /** file name (in the document root) → content */
  pages: Record<string, string>;
  /** omitted: Apache takes the name from uname(2) and resolves it */
  serverName?: string;
}

/**
 * Writes the site under `base` (www/, apache-run/, apache-log/,
 * apache.conf) and makes `base` readable to www-data, the user Apache's
 * workers run as.
 */
export function writeApacheSite(base: string, o: ApacheSiteOptions): ApacheSite {
  const docRoot = join(base, 'www');
  const run = join(base, 'apache-run');
  const logDir = join(base, 'apache-log');
  for (const d of [docRoot, run, logDir]) mkdirSync(d, { recursive: true });
  for (const [name, text] of Object.entries(o.pages)) writeFileSync(join(docRoot, name), text);
  const conf = join(base, 'apache.conf');
  const mod = (name: string): string =>
    `LoadModule ${name}_module /usr/lib/apache2/modules/mod_${name}.so`;
  writeFileSync(
    conf,
    [
      'ServerRoot /etc/apache2',
      ...(o.serverName ? [`ServerName ${o.serverName}`] : []),
      `Listen ${o.listen}:80`,
      `PidFile ${run}/httpd.pid`,
      `DefaultRuntimeDir ${run}`,
      `Mutex file:${run}`,
      `ErrorLog ${logDir}/error.log`,
      mod('mpm_event'),
      mod('authz_core'),
      mod('dir'),
      mod('mime'),
      'TypesConfig /dev/null',
      'AddType text/html .html',
      'User www-data',
      'Group www-data',
      `DocumentRoot ${docRoot}`,
      `<Directory ${docRoot}>`,
      '  Require all granted',
      '</Directory>',
      '',
    ].join('\n'),
  );
  execFileSync('chmod', ['-R', 'a+rX', base]);
  return { conf, docRoot, logDir };
}

/** The command line that starts or stops the site's Apache (run it inside the node). */
export function apacheCommand(site: ApacheSite, action: 'start' | 'stop'): string[] {
  return ['apache2', '-f', site.conf, '-k', action];
}
