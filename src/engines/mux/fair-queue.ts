/**
 * Per-client FIFOs served round-robin (DESIGN §5): each turn takes one request from the next client that has any, so a
 * client that floods cannot starve one that polls. Only clients with queued requests are in the ring.
 */
export interface QueueOwner<R> {
  /** Requests of this client not yet sent, in arrival order. */
  readonly queue: R[];
  /** Whether the owner is in the ring (kept on the owner so membership is O(1)). */
  inRing: boolean;
}

export class FairQueue<R, C extends QueueOwner<R>> {
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
      // Joining just before the cursor puts a newcomer at the back: every client already waiting gets a turn first.
      this.ring.splice(this.cursor, 0, owner);
      this.cursor++;
    }
  }

  /** The next request in round-robin order, removed from its client's queue. */
  shift(): R | undefined {
    while (this.ring.length > 0) {
      if (this.cursor >= this.ring.length) this.cursor = 0;
      const owner = this.ring[this.cursor]!;
      const request = owner.queue.shift();
      if (owner.queue.length === 0) this.leave(this.cursor);
      else this.cursor++;
      if (request !== undefined) {
        this.count--;
        return request;
      }
    }
    return undefined;
  }

  /** Removes one queued request (its deadline passed). */
  remove(owner: C, request: R): boolean {
    const index = owner.queue.indexOf(request);
    if (index < 0) return false;
    owner.queue.splice(index, 1);
    this.count--;
    if (owner.queue.length === 0 && owner.inRing) this.leave(this.ring.indexOf(owner));
    return true;
  }

  /** Removes every queued request of a client and returns them (the client has gone). */
  removeAll(owner: C): R[] {
    const removed = owner.queue.splice(0);
    this.count -= removed.length;
    if (owner.inRing) this.leave(this.ring.indexOf(owner));
    return removed;
  }

  /** Every queued request, round by round (used to fail them all at once). */
  drainAll(): R[] {
    const all: R[] = [];
    for (let request = this.shift(); request !== undefined; request = this.shift()) all.push(request);
    return all;
  }

  private leave(index: number): void {
    const owner = this.ring[index]!;
    owner.inRing = false;
    this.ring.splice(index, 1);
    if (index < this.cursor) this.cursor--;
  }
}
