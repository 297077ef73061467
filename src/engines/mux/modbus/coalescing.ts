/**
 * COALESCE (DESIGN §5): a read (FC 1-4) joins an identical read (same device unit, function, address, quantity) that is
 * still queued, or that is in flight and was sent after this client's last write was answered; so a client always reads
 * its own writes. The joined read (a follower) takes no queue slot and no upstream transaction: it completes from its
 * leader's answer, readdressed to its own transaction id and unit id.
 *
 * This file keeps the leaders by key and chooses which one a newcomer may join; the dispatcher owns their lifecycle.
 * Time is a tick: a counter the dispatcher advances on every send and every answered write, so "sent after" is exact.
 */

export interface CoalescingLeader {
  readonly state: 'queued' | 'inflight' | 'joined' | 'done';
  /** Tick at which it was sent upstream (meaningful while inflight). */
  readonly sentTick: number;
}

export class CoalescingIndex<R extends CoalescingLeader> {
  /** Leaders per key: usually one; two when a read-your-writes reader could not join an in-flight one. */
  private readonly leaders = new Map<string, R[]>();

  get size(): number {
    return this.leaders.size;
  }

  add(key: string, leader: R): void {
    const list = this.leaders.get(key);
    if (list === undefined) this.leaders.set(key, [leader]);
    else list.push(leader);
  }

  remove(key: string, leader: R): void {
    const list = this.leaders.get(key);
    if (list === undefined) return;
    const index = list.indexOf(leader);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.leaders.delete(key);
  }

  replace(key: string, old: R, next: R): void {
    const list = this.leaders.get(key);
    const index = list?.indexOf(old) ?? -1;
    if (list !== undefined && index >= 0) list[index] = next;
    else this.add(key, next);
  }

  /**
   * The leader a read with `key` may join, given the tick at which its client's last write was answered (0 if never):
   * the earliest-sent in-flight one sent after that tick (its answer comes first), else a queued one; undefined if none.
   */
  find(key: string, lastWriteAnsweredTick: number): R | undefined {
    const list = this.leaders.get(key);
    if (list === undefined) return undefined;
    let inflight: R | undefined;
    let queued: R | undefined;
    for (const leader of list) {
      if (leader.state === 'inflight' && leader.sentTick > lastWriteAnsweredTick) {
        if (inflight === undefined || leader.sentTick < inflight.sentTick) inflight = leader;
      } else if (leader.state === 'queued') {
        queued ??= leader;
      }
    }
    return inflight ?? queued;
  }
}

/**
 * A copy of a Modbus TCP answer ADU with another transaction id and unit id (a follower's or a cache hit's own ids).
 * Always a copy: the original may already be queued on another client's socket.
 */
export function readdress(answer: Buffer, transactionId: number, unitId: number): Buffer {
  const copy = Buffer.from(answer);
  copy.writeUInt16BE(transactionId, 0); // MBAP transaction id (Implementation Guide §3.1.3)
  copy.writeUInt8(unitId, 6); // MBAP unit id
  return copy;
}
