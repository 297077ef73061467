/**
 * Exponential backoff with jitter for every outgoing connection (mux and share upstreams, dialled group members, agents).
 * "Equal jitter": half the delay is fixed, half random, so reconnects of many instances spread out but never fire at once.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call doubles the base up to maxMs. */
  next(): number {
    const base = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(base / 2 + (base / 2) * this.random());
  }

  /** After a success: the next failure starts again from minMs. */
  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
