/**
 * The heart of mux mode (DESIGN §5): requests from many clients, queued fairly, sent to the one upstream one at a time (or
 * up to MAX_INFLIGHT for Modbus TCP), each reply matched to its request and written back to its own client, in the
 * client's order. Every request ends exactly once with an outcome (metrics requests_total{protocol,outcome}):
 *
 *   ok, exception   the device answered (an exception from the device passes through unchanged)
 *   timeout         no answer within UPSTREAM_TIMEOUT_MS, the deadline passed (queued or sent), or the connection was lost
 *                   with the request outstanding: Modbus 0x0B
 *   unavailable     the last connect attempt failed or the upstream is in backoff: Modbus 0x0A
 *   rejected        refused before queueing (READ_ONLY/WRITE_ALLOW, or a function the framer cannot carry): Modbus 0x01
 *   coalesced       a read that joined an identical one and was answered from its reply (Modbus, COALESCE)
 *   cached          a read answered from CACHE_TTL_MS's cache
 *   busy            the client already had CLIENT_QUEUE requests unanswered: Modbus 0x06
 *   client_gone     the client left first; a queued request is then never sent
 * Protocols without an exception message (echo, iso8583, mpu) close the client instead of answering a failure.
 *
 * The Modbus rules (PROTOCOL=modbus only; src/engines/mux/modbus/) come in at submit(): screening (policy.ts), then the
 * cache (cache.ts), then coalescing (coalescing.ts); UNIT_MAP is applied once per request (upstreamUnit), which the
 * framer uses to encode the request and to match its reply.
 *
 * Coalescing lifecycle. A leader is a queued or in-flight read in the coalescing index; followers hang on it, each with
 * its own deadline timer, counted in their client's CLIENT_QUEUE like any unanswered request. When the leader is
 * answered, every follower gets a copy of the answer with its own transaction id and unit id (outcome `coalesced`). When
 * the leader fails (timeout, unavailable), its followers fail with the same exception and outcome. When a QUEUED leader
 * is dropped without being sent (its client left, or its deadline passed), its earliest follower is promoted to leader
 * in its own client's queue, in arrival order, and keeps the others: followers arrived later, so their deadlines are
 * later, and they must not pay for someone else's leaving. A follower whose own deadline passes first gets 0x0B alone.
 */
import type { MuxConfig } from '../../config/modes/mux.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import type { FrameDecoder } from '../../protocols/framing.js';
import { ExceptionCode, readRequestKey, type ModbusTcpFrame } from '../../protocols/modbus-tcp.js';
import { FairQueue, type QueueOwner } from './fair-queue.js';
import type { GatewayFailure, MuxFramer, MuxFrame } from './framers.js';
import { ReadCache } from './modbus/cache.js';
import { CoalescingIndex, readdress } from './modbus/coalescing.js';
import { changesState, ModbusPolicy, upstreamUnitOf } from './modbus/policy.js';
import { RequestGap } from './request-gap.js';
import type { Upstream } from './upstream.js';

export type Outcome =
  | 'ok'
  | 'exception'
  | 'timeout'
  | 'unavailable'
  | 'rejected'
  | 'coalesced'
  | 'cached'
  | 'busy'
  | 'client_gone';

/** What the dispatcher needs from a client connection. */
export interface MuxClientPort extends QueueOwner<MuxRequest> {
  /** Requests in arrival order that are not written back yet (answered ones wait here for the ones before them). */
  readonly outbox: MuxRequest[];
  /** Requests not answered yet (queued, in flight or joined). */
  unanswered: number;
  /** Modbus read-your-writes: requests that may change the device (not on the read allow-list), not answered yet. */
  pendingWrites: number;
  /** The dispatcher tick at which this client's last request that may change the device was answered (0: never). */
  lastWriteAnsweredTick: number;
  readonly gone: boolean;
  /** Writes an answer to the client. */
  send(bytes: Buffer): void;
  /** Ends the client after what was written (a failure the protocol cannot express). */
  close(reason: string): void;
  /** Called when outbox shrinks, so the client may read again. */
  released(): void;
}

export interface MuxRequest {
  readonly client: MuxClientPort;
  readonly frame: MuxFrame;
  /** performance.now() at arrival. */
  readonly arrivedAt: number;
  readonly deadlineAt: number;
  /** `joined`: a coalesced read waiting for its leader's answer. */
  state: 'queued' | 'inflight' | 'joined' | 'done';
  /** The transaction id used upstream (correlated protocols). */
  upstreamId: number;
  /** The unit id the device sees (UNIT_MAP applied; the client's own when unmapped). */
  readonly upstreamUnit: number;
  /** Modbus FC 1-4 with COALESCE or CACHE_TTL_MS on: the coalescing and cache key, on the device unit. */
  readonly readKey: string | undefined;
  /** Modbus: the request may change the device (read-your-writes, cache invalidation). */
  readonly changesState: boolean;
  /** Counted in client.unanswered (false for refused and busy requests). */
  counted: boolean;
  /** The dispatcher tick at which it was sent (0 before). */
  sentTick: number;
  /** The cache epoch of its device unit when it was sent. */
  epochAtSend: number;
  /** In the coalescing index as a leader. */
  indexed: boolean;
  /** Coalesced reads answered from this one's reply. */
  followers: MuxRequest[] | undefined;
  /** The request this one joined (state `joined`). */
  leader: MuxRequest | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Set when done: the bytes for the client, or null to close it. */
  answer: Buffer | null;
}

/** PROTOCOL=modbus: the rules of issue 6, each present only when configured. */
interface ModbusRules {
  readonly policy: ModbusPolicy;
  readonly unitMap: ReadonlyMap<number, number>;
  readonly coalescing: CoalescingIndex<MuxRequest> | undefined;
  readonly cache: ReadCache | undefined;
}

export interface DispatcherOptions {
  config: MuxConfig;
  framer: MuxFramer;
  maxInflight: number;
  upstream: () => Upstream;
  log: Logger;
  metrics: Metrics;
}

/** Node timers fire in whole milliseconds: a request with less time left than this cannot be answered in time. */
const TIMER_RESOLUTION_MS = 1;

/** Transaction ids are u16 (MBAP §3.1.3). */
const TRANSACTION_ID_SPACE = 0x10000;

export class Dispatcher {
  private readonly queue = new FairQueue<MuxRequest, MuxClientPort>();
  /** Outstanding upstream requests by upstream transaction id (one entry at most for uncorrelated protocols). */
  private readonly inflight = new Map<number, MuxRequest>();
  private nextTransactionId = 1;
  private consecutiveTimeouts = 0;
  private readonly gap: RequestGap;
  /** quietAfterTimeoutMs: running while the upstream is given its quiet gap; nothing is sent, everything received dropped. */
  private quietTimer: NodeJS.Timeout | undefined;
  private quietHeardSomething = false;
  /** Advances on every send and every answered write: orders "sent after this client's last write was answered". */
  private tick = 0;
  private decoder: FrameDecoder<MuxFrame>;
  private readonly framer: MuxFramer;
  private readonly protocol: string;
  private readonly modbus: ModbusRules | undefined;

  constructor(private readonly options: DispatcherOptions) {
    this.framer = options.framer;
    this.protocol = options.framer.protocol;
    this.gap = new RequestGap(options.config.requestGapMs, () => this.pump());
    this.decoder = this.framer.upstreamDecoder();
    const { config } = options;
    if (config.protocol === 'modbus') {
      this.modbus = {
        policy: new ModbusPolicy({ readOnly: config.readOnly, writeAllow: config.writeAllow }),
        unitMap: config.unitMap,
        coalescing: config.coalesce ? new CoalescingIndex<MuxRequest>() : undefined,
        cache: config.cacheTtlMs > 0 ? new ReadCache(config.cacheTtlMs) : undefined,
      };
    }
  }

  get queued(): number {
    return this.queue.size;
  }

  get outstanding(): number {
    return this.inflight.size;
  }

  /** /status `cache`: null when there is no cache (CACHE_TTL_MS=0, or not PROTOCOL=modbus). */
  cacheStatus(): { entries: number; oldestAgeMs: number | null } | null {
    return this.modbus?.cache?.status(performance.now()) ?? null;
  }

  /** A complete request from a client. */
  submit(client: MuxClientPort, frame: MuxFrame): void {
    const { config } = this.options;
    const now = performance.now();
    const modbus = this.modbus;
    const pdu = modbus === undefined ? undefined : (frame as ModbusTcpFrame).pdu;
    const upstreamUnit = modbus === undefined ? (frame.unitId ?? 0) : upstreamUnitOf(frame.unitId!, modbus.unitMap);
    const request: MuxRequest = {
      client,
      frame,
      arrivedAt: now,
      deadlineAt: now + config.requestDeadlineMs,
      state: 'queued',
      upstreamId: 0,
      upstreamUnit,
      // Only the cache and coalescing look reads up by key; without them the key would be a string built for nothing.
      readKey: modbus?.coalescing || modbus?.cache ? readRequestKey(upstreamUnit, pdu!) : undefined,
      changesState: pdu !== undefined && changesState(pdu),
      counted: false,
      sentTick: 0,
      epochAtSend: 0,
      indexed: false,
      followers: undefined,
      leader: undefined,
      timer: undefined,
      answer: null,
    };
    client.outbox.push(request);
    // Refused at once, in the client's order, never queued (READ_ONLY/WRITE_ALLOW on the client's unit id, then the framer).
    const refusal = modbus?.policy.refusal(frame.unitId!, pdu!) ?? this.framer.refuse?.(frame, upstreamUnit);
    if (refusal !== undefined) {
      this.fail(request, refusal, 'rejected');
      return;
    }
    if (client.unanswered >= config.clientQueue) {
      this.fail(request, ExceptionCode.SERVER_DEVICE_BUSY, 'busy');
      return;
    }
    client.unanswered++;
    request.counted = true;
    if (request.changesState) client.pendingWrites++;
    // A client with a write outstanding reads after it, from the device: no cache, no joining.
    if (request.readKey !== undefined && client.pendingWrites === 0 && this.answerWithoutSending(request, now)) return;
    const upstream = this.options.upstream();
    if (upstream.state === 'backoff') {
      this.fail(request, ExceptionCode.GATEWAY_PATH_UNAVAILABLE, 'unavailable');
      return;
    }
    if (upstream.state === 'idle') upstream.dial();
    request.timer = setTimeout(() => this.expire(request), config.requestDeadlineMs);
    this.queue.push(client, request);
    if (request.readKey !== undefined && modbus?.coalescing !== undefined) {
      modbus.coalescing.add(request.readKey, request);
      request.indexed = true;
    }
    this.pump();
  }

  /** A read answered from the cache or joined to an identical read; false when it must be queued. */
  private answerWithoutSending(request: MuxRequest, now: number): boolean {
    const { cache, coalescing } = this.modbus!;
    const key = request.readKey!;
    const { client, frame } = request;
    const entry = cache?.get(key, now);
    // Read-your-writes: an entry whose read was sent before this client's last write was answered is not for it.
    if (entry !== undefined && entry.sentTick > client.lastWriteAnsweredTick) {
      this.complete(request, readdress(entry.answer, frame.transactionId!, frame.unitId!), 'cached');
      return true;
    }
    const leader = coalescing?.find(key, client.lastWriteAnsweredTick);
    if (leader === undefined) return false;
    request.state = 'joined';
    request.leader = leader;
    (leader.followers ??= []).push(request);
    request.timer = setTimeout(() => this.expire(request), this.options.config.requestDeadlineMs);
    return true;
  }

  /** Sends queued requests while the upstream is usable, MAX_INFLIGHT allows and REQUEST_GAP_MS has passed. */
  pump(): void {
    const upstream = this.options.upstream();
    // The quiet gap after a timeout (uncorrelated framers): nothing goes up until it ends.
    if (this.quietTimer !== undefined) return;
    while (upstream.usable && this.inflight.size < this.options.maxInflight && this.queue.size > 0) {
      // The gap separates exchanges, so it also means one exchange at a time.
      if (this.gap.enabled && (this.inflight.size > 0 || !this.gap.ready())) return;
      const request = this.queue.shift()!;
      if (request.deadlineAt - performance.now() < TIMER_RESOLUTION_MS) {
        // Its deadline is (all but) due and its timer has not run yet: it is answered now and never sent (DESIGN §5).
        this.expireQueued(request);
        continue;
      }
      this.send(request, upstream);
    }
  }

  private send(request: MuxRequest, upstream: Upstream): void {
    const { config } = this.options;
    const localReply = this.framer.localReply?.(request.frame, request.upstreamUnit);
    const id = this.framer.correlated && localReply === undefined ? this.allocateTransactionId() : 0;
    request.upstreamId = id;
    request.sentTick = ++this.tick;
    const cache = this.modbus?.cache;
    if (cache !== undefined) {
      // Invalidated when the write is sent: a read sent before it cannot store its (possibly older) answer any more.
      if (request.changesState) cache.writeSent(request.upstreamUnit);
      request.epochAtSend = cache.epochOf(request.upstreamUnit);
    }
    const bytes = this.framer.encodeRequest(request.frame, id, request.upstreamUnit);
    if (localReply !== undefined) {
      // Answered here (an RTU broadcast has no reply); the exchange ends as it is written, so the gaps still apply.
      upstream.write(bytes);
      this.gap.exchangeEnded();
      const turnaroundMs = this.framer.quietAfterLocalReplyMs ?? 0;
      if (turnaroundMs > 0) this.beginQuiet(turnaroundMs);
      this.complete(request, request.client.gone ? null : localReply, 'ok');
      return;
    }
    request.state = 'inflight';
    this.inflight.set(id, request);
    clearTimeout(request.timer);
    const now = performance.now();
    const wait = Math.min(config.upstreamTimeoutMs, request.deadlineAt - now);
    request.timer = setTimeout(() => this.expire(request), Math.max(0, wait));
    upstream.write(bytes);
  }

  private allocateTransactionId(): number {
    // Skip ids still outstanding, and 0 (some devices treat it specially); at most MAX_INFLIGHT ids are ever taken.
    for (;;) {
      const id = this.nextTransactionId;
      this.nextTransactionId = (this.nextTransactionId + 1) % TRANSACTION_ID_SPACE || 1;
      if (!this.inflight.has(id)) return id;
    }
  }

  /** Bytes from the upstream. */
  onUpstreamData(chunk: Buffer): void {
    if (this.quietTimer !== undefined) {
      // A late reply (or noise) during the quiet gap: dropped unparsed; the decoder starts afresh when the gap ends.
      if (!this.quietHeardSomething && chunk.length > 0) {
        this.quietHeardSomething = true;
        this.options.metrics.strayReplies.inc();
      }
      return;
    }
    const { frames, error } = this.decoder.push(chunk);
    const upstream = this.options.upstream();
    let reset = false;
    const handleAll = (): void => {
      for (const frame of frames) {
        reset = !this.onReply(frame);
        if (reset) return; // the rest of this chunk belongs to the old connection
      }
    };
    // Requests sent while handling several replies leave in one write. One reply is not corked: its successor must reach
    // the device before the answer is written to the client (onReply sends first), or the device idles during that write.
    if (frames.length > 1) upstream.batch(handleAll);
    else handleAll();
    if (error && !reset) {
      this.options.metrics.strayReplies.inc();
      upstream.reset(`malformed reply: ${error.message}`);
    }
  }

  /** Several requests from one client read: sent upstream in one write. */
  submitAll(client: MuxClientPort, frames: MuxFrame[]): void {
    if (frames.length === 1) this.submit(client, frames[0]!);
    else this.options.upstream().batch(() => frames.forEach((frame) => this.submit(client, frame)));
  }

  /** Returns false when the reply made the upstream reset. */
  private onReply(reply: MuxFrame): boolean {
    const upstream = this.options.upstream();
    if (this.framer.correlated) {
      const request = this.inflight.get(reply.transactionId!);
      if (!request || !this.framer.matches(request.frame, reply, request.upstreamUnit)) {
        // Late (its request timed out), stray, or with the wrong unit or function: never delivered to anyone.
        this.options.metrics.strayReplies.inc();
        this.options.log.debug({ transactionId: reply.transactionId }, 'stray reply dropped');
        return true;
      }
      this.inflight.delete(reply.transactionId!);
      this.exchangeEnded();
      upstream.markHealthy();
      // The next request first: the device starts on it while the answer is written to its client.
      this.pump();
      this.answer(request, reply);
      return true;
    }
    // One exchange at a time: the reply belongs to the one request outstanding, or the stream is out of step.
    const request = this.inflight.get(0);
    if (!request || !this.framer.matches(request.frame, reply, request.upstreamUnit)) {
      this.options.metrics.strayReplies.inc();
      upstream.reset(request ? 'reply does not match its request' : 'reply without a request');
      return false;
    }
    this.inflight.delete(0);
    this.exchangeEnded();
    upstream.markHealthy();
    this.pump();
    this.answer(request, reply);
    return true;
  }

  private exchangeEnded(): void {
    this.consecutiveTimeouts = 0;
    this.gap.exchangeEnded();
  }

  /** The device answered `request`: its client, its followers and the cache get the answer. */
  private answer(request: MuxRequest, reply: MuxFrame): void {
    const outcome: Outcome = this.framer.isException(reply) ? 'exception' : 'ok';
    const followers = request.followers;
    const cache = this.modbus?.cache;
    const cacheable = cache !== undefined && outcome === 'ok' && request.readKey !== undefined;
    if (request.client.gone && followers === undefined && !cacheable) {
      this.complete(request, null, outcome);
      return;
    }
    const bytes = this.framer.encodeReply(request.frame, reply);
    if (cacheable) {
      cache.store(request.readKey!, request.upstreamUnit, bytes, request.epochAtSend, request.sentTick, performance.now());
    }
    request.followers = undefined;
    for (const follower of followers ?? []) {
      follower.leader = undefined;
      const { transactionId, unitId } = follower.frame;
      // A copy each: the leader's bytes may already sit in its client's socket buffer.
      this.complete(follower, follower.client.gone ? null : readdress(bytes, transactionId!, unitId!), 'coalesced');
    }
    this.complete(request, request.client.gone ? null : bytes, outcome);
  }

  /** The request's timer: its deadline (queued or joined) or its upstream timeout (sent), whichever came first. */
  private expire(request: MuxRequest): void {
    request.timer = undefined;
    if (request.state === 'joined') {
      // Its own deadline passed before its leader's answer: it alone gets 0x0B.
      this.detach(request);
      this.fail(request, ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND, 'timeout');
      return;
    }
    if (request.state === 'queued') {
      this.queue.remove(request.client, request);
      this.expireQueued(request);
      return;
    }
    if (request.state !== 'inflight') return;
    this.inflight.delete(request.upstreamId);
    this.gap.exchangeEnded();
    this.consecutiveTimeouts++;
    this.fail(request, ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND, 'timeout');
    const upstream = this.options.upstream();
    const { upstreamMaxTimeouts } = this.options.config;
    if (!this.framer.correlated) {
      const quietMs = this.framer.quietAfterTimeoutMs ?? 0;
      if (quietMs > 0 && this.consecutiveTimeouts < upstreamMaxTimeouts) this.beginQuiet(quietMs);
      // Its reply may still come; on a new connection it cannot reach the next client.
      else upstream.reset('timeout');
    } else if (this.consecutiveTimeouts >= upstreamMaxTimeouts) {
      this.consecutiveTimeouts = 0;
      upstream.reset(`${upstreamMaxTimeouts} consecutive timeouts`);
    } else {
      this.pump();
    }
  }

  /** A queued request whose deadline passed: never sent, answered 0x0B; its followers get a new leader. */
  private expireQueued(request: MuxRequest): void {
    this.promoteFollower(request);
    this.fail(request, ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND, 'timeout');
  }

  /**
   * A queued leader leaves without being sent: its earliest follower (whose client is still there) takes its place as a
   * queued leader in its own client's queue, at its arrival position, and leads the rest.
   */
  private promoteFollower(leader: MuxRequest): void {
    const followers = leader.followers;
    leader.followers = undefined;
    if (followers === undefined) return;
    const staying: MuxRequest[] = [];
    for (const follower of followers) {
      follower.leader = undefined;
      if (follower.client.gone) this.complete(follower, null, 'client_gone');
      else staying.push(follower);
    }
    const next = staying.shift();
    if (next === undefined) return;
    next.state = 'queued';
    if (staying.length > 0) {
      next.followers = staying;
      for (const follower of staying) follower.leader = next;
    }
    if (leader.indexed) {
      this.modbus!.coalescing!.replace(leader.readKey!, leader, next);
      leader.indexed = false;
      next.indexed = true;
    }
    this.queue.insert(next.client, next, (queued) => queued.arrivedAt > next.arrivedAt);
  }

  /** A follower leaves its leader (its own deadline, or its client left). */
  private detach(follower: MuxRequest): void {
    const followers = follower.leader?.followers;
    follower.leader = undefined;
    if (followers === undefined) return;
    const index = followers.indexOf(follower);
    if (index >= 0) followers.splice(index, 1);
  }

  /** quietAfterTimeoutMs, quietAfterLocalReplyMs: keep the connection, send nothing and drop what arrives, then start a fresh decoder. */
  private beginQuiet(quietMs: number): void {
    clearTimeout(this.quietTimer);
    this.quietHeardSomething = false;
    this.quietTimer = setTimeout(() => {
      this.quietTimer = undefined;
      this.decoder = this.framer.upstreamDecoder();
      this.pump();
    }, quietMs);
  }

  private endQuiet(): void {
    clearTimeout(this.quietTimer);
    this.quietTimer = undefined;
  }

  /** The upstream became usable: a fresh decoder (nothing of the old stream survives), then send what waits. */
  onUpstreamUp(): void {
    this.endQuiet();
    this.decoder = this.framer.upstreamDecoder();
    this.consecutiveTimeouts = 0;
    this.gap.exchangeEnded();
    this.pump();
  }

  /**
   * The connection (or an attempt) ended. Requests that were sent get 0x0B: the device may have acted on them, so they are
   * never sent twice. If the upstream is now in backoff, queued requests get 0x0A (DESIGN §5); otherwise they wait for the
   * redial.
   */
  onUpstreamDown(): void {
    this.endQuiet();
    this.decoder = this.framer.upstreamDecoder();
    for (const request of [...this.inflight.values()]) {
      this.inflight.delete(request.upstreamId);
      this.fail(request, ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND, 'timeout');
    }
    if (this.options.upstream().state === 'backoff') this.failQueued(ExceptionCode.GATEWAY_PATH_UNAVAILABLE, 'unavailable');
  }

  /** Every queued request fails at once (upstream unreachable, or shutdown), and its followers with it. */
  failQueued(code: GatewayFailure, outcome: Outcome): void {
    for (const request of this.queue.drainAll()) this.fail(request, code, outcome);
  }

  /**
   * A client left: its queued requests are never sent (followers of them get a new leader), its joined reads leave their
   * leaders, and those in flight are answered into the void (their followers still get the answer).
   */
  onClientGone(client: MuxClientPort): void {
    for (const request of this.queue.removeAll(client)) {
      this.promoteFollower(request);
      this.complete(request, null, 'client_gone');
    }
    for (const request of [...client.outbox]) {
      if (request.state !== 'joined') continue;
      this.detach(request);
      this.complete(request, null, 'client_gone');
    }
  }

  stop(): void {
    this.gap.stop();
    this.endQuiet();
    for (const request of [...this.inflight.values()]) {
      clearTimeout(request.timer);
      for (const follower of request.followers ?? []) clearTimeout(follower.timer);
    }
    this.inflight.clear();
  }

  /** Answers a failure (a gateway exception, or a refusal's code); followers of `request` fail the same way. */
  private fail(request: MuxRequest, code: number, outcome: Outcome): void {
    const followers = request.followers;
    request.followers = undefined;
    this.complete(request, request.client.gone ? null : (this.framer.failure(request.frame, code) ?? null), outcome);
    for (const follower of followers ?? []) {
      follower.leader = undefined;
      this.fail(follower, code, outcome);
    }
  }

  private complete(request: MuxRequest, answer: Buffer | null, outcome: Outcome): void {
    if (request.state === 'done') return;
    if (request.indexed) {
      this.modbus!.coalescing!.remove(request.readKey!, request);
      request.indexed = false;
    }
    request.state = 'done';
    clearTimeout(request.timer);
    request.timer = undefined;
    request.answer = answer;
    const { client } = request;
    if (request.counted) {
      client.unanswered--;
      if (request.changesState) {
        client.pendingWrites--;
        client.lastWriteAnsweredTick = ++this.tick;
      }
    }
    const finalOutcome: Outcome = client.gone ? 'client_gone' : outcome;
    this.options.metrics.requests.inc({ protocol: this.protocol, outcome: finalOutcome });
    if (finalOutcome !== 'client_gone') {
      this.options.metrics.requestDuration.observe((performance.now() - request.arrivedAt) / 1000);
    }
    this.flush(client);
  }

  /** Writes answers in the client's request order; an answer that is null closes the client (nothing after it is sent). */
  private flush(client: MuxClientPort): void {
    const { outbox } = client;
    let released = false;
    while (outbox.length > 0 && outbox[0]!.state === 'done') {
      const request = outbox.shift()!;
      released = true;
      if (client.gone) continue;
      if (request.answer === null) {
        client.close('request failed and the protocol has no error reply');
        continue;
      }
      client.send(request.answer);
    }
    if (released) client.released();
  }
}
