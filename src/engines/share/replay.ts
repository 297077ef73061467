/**
 * REPLAY_BYTES: the last N bytes of upstream output, one ring for all clients. Each upstream chunk is copied in once (its
 * tail only, when it is longer than the ring); a joining client gets one copy of the ring's content, so the ring can keep
 * being overwritten while that copy is still queued in the client's socket.
 */
export class ReplayRing {
  private readonly ring: Buffer;
  /** Where the next byte goes. */
  private head = 0;
  /** Bytes held, at most capacity. */
  private filled = 0;

  constructor(readonly capacity: number) {
    this.ring = Buffer.allocUnsafe(capacity);
  }

  get length(): number {
    return this.filled;
  }

  push(chunk: Buffer): void {
    const capacity = this.capacity;
    if (capacity === 0) return;
    // Only the last `capacity` bytes of the chunk can survive.
    const data = chunk.length > capacity ? chunk.subarray(chunk.length - capacity) : chunk;
    const firstPart = Math.min(data.length, capacity - this.head);
    data.copy(this.ring, this.head, 0, firstPart);
    if (firstPart < data.length) data.copy(this.ring, 0, firstPart);
    this.head = (this.head + data.length) % capacity;
    this.filled = Math.min(capacity, this.filled + data.length);
  }

  /** The bytes held, oldest first, in a Buffer of their own; empty when nothing is held. */
  snapshot(): Buffer {
    const out = Buffer.allocUnsafe(this.filled);
    const start = (this.head - this.filled + this.capacity) % (this.capacity || 1);
    const firstPart = Math.min(this.filled, this.capacity - start);
    this.ring.copy(out, 0, start, start + firstPart);
    if (firstPart < this.filled) this.ring.copy(out, firstPart, 0, this.filled - firstPart);
    return out;
  }
}
