/**
 * Per-client FIFOs served round-robin (DESIGN §5), so a client that floods cannot starve one that polls, with the "sparse
 * flow" rule of fq_codel (RFC 8290 §4.1): a client that had nothing queued is served next, ahead of the round. Without it
 * a poll waits for the exchange in flight, then a turn of every backlogged client, then its own; with it, for the
 * exchange in flight and its own (issue 6 measures this in `npm run bench:modbus`).
 *
 * The rule cannot be gamed by emptying and refilling a queue: a client served from the fresh list moves to the back of
 * the ring and stays there while empty; only when the round comes back to it and finds it empty does it leave, and only
 * then can its next request count as fresh again. A client that keeps a request queued is served once per round.
 */
export interface QueueOwner<R> {
  /** Requests of this client not yet sent, in arrival order. */
  readonly queue: R[];
  /** Whether the owner is scheduled (fresh list or ring), kept on the owner so membership is O(1). */
  inRing: boolean;
}

export class FairQueue<R, C extends QueueOwner<R>> {
  /** Clients that had nothing queued when their request arrived, in arrival order: served before the ring. */
  private readonly fresh: C[] = [];
  private readonly ring: C[] = [];
  private cursor = 0;
  private count = 0;

  /** Requests queued across all clients. */
  get size(): number {
    return this.count;
  }

  push(owner: C, request: R): void {
    owner.queue.push(request);
    this.count++;
    if (!owner.inRing) {
      owner.inRing = true;
      this.fresh.push(owner);
    }
  }

  /**
   * Puts a request into its owner's queue before the first queued one for which `before` is true, or at the end (a
   * coalesced read promoted to leader keeps its place in its client's order).
   */
  insert(owner: C, request: R, before: (queued: R) => boolean): void {
    const index = owner.queue.findIndex(before);
    if (index < 0) {
      this.push(owner, request);
      return;
    }
    owner.queue.splice(index, 0, request); // the owner has queued requests, so it is in the ring already
    this.count++;
  }

  /** The next request: a fresh client's first, otherwise round-robin; removed from its client's queue. */
  shift(): R | undefined {
    while (this.fresh.length > 0) {
      const owner = this.fresh.shift()!;
      // Scheduled on: at the back of the round (just behind the cursor), where an empty queue is noticed later.
      this.ring.splice(this.cursor, 0, owner);
      this.cursor++;
      const request = owner.queue.shift();
      if (request !== undefined) {
        this.count--;
        return request;
      }
    }
    while (this.ring.length > 0) {
      if (this.cursor >= this.ring.length) this.cursor = 0;
      const owner = this.ring[this.cursor]!;
      const request = owner.queue.shift();
      if (request === undefined) {
        // The round came back to an empty client: it leaves, and its next request is fresh.
        this.leave(owner);
        continue;
      }
      this.cursor++;
      this.count--;
      return request;
    }
    return undefined;
  }

  /** Removes one queued request (its deadline passed). The owner stays scheduled until the round finds it empty. */
  remove(owner: C, request: R): boolean {
    const index = owner.queue.indexOf(request);
    if (index < 0) return false;
    owner.queue.splice(index, 1);
    this.count--;
    return true;
  }

  /** Removes every queued request of a client and the client itself, and returns the requests (the client has gone). */
  removeAll(owner: C): R[] {
    const removed = owner.queue.splice(0);
    this.count -= removed.length;
    if (owner.inRing) this.leave(owner);
    return removed;
  }

  /** Every queued request, round by round (used to fail them all at once). */
  drainAll(): R[] {
    const all: R[] = [];
    for (let request = this.shift(); request !== undefined; request = this.shift()) all.push(request);
    return all;
  }

  private leave(owner: C): void {
    owner.inRing = false;
    const fresh = this.fresh.indexOf(owner);
    if (fresh >= 0) {
      this.fresh.splice(fresh, 1);
      return;
    }
    const index = this.ring.indexOf(owner);
    if (index < 0) return;
    this.ring.splice(index, 1);
    if (index < this.cursor) this.cursor--;
  }
}
