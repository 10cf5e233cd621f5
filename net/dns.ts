/**
 * The Supernet resolver (paper §4.7; docs/dns.md): answers a node's DNS
 * queries from that node's {@link NameView}. It lives inside the host agent,
 * which hands it the UDP payload of every packet a node sends to its
 * resolver address, port 53, and writes the reply back to the node's TUN
 * (net/udp-packet.ts). There is no socket and no process per node.
 *
 * What it answers (docs/dns.md §Answers):
 * - `<node>.<domain>` A → the node's virtual address; AAAA and other types →
 *   NOERROR with no data; unknown names in the domain → NXDOMAIN. The
 *   domain apex has an SOA record, carried in every negative answer.
 * - PTR for addresses of the pool → the member's name; other pool addresses
 *   → NXDOMAIN.
 * - names under the Supernet suffix that are not this Supernet's domain
 *   (other Supernets) → NXDOMAIN, never forwarded.
 * - `localhost` (RFC 6761 §6.3) → 127.0.0.1; `invalid` → NXDOMAIN;
 *   reverse names of private and special ranges (RFC 6303) → NXDOMAIN.
 * - everything else per the view's external policy: REFUSED, or forwarded
 *   through a {@link DnsForwarder}.
 *
 * Malformed queries get FORMERR, or are dropped when no reply can be formed;
 * the input is checked (length, counts, question) before the dns-packet
 * library sees it, and the library's throws are caught. Nothing a query
 * contains can make `answer` throw.
 */
import dnsPacket from 'dns-packet';
import { formatIpv4, type Ipv4Prefix } from './ipv4.js';
import { SUPERNET_DNS_SUFFIX, domainLabels, endsWithLabels, reverseOctets } from './dns-names.js';
import {
  DNS_HEADER_LEN,
  EDNS_UDP_LIMIT,
  FLAG_AA,
  FLAG_CD,
  FLAG_QR,
  FLAG_RA,
  FLAG_RD,
  FLAG_TC,
  MAX_QUERY_LEN,
  OPCODE_MASK,
  OPCODE_QUERY,
  OPCODE_SHIFT,
  PLAIN_UDP_LIMIT,
  QCLASS_ANY,
  QCLASS_IN,
  QTYPE,
  RCODE,
  RCODE_MASK,
  readHeader,
  readQuestion,
  writeHeader,
  type DnsHeader,
  type RawQuestion,
} from './dns-wire.js';
import { indexView, type NameView, type ViewIndex } from './dns-view.js';
import type { Logger } from '../admin/logger.js';
import { systemClock, type Clock } from '../admin/clock.js';

export type { NameView, NameEntry, ExternalPolicy } from './dns-view.js';

/**
 * Sends a query on to an upstream resolver (docs/dns.md §Forwarding). Must
 * call `done` exactly once: with the upstream reply (any id; the resolver
 * restores the node's), or null when no usable reply came.
 */
export interface DnsForwarder {
  forward(
    query: Uint8Array,
    servers: readonly string[],
    done: (reply: Uint8Array | null) => void,
  ): void;
}

/** Counters, all monotonic. */
export interface ResolverStats {
  /** Every call of `answer`. */
  queries: number;
  /** NOERROR replies with at least one answer record. */
  answered: number;
  /** NOERROR replies without answer records (name exists, type does not). */
  nodata: number;
  nxdomain: number;
  refused: number;
  formerr: number;
  notimp: number;
  servfail: number;
  badvers: number;
  /** Replies sent with TC because they exceeded the client's size. */
  truncated: number;
  /** Inputs given no reply: shorter than a header, or a response (QR set). */
  dropped: number;
  /** Queries handed to the forwarder, and of them those that failed. */
  forwarded: number;
  forwardFailed: number;
}

export interface ResolverOptions {
  logger: Logger;
  clock?: Clock;
  /** TTL of positive answers, seconds (default 2: membership changes show within 2 s). */
  ttl?: number;
  /** TTL of negative answers (SOA minimum, RFC 2308), seconds (default 1). */
  negativeTtl?: number;
  /** The Supernet suffix that is never forwarded (default `sn.internal`; docs/dns.md §Names). */
  suffix?: string;
  /** Forwards external names when a view's policy says so. */
  forwarder?: DnsForwarder;
}

/** RFC 6303 §4 (and RFC 7793) locally served reverse ranges: answered NXDOMAIN, never forwarded. */
const LOCAL_REVERSE: readonly [number, number][] = [
  [0x00000000, 8],
  [0x0a000000, 8],
  [0x64400000, 10],
  [0x7f000000, 8],
  [0xa9fe0000, 16],
  [0xac100000, 12],
  [0xc0000200, 24],
  [0xc0a80000, 16],
  [0xc6336400, 24],
  [0xcb007100, 24],
  [0xffffffff, 32],
];

const IN_ADDR_ARPA = ['in-addr', 'arpa'];
const LOCALHOST = 'localhost';
const INVALID = 'invalid';
const LOOPBACK = '127.0.0.1';
const LDH_RE = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

function maskOf(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}
/** True if prefix (net,len) contains prefix (net2,len2). */
function covers(net: number, len: number, net2: number, len2: number): boolean {
  return len <= len2 && (net2 & maskOf(len)) >>> 0 === net >>> 0;
}

/**
 * True if `msg` is a response (QR set, one question) whose question section
 * is byte-for-byte `question`. The forwarder matched ids; this guards the
 * node against an upstream that answers something else.
 */
function isReplyTo(msg: Uint8Array, question: Uint8Array): boolean {
  const end = DNS_HEADER_LEN + question.length;
  if (msg.length < end || msg.length > 0xffff) return false;
  const hdr = readHeader(msg);
  if (hdr === null || (hdr.flags & FLAG_QR) === 0 || hdr.qd !== 1) return false;
  for (let i = 0; i < question.length; i++) {
    if (msg[DNS_HEADER_LEN + i] !== question[i]) return false;
  }
  return true;
}

interface Ctx {
  hdr: DnsHeader;
  q: RawQuestion;
  /** The query's question section, copied verbatim into replies. */
  question: Uint8Array;
  /** EDNS of the query: null when it had no OPT record. */
  edns: { size: number } | null;
}

type Rec = dnsPacket.Answer;

interface Outcome {
  rcode: number;
  aa: boolean;
  answers: Rec[];
  authorities: Rec[];
}

/** Answers DNS queries of nodes from their name views. */
export class SupernetResolver {
  readonly stats: ResolverStats = {
    queries: 0,
    answered: 0,
    nodata: 0,
    nxdomain: 0,
    refused: 0,
    formerr: 0,
    notimp: 0,
    servfail: 0,
    badvers: 0,
    truncated: 0,
    dropped: 0,
    forwarded: 0,
    forwardFailed: 0,
  };
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly ttl: number;
  private readonly negTtl: number;
  private readonly suffix: string[];
  private readonly forwarder: DnsForwarder | undefined;
  private readonly indexes = new WeakMap<NameView, ViewIndex | null>();

  constructor(opts: ResolverOptions) {
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.ttl = opts.ttl ?? 2;
    this.negTtl = opts.negativeTtl ?? 1;
    if (
      !Number.isInteger(this.ttl) ||
      this.ttl < 0 ||
      !Number.isInteger(this.negTtl) ||
      this.negTtl < 0
    ) {
      throw new RangeError('resolver: ttl and negativeTtl must be non-negative integers (seconds)');
    }
    this.suffix = domainLabels(opts.suffix ?? SUPERNET_DNS_SUFFIX, 'suffix');
    this.forwarder = opts.forwarder;
  }

  /**
   * Answers one query (the UDP payload a node sent) from `view`. Returns the
   * reply payload, or null when there is nothing to send now: the input was
   * dropped, or the query was forwarded and `later` will receive the reply.
   * `later` is only used for forwarding; without it, a query the policy
   * would forward is answered SERVFAIL.
   */
  answer(
    query: Uint8Array,
    view: NameView,
    later?: (reply: Uint8Array) => void,
  ): Uint8Array | null {
    this.stats.queries++;
    try {
      return this.answerChecked(query, view, later);
    } catch (err) {
      // A bug, not bad input (inputs are checked before use); never take the
      // agent down for it.
      this.logger.error('dns: internal error answering a query', { error: String(err) });
      this.stats.dropped++;
      return null;
    }
  }

  private answerChecked(
    query: Uint8Array,
    view: NameView,
    later?: (reply: Uint8Array) => void,
  ): Uint8Array | null {
    const hdr = readHeader(query);
    if (hdr === null || (hdr.flags & FLAG_QR) !== 0) {
      // Too short to carry an id, or a response: answering responses would
      // let two resolvers loop.
      this.stats.dropped++;
      return null;
    }
    const opcode = (hdr.flags >> OPCODE_SHIFT) & OPCODE_MASK;
    if (query.length > MAX_QUERY_LEN) return this.bare(hdr, RCODE.FORMERR);
    if (opcode !== OPCODE_QUERY) return this.bare(hdr, RCODE.NOTIMP);
    // RFC 1035 §4.1.2 allows several questions, but no server answers more
    // than one (RFC 9619); a query carries no answers or authority, and at
    // most the OPT record as additional data.
    if (hdr.qd !== 1 || hdr.an !== 0 || hdr.ns !== 0 || hdr.ar > 1) {
      return this.bare(hdr, RCODE.FORMERR);
    }
    const q = readQuestion(query);
    if (q === null) return this.bare(hdr, RCODE.FORMERR);
    const ctx: Ctx = { hdr, q, question: query.subarray(DNS_HEADER_LEN, q.end), edns: null };

    // The library parses the whole message (the OPT record and its
    // options); it throws on overruns and we insist that it consumed exactly
    // the message, so trailing bytes and short records are FORMERR too.
    let decoded: dnsPacket.DecodedPacket;
    try {
      const buf = Buffer.from(query.buffer, query.byteOffset, query.length);
      decoded = dnsPacket.decode(buf);
      if (dnsPacket.decode.bytes !== query.length) return this.bare(hdr, RCODE.FORMERR);
    } catch {
      return this.bare(hdr, RCODE.FORMERR);
    }
    if (hdr.ar === 1) {
      const opt = decoded.additionals?.[0];
      // RFC 6891 §6.1.1: OPT is owned by the root name.
      if (opt === undefined || opt.type !== 'OPT' || opt.name !== '.') {
        return this.bare(hdr, RCODE.FORMERR);
      }
      ctx.edns = { size: Math.min(Math.max(opt.udpPayloadSize, PLAIN_UDP_LIMIT), EDNS_UDP_LIMIT) };
      if (opt.ednsVersion !== 0) return this.reply(ctx, this.outcome(RCODE.BADVERS));
    }

    if (q.qtype === QTYPE.OPT) return this.reply(ctx, this.outcome(RCODE.FORMERR));
    if (q.qclass !== QCLASS_IN && q.qclass !== QCLASS_ANY) {
      return this.reply(ctx, this.outcome(RCODE.REFUSED));
    }
    if (q.qtype === QTYPE.AXFR || q.qtype === QTYPE.IXFR) {
      return this.reply(ctx, this.outcome(RCODE.REFUSED));
    }
    if (q.qtype === QTYPE.MAILA || q.qtype === QTYPE.MAILB) {
      return this.reply(ctx, this.outcome(RCODE.NOTIMP));
    }

    let idx = this.indexes.get(view);
    if (idx === undefined) {
      try {
        idx = indexView(view, this.logger);
      } catch (err) {
        this.logger.error('dns: name view unusable, answering SERVFAIL', {
          supernet: view?.supernet,
          error: (err as Error).message,
        });
        idx = null;
      }
      this.indexes.set(view, idx);
    }
    if (idx === null) return this.reply(ctx, this.outcome(RCODE.SERVFAIL));

    const local = this.resolve(ctx, idx);
    if (local !== null) return this.reply(ctx, local);
    return this.external(ctx, idx, query, later);
  }

  /** Answers from the view, or null when the name is external. */
  private resolve(ctx: Ctx, idx: ViewIndex): Outcome | null {
    const { lower, qtype } = ctx.q;
    if (endsWithLabels(lower, idx.domain)) return this.inDomain(ctx, idx);
    if (endsWithLabels(lower, IN_ADDR_ARPA)) {
      const rev = this.reverse(ctx, idx);
      if (rev !== null) return rev;
    }
    // Other Supernets' domains: never resolvable, never sent upstream.
    if (endsWithLabels(lower, this.suffix)) return this.outcome(RCODE.NXDOMAIN);
    const last = lower[lower.length - 1];
    if (last === LOCALHOST) {
      if (!lower.every((l) => LDH_RE.test(l))) return this.outcome(RCODE.NXDOMAIN);
      if (qtype === QTYPE.A || qtype === QTYPE.ANY) {
        return this.positive([this.rr('A', ctx, LOOPBACK)]);
      }
      return this.outcome(RCODE.NOERROR);
    }
    if (last === INVALID) return this.outcome(RCODE.NXDOMAIN);
    return null;
  }

  private inDomain(ctx: Ctx, idx: ViewIndex): Outcome {
    const { lower, qtype } = ctx.q;
    const rel = lower.length - idx.domain.length;
    const soa = this.soa(idx.domainText, idx);
    if (rel === 0) {
      if (qtype === QTYPE.SOA || qtype === QTYPE.ANY) return this.positive([soa]);
      return this.outcome(RCODE.NOERROR, [soa]);
    }
    const addr = rel === 1 ? idx.byName.get(lower[0]!) : undefined;
    if (addr === undefined) return this.outcome(RCODE.NXDOMAIN, [soa]);
    if (qtype === QTYPE.A || qtype === QTYPE.ANY) {
      return this.positive([this.rr('A', ctx, formatIpv4(addr))]);
    }
    // AAAA and every other type: the name exists, the type does not.
    return this.outcome(RCODE.NOERROR, [soa]);
  }

  /** Reverse names: answers for the pool's tree, NXDOMAIN for local ranges, null otherwise. */
  private reverse(ctx: Ctx, idx: ViewIndex): Outcome | null {
    const { lower, qtype } = ctx.q;
    const octets = reverseOctets(lower.slice(0, lower.length - IN_ADDR_ARPA.length));
    if (octets === null) return null;
    let net = 0;
    for (let i = 0; i < 4; i++) net = net * 256 + (octets[i] ?? 0);
    const len = octets.length * 8;
    const pool: Ipv4Prefix = idx.pool;
    const inPool = covers(pool.network, pool.len, net, len);
    // An ancestor of the pool (e.g. 71.10.in-addr.arpa) is an empty
    // non-terminal of the tree we serve; in-addr.arpa itself is not ours.
    const ancestor = len >= 8 && covers(net, len, pool.network, pool.len);
    if (inPool || ancestor) {
      const soa = this.soa(idx.reverseApexText, idx);
      if (len === 32 && inPool) {
        const fqdn = idx.byAddr.get(net >>> 0);
        if (fqdn === undefined) return this.outcome(RCODE.NXDOMAIN, [soa]);
        if (qtype === QTYPE.PTR || qtype === QTYPE.ANY) {
          return this.positive([this.rr('PTR', ctx, fqdn)]);
        }
        return this.outcome(RCODE.NOERROR, [soa]);
      }
      if (lower.length === idx.reverseApex.length && (qtype === QTYPE.SOA || qtype === QTYPE.ANY)) {
        if (endsWithLabels(lower, idx.reverseApex)) return this.positive([soa]);
      }
      return this.outcome(RCODE.NOERROR, [soa]);
    }
    for (const [lnet, llen] of LOCAL_REVERSE) {
      if (covers(lnet, llen, net, len)) return this.outcome(RCODE.NXDOMAIN);
    }
    return null;
  }

  private external(
    ctx: Ctx,
    idx: ViewIndex,
    query: Uint8Array,
    later?: (reply: Uint8Array) => void,
  ): Uint8Array | null {
    const policy = idx.external;
    if (policy === 'refuse' || typeof policy !== 'object' || !Array.isArray(policy.forward)) {
      return this.reply(ctx, this.outcome(RCODE.REFUSED));
    }
    if (this.forwarder === undefined || later === undefined || policy.forward.length === 0) {
      return this.reply(ctx, this.outcome(RCODE.SERVFAIL));
    }
    this.stats.forwarded++;
    const id = ctx.hdr.id;
    const limit = ctx.edns ? ctx.edns.size : PLAIN_UDP_LIMIT;
    // Copied, the query and the question (a view of it): the agent reuses
    // its packet buffer once `answer` returns, long before the reply comes.
    const kept: Ctx = { ...ctx, question: Uint8Array.from(ctx.question) };
    this.forwarder.forward(Uint8Array.from(query), policy.forward, (up) => {
      const fail = (): void => {
        this.stats.forwardFailed++;
        later(this.reply(kept, this.outcome(RCODE.SERVFAIL)));
      };
      if (up === null || !isReplyTo(up, kept.question)) return fail();
      if (up.length > limit) {
        // Too big for the client: tell it to retry over TCP, which it
        // cannot reach here, but which is the honest signal (RFC 7766).
        this.stats.truncated++;
        const out = this.reply(kept, this.outcome(RCODE.NOERROR));
        out[2] |= FLAG_TC >> 8;
        later(out);
        return;
      }
      const out = Uint8Array.from(up);
      out[0] = id >> 8;
      out[1] = id & 0xff;
      later(out);
    });
    return null;
  }

  private outcome(rcode: number, authorities: Rec[] = []): Outcome {
    return { rcode, aa: false, answers: [], authorities };
  }

  private positive(answers: Rec[]): Outcome {
    return { rcode: RCODE.NOERROR, aa: true, answers, authorities: [] };
  }

  /** A record owned by the question's name, in the case it was asked. */
  private rr(type: 'A' | 'PTR', ctx: Ctx, data: string): Rec {
    return { type, name: ctx.q.labels.join('.'), ttl: this.ttl, class: 'IN', data };
  }

  private soa(zone: string, idx: ViewIndex): Rec {
    const serial =
      idx.serial !== undefined && Number.isInteger(idx.serial) && idx.serial >= 0
        ? idx.serial % 2 ** 32
        : Math.floor(this.clock.now() / 1000) % 2 ** 32;
    return {
      type: 'SOA',
      name: zone,
      ttl: this.negTtl,
      class: 'IN',
      data: {
        // There is no primary server to name; the zone itself stands in.
        mname: zone,
        rname: `hostmaster.${idx.domainText}`,
        serial,
        refresh: 60,
        retry: 30,
        expire: 600,
        minimum: this.negTtl,
      },
    };
  }

  /** A reply carrying only a header (the question could not be parsed or echoed). */
  private bare(hdr: DnsHeader, rcode: number): Uint8Array {
    this.count(rcode, 0);
    const out = new Uint8Array(DNS_HEADER_LEN);
    writeHeader(out, hdr.id, this.flags(hdr, rcode, false), 0, 0, 0, 0);
    return out;
  }

  private flags(hdr: DnsHeader, rcode: number, aa: boolean): number {
    return (
      FLAG_QR |
      (hdr.flags & (OPCODE_MASK << OPCODE_SHIFT)) |
      (aa ? FLAG_AA : 0) |
      (hdr.flags & FLAG_RD) |
      // The node has no other resolver: as far as it can tell, this one
      // recurses; refusals are policy, not missing recursion.
      FLAG_RA |
      (hdr.flags & FLAG_CD) |
      (rcode & RCODE_MASK)
    );
  }

  /**
   * Encodes a reply: our header, the query's question section verbatim (so
   * case, RFC 4343 0x20 randomisation included, comes back unchanged), then
   * the records, encoded by dns-packet. If the reply is longer than the
   * client accepts, the records are dropped and TC set (RFC 2181 §9).
   */
  private reply(ctx: Ctx, o: Outcome): Uint8Array {
    const additionals: Rec[] = [];
    if (ctx.edns !== null) {
      additionals.push({
        type: 'OPT',
        name: '.',
        udpPayloadSize: EDNS_UDP_LIMIT,
        extendedRcode: o.rcode >> 4,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      });
    }
    const limit = ctx.edns ? ctx.edns.size : PLAIN_UDP_LIMIT;
    let answers = o.answers;
    let authorities = o.authorities;
    let body = this.sections(answers, authorities, additionals);
    let tc = 0;
    if (DNS_HEADER_LEN + ctx.question.length + body.length > limit) {
      answers = [];
      authorities = [];
      body = this.sections(answers, authorities, additionals);
      tc = FLAG_TC;
      this.stats.truncated++;
    }
    this.count(o.rcode, answers.length);
    const out = new Uint8Array(DNS_HEADER_LEN + ctx.question.length + body.length);
    writeHeader(
      out,
      ctx.hdr.id,
      this.flags(ctx.hdr, o.rcode, o.aa) | tc,
      1,
      answers.length,
      authorities.length,
      additionals.length,
    );
    out.set(ctx.question, DNS_HEADER_LEN);
    out.set(body, DNS_HEADER_LEN + ctx.question.length);
    return out;
  }

  /** The answer, authority and additional sections, without header or question. */
  private sections(answers: Rec[], authorities: Rec[], additionals: Rec[]): Uint8Array {
    const buf = dnsPacket.encode({
      id: 0,
      type: 'response',
      questions: [],
      answers,
      authorities,
      additionals,
    });
    return buf.subarray(DNS_HEADER_LEN);
  }

  private count(rcode: number, answers: number): void {
    const s = this.stats;
    switch (rcode) {
      case RCODE.NOERROR:
        if (answers > 0) s.answered++;
        else s.nodata++;
        break;
      case RCODE.NXDOMAIN:
        s.nxdomain++;
        break;
      case RCODE.REFUSED:
        s.refused++;
        break;
      case RCODE.FORMERR:
        s.formerr++;
        break;
      case RCODE.NOTIMP:
        s.notimp++;
        break;
      case RCODE.SERVFAIL:
        s.servfail++;
        break;
      case RCODE.BADVERS:
        s.badvers++;
        break;
    }
  }
}
