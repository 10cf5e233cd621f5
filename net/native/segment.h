/*
 * segment.h: Internet checksums and TCP segmentation of the super-packets a
 * TUN device hands over in offload mode (IFF_VNET_HDR + TUNSETOFFLOAD).
 * Pure functions over byte buffers; no N-API here.
 */
#ifndef SN_SEGMENT_H
#define SN_SEGMENT_H

#include <linux/virtio_net.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 791 / RFC 9293 header facts used below. */
#define SN_IPV4_MIN_HDR 20
#define SN_TCP_MIN_HDR 20
#define SN_IPPROTO_TCP 6
#define SN_TCP_FIN 0x01
#define SN_TCP_PSH 0x08
#define SN_TCP_CWR 0x80
/* Largest IPv4 packet (total length is a 16-bit field). */
#define SN_IPV4_MAX_PACKET 65535

/* RFC 1071 one's-complement sum of `len` bytes, added to `sum` (byte-order independent). */
uint64_t sn_csum_add(uint64_t sum, const uint8_t *p, size_t len);
/* Folds a running sum to 16 bits (not inverted). */
uint16_t sn_csum_fold(uint64_t sum);

/*
 * VIRTIO_NET_HDR_F_NEEDS_CSUM on an unsegmented packet: the kernel left the
 * pseudo-header sum in the checksum field; sum from csum_start to the end and
 * store the complement at csum_start + csum_offset. Returns 0, or -1 if the
 * offsets do not fit the packet.
 */
int sn_csum_complete(const struct virtio_net_hdr *vh, uint8_t *pkt, size_t len);

/* A validated TCPv4 super-packet and how it splits. */
typedef struct {
  const uint8_t *pkt; /* headers + payload */
  size_t len;         /* IPv4 total length */
  size_t iphl;        /* IPv4 header length */
  size_t hl;          /* IPv4 + TCP header length */
  size_t mss;         /* payload bytes per segment (gso_size) */
  size_t payload;     /* len - hl */
  uint32_t nseg;      /* number of segments (>= 1) */
} sn_tso;

/*
 * Checks a VIRTIO_NET_HDR_GSO_TCPV4 packet (plain IPv4, unfragmented, TCP,
 * sane header lengths, nonzero gso_size) and plans its split. Returns 0, or
 * -1 if it is malformed or of a GSO type this addon does not enable.
 */
int sn_tso_prepare(const struct virtio_net_hdr *vh, const uint8_t *pkt, size_t len, sn_tso *t);
/* Length of segment i (headers included). */
size_t sn_tso_seglen(const sn_tso *t, uint32_t i);
/*
 * Writes segment i to `out` (sn_tso_seglen bytes): headers copied, IPv4 total
 * length, ID (+i) and checksum, TCP sequence number (+i*mss), FIN/PSH only on
 * the last segment, CWR only on the first, full TCP checksum -- what the
 * kernel's own software GSO (tcp_gso_segment) produces.
 */
void sn_tso_segment(const sn_tso *t, uint32_t i, uint8_t *out);


/* An IPv4/TCP segment that may join a coalesced super-packet (see sn_gro_*). */
typedef struct {
  const uint8_t *pkt;
  size_t len;  /* IPv4 total length == packet length */
  size_t thl;  /* TCP header length (IPv4 header is exactly 20 bytes) */
  size_t plen; /* payload length (> 0) */
  uint32_t seq;
  uint8_t flags;
} sn_gro_seg;

/* Most segments merged into one super-packet. */
#define SN_GRO_MAX_SEGS 64

/*
 * Accepts a packet as a coalescing candidate: IPv4 without options, DF set
 * and not fragmented, TCP with only ACK (and possibly PSH) set, a payload,
 * and valid IPv4 and TCP checksums (coalescing replaces the per-segment
 * checksums, so they are verified here instead of by the kernel). Returns 0
 * or -1.
 */
int sn_gro_accept(const uint8_t *pkt, size_t len, sn_gro_seg *s);
/*
 * True if `next` continues the run that `first` started and `prev` ended:
 * same addresses, ports, TOS, TTL, ACK, window and TCP options; in sequence;
 * not longer than the run's segment size; fits 64 KiB; `prev` full-sized
 * and without PSH.
 */
int sn_gro_follows(const sn_gro_seg *first, const sn_gro_seg *prev, const sn_gro_seg *next, size_t total_payload);
/*
 * Writes the super-packet's headers (20 + first->thl bytes) to `hdr`: total
 * length, IPv4 checksum, PSH if the last segment had it, and in the TCP
 * checksum field the pseudo-header sum, as CHECKSUM_PARTIAL expects; fills
 * `vh` (NEEDS_CSUM, GSO TCPV4, gso_size = first->plen).
 */
void sn_gro_header(const sn_gro_seg *first, const sn_gro_seg *last, size_t total_payload, uint8_t *hdr,
                   struct virtio_net_hdr *vh);

#endif
