/**
 * CACHE_TTL_MS (DESIGN §5): answers to FC 1-4 reads kept by key (device unit, function, address, quantity) with the time
 * the device answered; a read finds an entry at most CACHE_TTL_MS old. A write sent to a unit clears that unit's entries
 * and bumps the unit's epoch; a reply is stored only if no write to its unit was sent after its read was sent (same
 * epoch), so a client that writes and then reads always sees its write. A write to unit 0 (a broadcast on serial lines,
 * "the device itself" on many TCP gateways) clears everything.
 *
 * Pure: time comes in as arguments (performance.now() in the engine). Bounded: at most `maxEntries`, the oldest dropped.
 */

/** Enough for every distinct read of many dashboards; each entry is at most one 260-byte ADU plus the key. */
export const CACHE_MAX_ENTRIES = 10_000;

/** The broadcast unit id (Modbus over serial line V1.02 §2.2). */
const BROADCAST_UNIT = 0;

export interface CacheEntry {
  /** The answer as a client receives it (a Modbus TCP ADU); readdress it before sending. */
  readonly answer: Buffer;
  /** When the device answered (ms, same clock as `now`). */
  readonly storedAt: number;
  /** The dispatcher's tick when the read was sent (read-your-writes: compared with a client's last answered write). */
  readonly sentTick: number;
}

export class ReadCache {
  /** In insertion order, which is storedAt order (a refreshed key is deleted and inserted again). */
  private readonly entries = new Map<string, CacheEntry & { unit: number }>();
  private readonly epochs = new Map<number, number>();
  private globalEpoch = 0;

  constructor(
    readonly ttlMs: number,
    private readonly maxEntries = CACHE_MAX_ENTRIES,
  ) {}

  /** The unit's write epoch: changes whenever a write to it (or a broadcast) is sent. */
  epochOf(unit: number): number {
    return (this.epochs.get(unit) ?? 0) + this.globalEpoch;
  }

  /** A write to `unit` is being sent: its entries go, and replies to reads sent before now are not stored. */
  writeSent(unit: number): void {
    if (unit === BROADCAST_UNIT) {
      this.globalEpoch++;
      this.entries.clear();
      return;
    }
    this.epochs.set(unit, (this.epochs.get(unit) ?? 0) + 1);
    for (const [key, entry] of this.entries) if (entry.unit === unit) this.entries.delete(key);
  }

  /** A fresh entry for `key`, or undefined. */
  get(key: string, now: number): CacheEntry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (now - entry.storedAt > this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /**
   * Stores a read's answer unless a write to its unit was sent after the read was (`epochAtSend` differs from now).
   * Returns whether it was stored.
   */
  store(key: string, unit: number, answer: Buffer, epochAtSend: number, sentTick: number, now: number): boolean {
    if (epochAtSend !== this.epochOf(unit)) return false;
    this.entries.delete(key);
    this.entries.set(key, { answer: Buffer.from(answer), storedAt: now, sentTick, unit });
    this.prune(now);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return true;
  }

  /** /status `cache`: live entries and the age of the oldest (null when empty). */
  status(now: number): { entries: number; oldestAgeMs: number | null } {
    this.prune(now);
    const oldest = this.entries.values().next().value;
    return { entries: this.entries.size, oldestAgeMs: oldest === undefined ? null : Math.round(now - oldest.storedAt) };
  }

  /** Drops expired entries from the old end. */
  private prune(now: number): void {
    for (const [key, entry] of this.entries) {
      if (now - entry.storedAt <= this.ttlMs) break;
      this.entries.delete(key);
    }
  }
}
