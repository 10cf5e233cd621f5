/**
 * Loader and type declarations for the project's N-API addon
 * (`build/Release/supernet_native.node`, sources in this folder). The addon is
 * loaded lazily, on the first real TUN device or UDP bind, so modules that
 * only use the in-memory seams never need it built.
 *
 * This is an internal module: use `net/tun.ts` and `net/bind.ts`.
 */

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Opaque native handle (an N-API external, type-tagged by the addon). */
export type NativeHandle = { readonly __native: unique symbol };

/** Indices into a TUN device's shared Float64Array of counters (kept in sync with tun.c). */
export const TUN_STAT = {
  rxPackets: 0,
  rxBytes: 1,
  txPackets: 2,
  txBytes: 3,
  txErrors: 4,
  rxErrors: 5,
  rxDropped: 6,
  rxSuperPackets: 7,
  txSuperPackets: 8,
  lastTxErrno: 9,
} as const;
/** Number of TUN counters. */
export const TUN_STAT_COUNT = 10;

/** Indices into a UDP bind's shared Float64Array of counters (kept in sync with udp.c). */
export const UDP_STAT = {
  rxDatagrams: 0,
  rxBytes: 1,
  txDatagrams: 2,
  txBytes: 3,
  txErrors: 4,
  rxErrors: 5,
  rxTruncated: 6,
  rxKernelDrops: 7,
  txDropped: 8,
  rxGroMessages: 9,
  txGsoMessages: 10,
  txBlocked: 11,
  lastTxErrno: 12,
  gsoDisabled: 13,
} as const;
/** Number of UDP counters. */
export const UDP_STAT_COUNT = 14;

/** Flags for `tunOpen` (kept in sync with tun.c). */
export const TUN_OPEN_MULTI_QUEUE = 1;
export const TUN_OPEN_VNET_HDR = 2;

/** Flags for `udpCreate` (kept in sync with udp.c). */
export const UDP_OPT_GSO = 1;
export const UDP_OPT_GRO = 2;

/** Arrays a TUN handle reads into and reports through (owned by the JS wrapper). */
export interface TunNativeArrays {
  arena: Buffer;
  offsets: Uint32Array;
  lengths: Uint32Array;
  stats: Float64Array;
}

/** Arrays a UDP handle receives into and sends from (owned by the JS wrapper). */
export interface UdpNativeArrays {
  recvArena: Buffer;
  recvOffsets: Uint32Array;
  recvLengths: Uint32Array;
  recvAddrs: Uint32Array;
  recvPorts: Uint16Array;
  sendArena: Buffer;
  sendOffsets: Uint32Array;
  sendLengths: Uint32Array;
  sendAddrs: Uint32Array;
  sendPorts: Uint16Array;
  stats: Float64Array;
}

/** The functions the addon exports (see addon.c). */
export interface NativeAddon {
  /** Opens /dev/net/tun and attaches it to interface `name`; returns [fd, kernel name]. */
  tunOpen(name: string, flags: number): [number, string];
  /** TUNSETOFFLOAD with TUN_F_* bits. */
  tunSetOffload(fd: number, flags: number): void;
  /** Wraps an open TUN fd; the handle takes ownership of the fd. */
  tunCreate(
    fd: number,
    vnetHdr: boolean,
    arrays: TunNativeArrays,
    onBatch: (count: number) => void,
    onError: (err: Error) => void,
  ): NativeHandle;
  /** Starts polling for readability (idempotent). */
  tunStart(h: NativeHandle): void;
  /** write()s one packet; false (counted in stats) on any error. */
  tunWrite(h: NativeHandle, buf: Uint8Array, off: number, len: number): boolean;
  /** write()s `count` packets; returns how many the kernel accepted. */
  tunWriteMany(
    h: NativeHandle,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
  ): number;
  /** Creates, configures and binds a non-blocking UDP/IPv4 socket; returns the handle. */
  udpCreate(
    addr: number,
    port: number,
    rcvBuf: number,
    sndBuf: number,
    flags: number,
    arrays: UdpNativeArrays,
    onBatch: (count: number) => void,
    onWritable: () => void,
    onError: (err: Error) => void,
  ): NativeHandle;
  /** The bound local port. */
  udpPort(h: NativeHandle): number;
  /** Effective option flags after probing the kernel (UDP_OPT_*). */
  udpFlags(h: NativeHandle): number;
  /** Starts polling for readability (idempotent). */
  udpStart(h: NativeHandle): void;
  /**
   * sendmmsg()s queued datagrams 0..count-1 from the send arrays; returns how
   * many were consumed (sent or dropped with an error). Fewer than `count`
   * means the socket buffer is full: the addon then waits for writability and
   * calls onWritable.
   */
  udpSend(h: NativeHandle, count: number): number;
  /** Stops polling and closes the fd (idempotent). */
  close(h: NativeHandle): void;
  /**
   * Packet AEAD (aead.c): a handle holding AES-256-GCM seal and open contexts
   * keyed once with a 32-byte sender subkey. Freed by aeadWipe or the GC.
   */
  aeadCreate(subkey: Uint8Array): NativeHandle;
  /** Seals `inner[off..off+len)` behind the header already at `out[outOff..+36)`; returns the packet length. */
  aeadSeal(
    h: NativeHandle,
    inner: Uint8Array,
    off: number,
    len: number,
    out: Uint8Array,
    outOff: number,
  ): number;
  /** Opens `pkt[off..off+len)` into `out[outOff..)`; plaintext length, or -1 (output wiped). */
  aeadOpen(
    h: NativeHandle,
    pkt: Uint8Array,
    off: number,
    len: number,
    out: Uint8Array,
    outOff: number,
  ): number;
  /** Frees the contexts and their key schedule now; later seal/open throw. Idempotent. */
  aeadWipe(h: NativeHandle): void;
  /** Test hook: completes/segments one virtio-net-hdr packet exactly as the TUN reader does. */
  segmentForTest(
    vnetPacket: Uint8Array,
    out: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
  ): number;
}

const ADDON_FILE = join('build', 'Release', 'supernet_native.node');
let cached: NativeAddon | undefined;

/** Finds build/Release/supernet_native.node above this module (dist/net/native → package root). */
function locate(): string {
  const override = process.env.SUPERNET_NATIVE_ADDON;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, ADDON_FILE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw Object.assign(
    new Error(
      `native addon ${ADDON_FILE} not found above ${fileURLToPath(import.meta.url)}; build it with "npx node-gyp rebuild"`,
    ),
    { code: 'ENATIVE' },
  );
}

/** Loads the addon once per module instance; throws a coded error if it is not built. */
export function loadNative(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    cached = require(locate()) as NativeAddon;
  }
  return cached;
}
