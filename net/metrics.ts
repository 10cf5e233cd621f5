/**
 * Prometheus metrics of a host agent (issue 7; docs/console.md §Metrics),
 * with prom-client. Everything is read from the packet path's counters at
 * scrape time (net/monitor.ts `snapshot`), so the packet path does no extra
 * work for metrics. Served on the control socket (`GET /metrics`) and, with
 * `supernet host start --metrics-listen HOST:PORT`, over TCP for a
 * Prometheus server (plain text, no secrets: bind it to a monitoring
 * network or loopback).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { snapshot, type MonitoredAgent, type PacketMonitor } from './monitor.js';

export interface AgentMetrics {
  registry: Registry;
  /** Writes the text exposition to `res`. */
  serve(res: ServerResponse): void;
  /** Serves `GET /metrics` on HOST:PORT; resolves with the listening server. */
  listen(host: string, port: number): Promise<Server>;
}

/** The metrics of `agent` (one registry per agent). */
export function agentMetrics(agent: MonitoredAgent, monitor: PacketMonitor): AgentMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // One snapshot per scrape, shared by every metric's collect().
  let snap: ReturnType<typeof snapshot> | null = null;
  let snapAt = -1;
  const current = (): ReturnType<typeof snapshot> => {
    const now = Date.now();
    if (!snap || now - snapAt > 250) {
      snap = snapshot(agent, monitor.listeners);
      snapAt = now;
    }
    return snap;
  };
  const counter = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (set: (labels: Record<string, string>, v: number) => void) => void,
  ): void => {
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect(this: Counter<string>) {
        this.reset();
        fill((labels, v) => this.inc(labels, v));
      },
    });
  };
  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (set: (labels: Record<string, string>, v: number) => void) => void,
  ): void => {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect(this: Gauge<string>) {
        this.reset();
        fill((labels, v) => this.set(labels, v));
      },
    });
  };

  gauge('supernet_agent_nodes', 'Nodes this host carries', ['supernet'], (set) => {
    for (const s of current().supernets) set({ supernet: s.id }, s.nodes.length);
  });
  for (const [what, unit] of [
    ['packets', 'Packets'],
    ['bytes', 'Bytes'],
  ] as const) {
    counter(
      `supernet_agent_node_${what}_total`,
      `${unit} of inner IP traffic per node (tx: read from its TUN and sealed; rx: opened and written to it)`,
      ['supernet', 'node', 'direction'],
      (set) => {
        for (const s of current().supernets)
          for (const n of s.nodes) {
            set(
              { supernet: s.id, node: n.name, direction: 'tx' },
              what === 'packets' ? n.txPackets : n.txBytes,
            );
            set(
              { supernet: s.id, node: n.name, direction: 'rx' },
              what === 'packets' ? n.rxPackets : n.rxBytes,
            );
          }
      },
    );
    counter(
      `supernet_agent_channel_${what}_total`,
      `${unit} of inner IP traffic per channel on this host`,
      ['supernet', 'channel', 'direction'],
      (set) => {
        for (const s of current().supernets)
          for (const c of s.channels) {
            set(
              { supernet: s.id, channel: c.id, direction: 'tx' },
              what === 'packets' ? c.txPackets : c.txBytes,
            );
            set(
              { supernet: s.id, channel: c.id, direction: 'rx' },
              what === 'packets' ? c.rxPackets : c.rxBytes,
            );
          }
      },
    );
  }
  counter(
    'supernet_agent_node_unsent_total',
    'Packets a node sent that could not go out, by reason (no_route: no peer/endpoint; no_key: no channel key yet)',
    ['supernet', 'node', 'reason'],
    (set) => {
      for (const s of current().supernets)
        for (const n of s.nodes) {
          set({ supernet: s.id, node: n.name, reason: 'no_route' }, n.txNoRoute);
          set({ supernet: s.id, node: n.name, reason: 'no_key' }, n.txNoKey);
        }
    },
  );
  gauge(
    'supernet_agent_channel_epoch',
    'Current key epoch of each channel held here',
    ['supernet', 'channel'],
    (set) => {
      for (const s of current().supernets)
        for (const c of s.channels) set({ supernet: s.id, channel: c.id }, c.epoch);
    },
  );
  gauge(
    'supernet_agent_channel_epochs_held',
    'Key epochs held per channel (current and those in their grace period)',
    ['supernet', 'channel'],
    (set) => {
      for (const s of current().supernets)
        for (const c of s.channels) set({ supernet: s.id, channel: c.id }, c.epochs);
    },
  );
  counter(
    'supernet_agent_drops_total',
    'Underlay datagrams (and non-IPv4 TUN packets: not_ipv4) dropped, by reason',
    ['reason'],
    (set) => {
      for (const [reason, v] of Object.entries(current().drops)) set({ reason }, v);
    },
  );
  const underlay: Array<[string, string, string]> = [
    [
      'rxDatagrams',
      'supernet_agent_underlay_rx_datagrams_total',
      'Datagrams received on the underlay',
    ],
    ['rxBytes', 'supernet_agent_underlay_rx_bytes_total', 'Bytes received on the underlay'],
    ['txDatagrams', 'supernet_agent_underlay_tx_datagrams_total', 'Datagrams sent on the underlay'],
    ['txBytes', 'supernet_agent_underlay_tx_bytes_total', 'Bytes sent on the underlay'],
    ['txErrors', 'supernet_agent_underlay_tx_errors_total', 'Datagrams the kernel refused to send'],
    [
      'rxErrors',
      'supernet_agent_underlay_rx_errors_total',
      'Receive errors on the underlay socket',
    ],
  ];
  for (const [key, name, help] of underlay) {
    counter(name, help, [], (set) => {
      const v = current().underlay[key];
      if (typeof v === 'number') set({}, v);
    });
  }
  gauge('supernet_agent_monitor_feeds', 'Open `supernet monitor` packet feeds', [], (set) =>
    set({}, monitor.listeners),
  );

  const serve = (res: ServerResponse): void => {
    snap = null;
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`metrics failed: ${String(err)}\n`);
      },
    );
  };
  return {
    registry,
    serve,
    listen(host: string, port: number): Promise<Server> {
      const server = createServer((req, res) => {
        if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?')))
          return serve(res);
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('only GET /metrics here\n');
      });
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve(server));
      });
    },
  };
}
