/**
 * One prom-client Registry per process instance (injected, never the global one, so tests stay isolated), with every series
 * DESIGN §2 names. Per-chunk and per-datagram counts are plain number fields in `hot`, published in collect() at scrape
 * time: a labelled inc() costs about 0.3 µs, a field += a few ns (STACK.md). Labelled inc() is for per-connection and
 * per-request events only.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const METRIC_PREFIX = 'switchboard_';

/** group_members{group} is only published while there are at most this many groups, so a label cannot explode. */
export const GROUP_MEMBERS_SERIES_MAX = 100;

export type DropReason =
  | 'slow_client'
  | 'oversize'
  | 'upstream_down'
  | 'read_only'
  | 'udp_queue'
  | 'udp_unregistered'
  | 'no_receiver';

/** Counters bumped on hot paths: plain fields, read at scrape time. */
export interface HotCounters {
  bytesIn: number;
  bytesOut: number;
  bytesUpstreamIn: number;
  bytesUpstreamOut: number;
  datagramsIn: number;
  datagramsOut: number;
  dropped: Record<DropReason, number>;
}

export class Metrics {
  readonly registry = new Registry();
  readonly hot: HotCounters = {
    bytesIn: 0,
    bytesOut: 0,
    bytesUpstreamIn: 0,
    bytesUpstreamOut: 0,
    datagramsIn: 0,
    datagramsOut: 0,
    dropped: {
      slow_client: 0,
      oversize: 0,
      upstream_down: 0,
      read_only: 0,
      udp_queue: 0,
      udp_unregistered: 0,
      no_receiver: 0,
    },
  };

  readonly connectionsActive: Gauge<'mode' | 'listener'>;
  readonly connectionsTotal: Counter<'mode' | 'listener'>;
  readonly connectionsRejected: Counter<'reason'>;
  readonly groups: Gauge;
  readonly udpPeers: Gauge;
  readonly upstreamUp: Gauge;
  readonly upstreamReconnects: Counter;
  readonly requests: Counter<'protocol' | 'outcome'>;
  readonly requestDuration: Histogram;
  readonly slowClients: Counter<'policy'>;
  readonly strayReplies: Counter;
  readonly tunnelsActive: Gauge;
  readonly streamsActive: Gauge;

  /** Set by the groups engine: member count per group id, read at scrape time. */
  groupMembersSource: (() => ReadonlyMap<string, number>) | undefined;
  /** Set by the mux engines: requests waiting for the upstream, read at scrape time (a set() per request allocated). */
  queueDepthSource: (() => number) | undefined;

  constructor(readonly mode: string) {
    const registers = [this.registry];
    const hot = this.hot;
    collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });

    this.connectionsActive = new Gauge({
      name: `${METRIC_PREFIX}connections_active`,
      help: 'Open client connections per listener',
      labelNames: ['mode', 'listener'],
      registers,
    });
    this.connectionsTotal = new Counter({
      name: `${METRIC_PREFIX}connections_total`,
      help: 'Client connections accepted per listener',
      labelNames: ['mode', 'listener'],
      registers,
    });
    this.connectionsRejected = new Counter({
      name: `${METRIC_PREFIX}connections_rejected_total`,
      help: 'Connections and registrations refused, by reason',
      labelNames: ['reason'],
      registers,
    });
    new Counter({
      name: `${METRIC_PREFIX}bytes_total`,
      help: 'Bytes carried: in from clients, out to clients, upstream_in from and upstream_out to upstreams and members dialled',
      labelNames: ['mode', 'direction'],
      registers,
      collect() {
        this.reset();
        this.inc({ mode, direction: 'in' }, hot.bytesIn);
        this.inc({ mode, direction: 'out' }, hot.bytesOut);
        this.inc({ mode, direction: 'upstream_in' }, hot.bytesUpstreamIn);
        this.inc({ mode, direction: 'upstream_out' }, hot.bytesUpstreamOut);
      },
    });
    new Counter({
      name: `${METRIC_PREFIX}datagrams_total`,
      help: 'UDP datagrams received (in) and sent (out)',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        this.inc({ direction: 'in' }, hot.datagramsIn);
        this.inc({ direction: 'out' }, hot.datagramsOut);
      },
    });
    new Counter({
      name: `${METRIC_PREFIX}dropped_bytes_total`,
      help: 'Bytes discarded on purpose, by reason',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, bytes] of Object.entries(hot.dropped)) this.inc({ reason }, bytes);
      },
    });
    this.groups = new Gauge({ name: `${METRIC_PREFIX}groups`, help: 'Groups with at least one member', registers });
    const metrics = this;
    new Gauge({
      name: `${METRIC_PREFIX}group_members`,
      help: `Members per group (published only while there are at most ${GROUP_MEMBERS_SERIES_MAX} groups)`,
      labelNames: ['group'],
      registers,
      collect() {
        this.reset();
        const members = metrics.groupMembersSource?.();
        if (!members || members.size > GROUP_MEMBERS_SERIES_MAX) return;
        for (const [group, count] of members) this.set({ group }, count);
      },
    });
    this.udpPeers = new Gauge({ name: `${METRIC_PREFIX}udp_peers`, help: 'Registered UDP peers', registers });
    this.upstreamUp = new Gauge({ name: `${METRIC_PREFIX}upstream_up`, help: '1 while the upstream is connected', registers });
    this.upstreamReconnects = new Counter({
      name: `${METRIC_PREFIX}upstream_reconnects_total`,
      help: 'Outgoing connections attempted again after a failure or a loss',
      registers,
    });
    this.requests = new Counter({
      name: `${METRIC_PREFIX}requests_total`,
      help: 'Requests answered in mux mode, by protocol and outcome',
      labelNames: ['protocol', 'outcome'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: `${METRIC_PREFIX}request_duration_seconds`,
      help: 'From a request arriving to its answer being written, queue wait included',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    new Gauge({
      name: `${METRIC_PREFIX}queue_depth`,
      help: 'Requests waiting for the upstream',
      registers,
      collect() {
        this.set(metrics.queueDepthSource?.() ?? 0);
      },
    });
    this.slowClients = new Counter({
      name: `${METRIC_PREFIX}slow_clients_total`,
      help: 'Receivers that fell CLIENT_BUFFER_BYTES behind (or were furthest behind past MAX_BUFFERED_BYTES), by policy applied',
      labelNames: ['policy'],
      registers,
    });
    this.strayReplies = new Counter({
      name: `${METRIC_PREFIX}stray_replies_total`,
      help: 'Upstream replies that matched no request and were dropped',
      registers,
    });
    this.tunnelsActive = new Gauge({ name: `${METRIC_PREFIX}tunnels_active`, help: 'Agents with a bound public port', registers });
    this.streamsActive = new Gauge({ name: `${METRIC_PREFIX}streams_active`, help: 'Open tunnel streams', registers });
  }
}
