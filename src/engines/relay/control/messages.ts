/**
 * The control protocol of switchboard's relay (DESIGN §7, docs/relay-protocol.md): the preamble, the JSON lines exchanged on
 * the agent's first stream, and the HMAC challenge. Pure: no sockets here.
 *
 *   agent → relay  TCP connect, then the 8 bytes PREAMBLE, then yamux (agent = client, odd ids)
 *   agent opens stream 1 (the control stream)
 *   relay → agent  {"type":"hello","proto":1,"auth":"hmac-sha256"|"none","nonce":"<64 hex>"}
 *   agent → relay  {"type":"auth","tag":"<64 hex>"}            (only when auth is hmac-sha256)
 *   agent → relay  {"type":"bind","port"?:N,"leaseId"?:"<hex>"}
 *   relay → agent  {"type":"bound","port":N,"leaseId":"<hex>","leaseTtlMs":N} | {"type":"error","code":…,"message":…}
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCodes, FrameError } from '../../../errors.js';

/** First bytes of a switchboard agent connection; anything else is a tcp-relay (muxado v1) service. */
export const PREAMBLE = Buffer.from('SWBMUX1\n', 'ascii');
/** Version of the control protocol in `hello.proto`. */
export const CONTROL_PROTOCOL_VERSION = 1;
/** A control line, newline included, is at most this long (bore's MAX_FRAME_LENGTH idea): a peer cannot make us buffer more. */
export const MAX_CONTROL_LINE_BYTES = 4096;
/** The preamble, hello, auth and bind must all be done within this long after the TCP connection is accepted. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Random bytes of a nonce and of a lease id. */
export const NONCE_BYTES = 32;
export const LEASE_ID_BYTES = 16;

export const AUTH_HMAC = 'hmac-sha256';
export type AuthScheme = typeof AUTH_HMAC | 'none';

export const CONTROL_ERROR_CODES = [
  'auth_failed',
  'port_in_use',
  'port_not_allowed',
  'pool_exhausted',
  /** A line that is not a valid message, or a message out of order. */
  'bad_request',
] as const;
export type ControlErrorCode = (typeof CONTROL_ERROR_CODES)[number];

export interface HelloMessage {
  type: 'hello';
  proto: number;
  auth: AuthScheme;
  nonce: string;
}
export interface AuthMessage {
  type: 'auth';
  tag: string;
}
export interface BindMessage {
  type: 'bind';
  port?: number;
  leaseId?: string;
}
export interface BoundMessage {
  type: 'bound';
  port: number;
  leaseId: string;
  leaseTtlMs: number;
}
export interface ErrorMessage {
  type: 'error';
  code: ControlErrorCode;
  message: string;
}
export type ControlMessage = HelloMessage | AuthMessage | BindMessage | BoundMessage | ErrorMessage;

export function encodeControl(message: ControlMessage): Buffer {
  return Buffer.from(`${JSON.stringify(message)}\n`, 'utf8');
}

const HEX = /^[0-9a-f]+$/;

/** Checks one decoded line; returns the message or a FrameError (never throws on network input). */
export function parseControl(line: string): ControlMessage | FrameError {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return new FrameError('control line is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return new FrameError('control line is not a JSON object');
  const m = value as Record<string, unknown>;
  const isPort = (p: unknown) => Number.isInteger(p) && (p as number) >= 0 && (p as number) <= 65535;
  switch (m.type) {
    case 'hello':
      if (typeof m.proto !== 'number' || (m.auth !== AUTH_HMAC && m.auth !== 'none') || typeof m.nonce !== 'string') break;
      return { type: 'hello', proto: m.proto, auth: m.auth, nonce: m.nonce };
    case 'auth':
      if (typeof m.tag !== 'string' || !HEX.test(m.tag)) break;
      return { type: 'auth', tag: m.tag };
    case 'bind': {
      if (m.port !== undefined && m.port !== null && !isPort(m.port)) break;
      if (m.leaseId !== undefined && m.leaseId !== null && (typeof m.leaseId !== 'string' || !HEX.test(m.leaseId))) break;
      const bind: BindMessage = { type: 'bind' };
      if (typeof m.port === 'number' && m.port !== 0) bind.port = m.port;
      if (typeof m.leaseId === 'string' && m.leaseId !== '') bind.leaseId = m.leaseId;
      return bind;
    }
    case 'bound':
      if (!isPort(m.port) || typeof m.leaseId !== 'string' || typeof m.leaseTtlMs !== 'number') break;
      return { type: 'bound', port: m.port as number, leaseId: m.leaseId, leaseTtlMs: m.leaseTtlMs };
    case 'error':
      if (typeof m.code !== 'string' || typeof m.message !== 'string') break;
      return { type: 'error', code: m.code as ControlErrorCode, message: m.message };
  }
  return new FrameError(`control message ${JSON.stringify(String(m.type)).slice(0, 40)} is unknown or malformed`);
}

/** Splits a byte stream into control lines of at most MAX_CONTROL_LINE_BYTES. */
export class ControlLineDecoder {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): { messages: ControlMessage[]; error?: FrameError } {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const messages: ControlMessage[] = [];
    for (;;) {
      const newline = this.pending.indexOf(0x0a);
      if (newline < 0) {
        if (this.pending.length >= MAX_CONTROL_LINE_BYTES) {
          return { messages, error: new FrameError(`control line longer than ${MAX_CONTROL_LINE_BYTES} bytes`, ErrorCodes.FRAME_TOO_LARGE) };
        }
        return { messages };
      }
      if (newline + 1 > MAX_CONTROL_LINE_BYTES) {
        return { messages, error: new FrameError(`control line longer than ${MAX_CONTROL_LINE_BYTES} bytes`, ErrorCodes.FRAME_TOO_LARGE) };
      }
      const line = this.pending.subarray(0, newline).toString('utf8').replace(/\r$/, '');
      this.pending = this.pending.subarray(newline + 1);
      const parsed = parseControl(line);
      if (parsed instanceof FrameError) return { messages, error: parsed };
      messages.push(parsed);
    }
  }
}

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('hex');
}

export function newLeaseId(): string {
  return randomBytes(LEASE_ID_BYTES).toString('hex');
}

/** The agent's proof: HMAC-SHA256 keyed by the secret (UTF-8) over the nonce exactly as sent (its ASCII hex text), in hex. */
export function authTag(secret: string, nonce: string): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(Buffer.from(nonce, 'ascii')).digest('hex');
}

/** Constant-time check of an agent's tag (lengths are public: both are 64 hex digits when valid). */
export function verifyAuthTag(secret: string, nonce: string, tag: string): boolean {
  const expected = Buffer.from(authTag(secret, nonce), 'hex');
  const given = Buffer.from(tag, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Constant-time equality of two lease ids (hex text). */
export function sameLeaseId(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
