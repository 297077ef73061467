/**
 * TCP groups: members join a group with a join line (join.ts), by matching TCP_PRECONFIG_ADDRESSES, or by being dialled
 * (TCP_DIAL_ADDRESSES). Bytes from a member go to every other member of its group, in order, through the group's Fanout
 * (src/net/flow.ts): never back to the sender, never to another group, and a slow member stalls nobody.
 */
import { lookup } from 'node:dns/promises';
import { connect, isIP, type Socket } from 'node:net';
import type { GroupsConfig } from '../../config/load.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { formatHostPort, normalizeAddress, type GroupAddress } from '../../net/address.js';
import { Backoff } from '../../net/backoff.js';
import { Fanout, Receiver, type BufferBudget } from '../../net/flow.js';
import { remoteAddressOf, TcpListener, tuneSocket } from '../../net/listen.js';
import type { CommonConfig } from '../../config/load.js';
import { STATUS_MAX_CLIENTS } from '../engine.js';
import { JoinLineParser } from './join.js';

export const TCP_LISTENER_NAME = 'tcp';
export const DIAL_LISTENER_NAME = 'dial';

interface Group {
  id: string;
  fanout: Fanout;
  members: Set<Member>;
  /** Bytes members sent into the group. */
  bytes: number;
}

interface Member {
  socket: Socket;
  receiver: Receiver;
  group: Group;
  address: string;
  connectedAt: Date;
  bytesIn: number;
  how: 'join' | 'preconfig' | 'dial';
  /** Set when switchboard closes the member itself, for the "client left" log line. */
  leaveReason?: string;
}

interface PreconfigRule extends GroupAddress {
  /** The addresses `host` resolved to at start (one for an IP literal). */
  addresses: Set<string>;
}

export interface TcpGroupsOptions {
  common: CommonConfig;
  groups: GroupsConfig;
  log: Logger;
  metrics: Metrics;
  budget: BufferBudget;
}

export class TcpGroups {
  readonly groups = new Map<string, Group>();
  private readonly members = new Set<Member>();
  private readonly listener: TcpListener | undefined;
  private readonly prefix: Buffer;
  private preconfig: PreconfigRule[] = [];
  private readonly dialers: Dialer[] = [];
  private draining = false;

  constructor(private readonly options: TcpGroupsOptions) {
    const { common, groups, log, metrics } = options;
    this.prefix = Buffer.from(groups.prefix, 'utf8');
    if (groups.tcpPort !== null) {
      this.listener = new TcpListener({
        name: TCP_LISTENER_NAME,
        mode: 'groups',
        host: common.host,
        port: groups.tcpPort,
        maxClients: common.maxClients,
        log,
        metrics,
        onConnection: (socket) => this.onConnection(socket),
      });
    }
    metrics.groupMembersSource = () => new Map([...this.groups.values()].map((g) => [g.id, g.members.size]));
  }

  async start(): Promise<void> {
    this.preconfig = await resolvePreconfig(this.options.groups.tcpPreconfigAddresses, this.options.log);
    await this.listener?.start();
    for (const target of this.options.groups.tcpDialAddresses) {
      const dialer = new Dialer(target, this.options, (socket) => this.addMember(socket, target.groupId, 'dial', Buffer.alloc(0)));
      this.dialers.push(dialer);
      dialer.start();
    }
  }

  listenerInfo() {
    return this.listener ? [this.listener.info()] : [];
  }

  status() {
    const clients = [...this.members].slice(0, STATUS_MAX_CLIENTS).map((m) => ({
      address: m.address,
      group: m.group.id,
      joinedBy: m.how,
      connectedAt: m.connectedAt.toISOString(),
      bytesIn: m.bytesIn,
      bytesOut: m.receiver.bytesWritten,
    }));
    return {
      groups: [...this.groups.values()].map((g) => ({ id: g.id, members: g.members.size, bytes: g.bytes })),
      clients,
      clientCount: this.members.size,
      dial: this.dialers.map((d) => d.status()),
    };
  }

  /** Stop accepting and dialling, flush what members have queued, then close them all (at the deadline at the latest). */
  async drain(deadline: number): Promise<void> {
    this.draining = true;
    for (const dialer of this.dialers) dialer.stop();
    this.listener?.stopAccepting();
    const sockets = [...(this.listener?.connections ?? []), ...[...this.members].map((m) => m.socket)];
    const unique = [...new Set(sockets)];
    await Promise.all(
      unique.map(
        (socket) =>
          new Promise<void>((resolve) => {
            if (socket.destroyed || socket.writableFinished) return resolve();
            const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
            socket.once('finish', () => (clearTimeout(timer), resolve()));
            socket.once('close', () => (clearTimeout(timer), resolve()));
            socket.pause(); // nothing more is forwarded while draining
            socket.end(); // flushes the queue, then FIN
          }),
      ),
    );
    for (const socket of unique) socket.destroy();
  }

  private onConnection(socket: Socket): void {
    const address = remoteAddressOf(socket);
    const rule = this.preconfig.find((r) => r.addresses.has(address) && (r.port === 0 || r.port === socket.remotePort));
    if (rule) {
      this.addMember(socket, rule.groupId, 'preconfig', Buffer.alloc(0));
      return;
    }
    this.awaitJoinLine(socket, address);
  }

  private awaitJoinLine(socket: Socket, address: string): void {
    const { groups, log, metrics } = this.options;
    const parser = new JoinLineParser(this.prefix, groups.maxMessageBytes);
    let quietTimer: NodeJS.Timeout | undefined;
    const joinTimer = setTimeout(() => refuse('join_timeout', `no join line within JOIN_TIMEOUT_MS (${groups.joinTimeoutMs})`), groups.joinTimeoutMs);

    const cleanup = () => {
      clearTimeout(joinTimer);
      clearTimeout(quietTimer);
      socket.off('data', onData);
      socket.off('close', cleanup);
    };
    const refuse = (reason: string, message: string) => {
      cleanup();
      metrics.connectionsRejected.inc({ reason });
      log.info({ client: address, reason }, `client refused: ${message}`);
      socket.destroy();
    };
    const settle = (result: ReturnType<JoinLineParser['push']>) => {
      if (result.kind === 'pending') return;
      cleanup();
      if (result.kind === 'refused') {
        metrics.connectionsRejected.inc({ reason: result.reason === 'too_long' ? 'join_too_long' : 'join_no_prefix' });
        log.info({ client: address, reason: result.reason, code: result.error.code }, `client refused: ${result.error.message}`);
        socket.destroy();
        return;
      }
      this.addMember(socket, result.groupId, 'join', result.rest);
    };
    const onData = (chunk: Buffer) => {
      metrics.hot.bytesIn += chunk.length;
      clearTimeout(quietTimer);
      const result = parser.push(chunk);
      if (result.kind === 'pending') quietTimer = setTimeout(() => settle(parser.quiet()), groups.joinQuietMs);
      else settle(result);
    };
    socket.on('data', onData);
    socket.once('close', cleanup);
  }

  private addMember(socket: Socket, groupId: string, how: Member['how'], firstData: Buffer): void {
    const { common, groups, log, metrics, budget } = this.options;
    if (this.draining) {
      socket.destroy();
      return;
    }
    let group = this.groups.get(groupId);
    if (!group) {
      group = { id: groupId, fanout: new Fanout({ clientBufferBytes: common.clientBufferBytes, budget, metrics }), members: new Set(), bytes: 0 };
      this.groups.set(groupId, group);
      metrics.groups.set(this.groups.size);
    }
    const address = formatHostPort(remoteAddressOf(socket), socket.remotePort ?? 0);
    const memberLog = log.child({ client: address, group: groupId });
    // eslint-disable-next-line prefer-const -- the slow-client callback needs the member, which needs the receiver
    let member: Member;
    const receiver = new Receiver(socket, {
      policy: groups.slowClient,
      budget,
      metrics,
      onSlow: (event) => {
        if (event.policy === 'disconnect') member.leaveReason = `slow_client_${event.reason}`;
        memberLog.warn({ policy: event.policy, reason: event.reason, queuedBytes: event.queuedBytes }, 'slow client');
      },
    });
    member = {
      socket,
      receiver,
      group,
      address,
      connectedAt: new Date(),
      bytesIn: 0,
      how,
    };
    group.members.add(member);
    group.fanout.add(receiver);
    this.members.add(member);
    memberLog.info({ joinedBy: how, members: group.members.size }, 'client joined');

    const deliver = (chunk: Buffer) => {
      member.bytesIn += chunk.length;
      group.bytes += chunk.length;
      group.fanout.broadcast(chunk, receiver, socket);
    };
    socket.on('data', (chunk: Buffer) => {
      metrics.hot.bytesIn += chunk.length;
      deliver(chunk);
    });
    socket.once('close', (hadError) => {
      this.members.delete(member);
      group.members.delete(member);
      group.fanout.forgetSource(socket);
      receiver.close();
      if (group.members.size === 0) {
        this.groups.delete(group.id);
        metrics.groups.set(this.groups.size);
      }
      const reason = member.leaveReason ?? (this.draining ? 'shutdown' : hadError ? 'error' : 'closed');
      memberLog.info({ reason, members: group.members.size }, 'client left');
    });
    // The join line's leftovers are the member's first data (already counted in bytes_total when they arrived).
    if (firstData.length > 0) deliver(firstData);
  }
}

/** Hostnames in TCP_PRECONFIG_ADDRESSES are resolved once at start (DESIGN §4); a name that does not resolve is logged. */
async function resolvePreconfig(rules: GroupAddress[], log: Logger): Promise<PreconfigRule[]> {
  return Promise.all(
    rules.map(async (rule) => {
      if (isIP(rule.host)) return { ...rule, addresses: new Set([normalizeAddress(rule.host)]) };
      try {
        const found = await lookup(rule.host, { all: true });
        return { ...rule, addresses: new Set(found.map((a) => normalizeAddress(a.address))) };
      } catch (error) {
        log.warn({ host: rule.host, err: error }, 'a TCP_PRECONFIG_ADDRESSES host does not resolve; it matches nobody');
        return { ...rule, addresses: new Set<string>() };
      }
    }),
  );
}

/** One TCP_DIAL_ADDRESSES entry: dialled at start, kept in its group, redialled with backoff. */
class Dialer {
  private readonly backoff: Backoff;
  private socket: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private state: 'connecting' | 'up' | 'backoff' | 'stopped' = 'connecting';
  private since = new Date();
  private lastError: string | null = null;

  constructor(
    private readonly target: GroupAddress,
    private readonly options: TcpGroupsOptions,
    private readonly onConnected: (socket: Socket) => void,
  ) {
    this.backoff = new Backoff(options.common.reconnectMinMs, options.common.reconnectMaxMs);
  }

  start(): void {
    this.dial();
  }

  stop(): void {
    this.stopped = true;
    this.setState('stopped');
    clearTimeout(this.timer);
  }

  status() {
    return {
      target: formatHostPort(this.target.host, this.target.port),
      group: this.target.groupId,
      state: this.state,
      since: this.since.toISOString(),
      lastError: this.lastError,
    };
  }

  private setState(state: Dialer['state']): void {
    this.state = state;
    this.since = new Date();
  }

  private dial(): void {
    const { log, metrics } = this.options;
    const dialLog = log.child({ dial: formatHostPort(this.target.host, this.target.port), group: this.target.groupId });
    this.setState('connecting');
    const socket = connect({ host: this.target.host, port: this.target.port });
    this.socket = socket;
    let connected = false;
    socket.on('error', (error) => {
      this.lastError = error.message;
      dialLog.debug({ err: error }, 'dialled member error');
    });
    socket.once('connect', () => {
      connected = true;
      this.backoff.reset();
      this.lastError = null;
      this.setState('up');
      tuneSocket(socket);
      metrics.connectionsTotal.inc({ mode: 'groups', listener: DIAL_LISTENER_NAME });
      metrics.connectionsActive.inc({ mode: 'groups', listener: DIAL_LISTENER_NAME });
      dialLog.info('dialled member connected');
      this.onConnected(socket);
    });
    socket.once('close', () => {
      if (connected) metrics.connectionsActive.dec({ mode: 'groups', listener: DIAL_LISTENER_NAME });
      if (this.stopped) return;
      const delay = this.backoff.next();
      this.setState('backoff');
      metrics.upstreamReconnects.inc();
      dialLog.info({ retryInMs: delay, lastError: this.lastError }, connected ? 'dialled member lost' : 'dialled member unreachable');
      this.timer = setTimeout(() => this.dial(), delay);
    });
  }
}
