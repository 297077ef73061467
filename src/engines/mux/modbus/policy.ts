/**
 * Modbus request screening for mux mode (DESIGN §5): READ_ONLY as a function-code allow-list, WRITE_ALLOW address ranges
 * for the writes that may still pass, and UNIT_MAP. Pure: a request's unit id and PDU in, a decision out.
 *
 * WRITE_ALLOW rules, as README states them:
 *   - the unit id is the CLIENT's unit id, as the user's clients (the energy manager) address the device; UNIT_MAP is
 *     applied after screening, so `UNIT_MAP=1=0 WRITE_ALLOW=1:40000-40010` allows writes the client sends to unit 1;
 *   - addresses are protocol addresses (the 0-65535 on the wire, not the 4xxxx register notation), and one range covers
 *     coils (FC 5, 15) and holding registers (FC 6, 16, 22, 23) alike;
 *   - every address a write touches must be allowed (ranges of one unit that overlap or touch are merged), else the
 *     write is refused whole; a malformed write (its reach cannot be told) is refused;
 *   - FC 23 (read/write multiple registers) is judged by its write half; its read half is a read.
 */
import type { WriteAllowRange } from '../../../config/modes/mux.js';
import { ExceptionCode, isReadRequest, isWriteFunction, parseWriteRange } from '../../../protocols/modbus-tcp.js';

export interface ModbusPolicyOptions {
  readOnly: boolean;
  writeAllow: readonly WriteAllowRange[];
}

/** Whether a request may change the device: anything that is not on the read allow-list (FC 8 and vendor codes included). */
export function changesState(pdu: Buffer): boolean {
  return !isReadRequest(pdu);
}

/** The unit id the device sees: UNIT_MAP's device unit, or the client's own. */
export function upstreamUnitOf(clientUnit: number, unitMap: ReadonlyMap<number, number>): number {
  return unitMap.get(clientUnit) ?? clientUnit;
}

/** Per unit, the allowed ranges sorted and merged where they overlap or touch. */
function mergeByUnit(ranges: readonly WriteAllowRange[]): Map<number, Array<{ first: number; last: number }>> {
  const byUnit = new Map<number, Array<{ first: number; last: number }>>();
  for (const { unit, first, last } of ranges) {
    const list = byUnit.get(unit) ?? [];
    list.push({ first, last });
    byUnit.set(unit, list);
  }
  for (const [unit, list] of byUnit) {
    list.sort((a, b) => a.first - b.first);
    const merged: Array<{ first: number; last: number }> = [];
    for (const range of list) {
      const previous = merged[merged.length - 1];
      if (previous !== undefined && range.first <= previous.last + 1) previous.last = Math.max(previous.last, range.last);
      else merged.push({ ...range });
    }
    byUnit.set(unit, merged);
  }
  return byUnit;
}

export class ModbusPolicy {
  private readonly allowed: Map<number, Array<{ first: number; last: number }>>;

  constructor(private readonly options: ModbusPolicyOptions) {
    this.allowed = mergeByUnit(options.writeAllow);
  }

  /**
   * The exception code to refuse a request with (0x01 ILLEGAL FUNCTION), or undefined when it may reach the device.
   * `clientUnit` is the unit id as the client sent it.
   */
  refusal(clientUnit: number, pdu: Buffer): number | undefined {
    if (!this.options.readOnly || isReadRequest(pdu)) return undefined;
    const functionCode = pdu[0];
    if (functionCode !== undefined && isWriteFunction(functionCode)) {
      const range = parseWriteRange(pdu);
      const ranges = this.allowed.get(clientUnit);
      if (range !== undefined && ranges?.some((allowed) => allowed.first <= range.first && range.last <= allowed.last)) {
        return undefined;
      }
    }
    return ExceptionCode.ILLEGAL_FUNCTION;
  }
}
