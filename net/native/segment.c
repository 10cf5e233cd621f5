/*
 * segment.c: see segment.h. Checksums follow RFC 1071: the one's-complement
 * sum can be computed over native-endian words in any width and folded; the
 * folded result, stored in native byte order, is the correct network-order
 * checksum. So no byte swapping is needed anywhere below.
 */
#include "segment.h"

#include <string.h>

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

uint64_t sn_csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  /* 32-bit words into a 64-bit accumulator cannot overflow for any packet
   * (2^32 additions would be needed), so no carry handling in the loop. */
  uint32_t w0, w1, w2, w3;
  while (len >= 16) {
    memcpy(&w0, p, 4);
    memcpy(&w1, p + 4, 4);
    memcpy(&w2, p + 8, 4);
    memcpy(&w3, p + 12, 4);
    sum += (uint64_t)w0 + w1 + w2 + w3;
    p += 16;
    len -= 16;
  }
  while (len >= 4) {
    memcpy(&w0, p, 4);
    sum += w0;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t h;
    memcpy(&h, p, 2);
    sum += h;
    p += 2;
    len -= 2;
  }
  if (len) {
    /* A trailing odd byte is the first byte of a zero-padded word. */
    uint16_t h = 0;
    memcpy(&h, p, 1);
    sum += h;
  }
  return sum;
}

uint16_t sn_csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffu) + (sum >> 16);
  sum = (sum & 0xffffu) + (sum >> 16);
  return (uint16_t)sum;
}

int sn_csum_complete(const struct virtio_net_hdr *vh, uint8_t *pkt, size_t len) {
  size_t start = vh->csum_start, field = (size_t)vh->csum_start + vh->csum_offset;
  uint16_t c;
  if (start >= len || field + 2 > len) return -1;
  c = (uint16_t)~sn_csum_fold(sn_csum_add(0, pkt + start, len - start));
  /* 0 and 0xffff are the same one's-complement value; UDP (RFC 768) needs
   * 0xffff because 0 there means "no checksum". */
  if (c == 0) c = 0xffff;
  memcpy(pkt + field, &c, 2);
  return 0;
}

int sn_tso_prepare(const struct virtio_net_hdr *vh, const uint8_t *pkt, size_t len, sn_tso *t) {
  size_t iphl, tcphl, total;
  if ((vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_TCPV4) return -1;
  if (len < SN_IPV4_MIN_HDR + SN_TCP_MIN_HDR || pkt[0] >> 4 != 4) return -1;
  iphl = (size_t)(pkt[0] & 0x0f) * 4;
  total = rd16(pkt + 2);
  if (iphl < SN_IPV4_MIN_HDR || total > len || total < iphl + SN_TCP_MIN_HDR) return -1;
  if (pkt[9] != SN_IPPROTO_TCP || (rd16(pkt + 6) & 0x3fff) != 0) return -1; /* TCP, MF=0, offset 0 */
  tcphl = (size_t)(pkt[iphl + 12] >> 4) * 4;
  if (tcphl < SN_TCP_MIN_HDR || iphl + tcphl > total) return -1;
  if (vh->gso_size == 0) return -1;
  t->pkt = pkt;
  t->len = total;
  t->iphl = iphl;
  t->hl = iphl + tcphl;
  t->mss = vh->gso_size;
  t->payload = total - t->hl;
  t->nseg = t->payload ? (uint32_t)((t->payload + t->mss - 1) / t->mss) : 1;
  return 0;
}

size_t sn_tso_seglen(const sn_tso *t, uint32_t i) {
  size_t off = (size_t)i * t->mss;
  size_t plen = t->payload - off < t->mss ? t->payload - off : t->mss;
  return t->hl + plen;
}

void sn_tso_segment(const sn_tso *t, uint32_t i, uint8_t *out) {
  const size_t off = (size_t)i * t->mss, seglen = sn_tso_seglen(t, i), plen = seglen - t->hl;
  uint8_t *ip = out, *tcp = out + t->iphl, pseudo[12];
  uint8_t flags;
  uint16_t c;
  uint64_t sum;

  memcpy(out, t->pkt, t->hl);
  memcpy(out + t->hl, t->pkt + t->hl + off, plen);

  /* IPv4 (RFC 791): total length, identification, header checksum. */
  wr16(ip + 2, (uint16_t)seglen);
  wr16(ip + 4, (uint16_t)(rd16(t->pkt + 4) + i));
  ip[10] = ip[11] = 0;
  c = (uint16_t)~sn_csum_fold(sn_csum_add(0, ip, t->iphl));
  memcpy(ip + 10, &c, 2);

  /* TCP (RFC 9293; RFC 3168 for CWR): sequence number and flags per segment. */
  wr32(tcp + 4, rd32(t->pkt + t->iphl + 4) + (uint32_t)off);
  flags = tcp[13];
  if (i + 1 != t->nseg) flags &= (uint8_t)~(SN_TCP_FIN | SN_TCP_PSH);
  if (i != 0) flags &= (uint8_t)~SN_TCP_CWR;
  tcp[13] = flags;
  tcp[16] = tcp[17] = 0;
  memcpy(pseudo, ip + 12, 8); /* source and destination address */
  pseudo[8] = 0;
  pseudo[9] = SN_IPPROTO_TCP;
  wr16(pseudo + 10, (uint16_t)(seglen - t->iphl));
  sum = sn_csum_add(0, pseudo, sizeof pseudo);
  sum = sn_csum_add(sum, tcp, seglen - t->iphl);
  c = (uint16_t)~sn_csum_fold(sum);
  memcpy(tcp + 16, &c, 2);
}

/* ---------- coalescing (the receive-side counterpart of sn_tso_*) ---------- */

#define SN_TCP_ACK 0x10
#define SN_IPV4_DF 0x4000

static uint64_t pseudo_sum(const uint8_t *ip, size_t l4len) {
  uint8_t pseudo[12];
  memcpy(pseudo, ip + 12, 8);
  pseudo[8] = 0;
  pseudo[9] = ip[9];
  wr16(pseudo + 10, (uint16_t)l4len);
  return sn_csum_add(0, pseudo, sizeof pseudo);
}

int sn_gro_accept(const uint8_t *pkt, size_t len, sn_gro_seg *s) {
  size_t thl;
  if (len < SN_IPV4_MIN_HDR + SN_TCP_MIN_HDR || pkt[0] != 0x45 || rd16(pkt + 2) != len ||
      rd16(pkt + 6) != SN_IPV4_DF || pkt[9] != SN_IPPROTO_TCP)
    return -1;
  thl = (size_t)(pkt[SN_IPV4_MIN_HDR + 12] >> 4) * 4;
  if (thl < SN_TCP_MIN_HDR || SN_IPV4_MIN_HDR + thl >= len) return -1; /* needs a payload */
  s->flags = pkt[SN_IPV4_MIN_HDR + 13];
  if ((s->flags & ~(SN_TCP_ACK | SN_TCP_PSH)) != 0 || !(s->flags & SN_TCP_ACK)) return -1;
  if (sn_csum_fold(sn_csum_add(0, pkt, SN_IPV4_MIN_HDR)) != 0xffff) return -1;
  if (sn_csum_fold(sn_csum_add(pseudo_sum(pkt, len - SN_IPV4_MIN_HDR), pkt + SN_IPV4_MIN_HDR,
                               len - SN_IPV4_MIN_HDR)) != 0xffff)
    return -1;
  s->pkt = pkt;
  s->len = len;
  s->thl = thl;
  s->plen = len - SN_IPV4_MIN_HDR - thl;
  s->seq = rd32(pkt + SN_IPV4_MIN_HDR + 4);
  return 0;
}

int sn_gro_follows(const sn_gro_seg *first, const sn_gro_seg *prev, const sn_gro_seg *next, size_t total_payload) {
  const uint8_t *a = first->pkt, *b = next->pkt;
  const size_t t = SN_IPV4_MIN_HDR;
  return prev->plen == first->plen && !(prev->flags & SN_TCP_PSH) && next->thl == first->thl &&
         next->plen <= first->plen && next->seq == prev->seq + (uint32_t)prev->plen &&
         SN_IPV4_MIN_HDR + first->thl + total_payload + next->plen <= SN_IPV4_MAX_PACKET &&
         a[1] == b[1] && a[8] == b[8] &&                 /* TOS (incl. ECN), TTL */
         memcmp(a + 12, b + 12, 8) == 0 &&                /* addresses */
         memcmp(a + t, b + t, 4) == 0 &&                  /* ports */
         memcmp(a + t + 8, b + t + 8, 4) == 0 &&          /* acknowledgment number */
         memcmp(a + t + 14, b + t + 14, 2) == 0 &&        /* window */
         memcmp(a + t + 20, b + t + 20, first->thl - 20) == 0; /* options (timestamps) */
}

void sn_gro_header(const sn_gro_seg *first, const sn_gro_seg *last, size_t total_payload, uint8_t *hdr,
                   struct virtio_net_hdr *vh) {
  const size_t hl = SN_IPV4_MIN_HDR + first->thl, total = hl + total_payload;
  uint8_t *tcp = hdr + SN_IPV4_MIN_HDR;
  uint16_t c;
  memcpy(hdr, first->pkt, hl);
  wr16(hdr + 2, (uint16_t)total);
  hdr[10] = hdr[11] = 0;
  c = (uint16_t)~sn_csum_fold(sn_csum_add(0, hdr, SN_IPV4_MIN_HDR));
  memcpy(hdr + 10, &c, 2);
  tcp[13] = (uint8_t)(first->flags | (last->flags & SN_TCP_PSH));
  /* CHECKSUM_PARTIAL: the field holds the folded, uncomplemented pseudo-header sum. */
  c = sn_csum_fold(pseudo_sum(hdr, total - SN_IPV4_MIN_HDR));
  memcpy(tcp + 16, &c, 2);
  memset(vh, 0, sizeof *vh);
  vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  vh->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  vh->hdr_len = (uint16_t)hl;
  vh->gso_size = (uint16_t)first->plen;
  vh->csum_start = SN_IPV4_MIN_HDR;
  vh->csum_offset = 16;
}
