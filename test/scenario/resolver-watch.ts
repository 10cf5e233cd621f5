/**
 * Long-running programs inside a node that keep looking at what configfs
 * serves them, and the parser of what they print: the configfs restart tests
 * (issue 6, acceptance 5) start them before configfs goes away and read, from
 * their timestamped lines, when they lost their files, what they saw
 * meanwhile, and when they got them back. Each line is `<ms> <state> [why]`.
 */
import type { BedProcess } from '../bed/bed.js';

/**
 * A shell that reads /etc/resolv.conf every 20 ms. States: `ok` (the node's
 * file, naming `nameserver`), `placeholder` (configfs's fail-closed file,
 * nameserver 127.0.0.1), `other` (anything else, such as the host's file,
 * with its first nameserver line), `fail` (the read failed, with the error).
 */
export const fileWatch = (nameserver: string): string => `
while :; do
  t=$(date +%s%3N)
  if out=$(cat /etc/resolv.conf 2>&1); then
    case "$out" in *"nameserver ${nameserver}"*) echo "$t ok";; *"nameserver 127.0.0.1"*) echo "$t placeholder";; *) echo "$t other $(printf '%s' "$out" | grep -m1 '^nameserver' || echo no-nameserver-line)";; esac
  else
    echo "$t fail $out"
  fi
  sleep 0.02
done`;

/**
 * One long-lived glibc process (perl's getaddrinfo) that resolves `name`
 * every 20 ms through the hosts file, search domain and resolver. States:
 * `ok` (it got `vip`), `other <address>`, `fail <error>`.
 */
export const glibcWatch = (name: string, vip: string): string => `
use Socket qw(getaddrinfo getnameinfo NI_NUMERICHOST SOCK_STREAM);
use Time::HiRes qw(time sleep);
$| = 1;
while (1) {
  my ($err, @res) = getaddrinfo("${name}", "", { socktype => SOCK_STREAM });
  my $t = int(time() * 1000);
  if ($err) { print "$t fail $err\\n"; }
  else { my ($e, $h) = getnameinfo($res[0]{addr}, NI_NUMERICHOST); print "$t ", ($h eq "${vip}" ? "ok" : "other $h"), "\\n"; }
  sleep 0.02;
}`;

/** One line a watcher printed. */
export interface Sample {
  /** ms since the epoch, taken by the watcher */
  t: number;
  state: string;
  text: string;
}

/** Every complete line the watcher has printed so far. */
export function samples(p: BedProcess): Sample[] {
  return p
    .output()
    .split('\n')
    .map((l) => /^(\d+) (\w+)\s?(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ t: Number(m[1]), state: m[2]!, text: m[3]! }));
}
