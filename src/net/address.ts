/**
 * Address parsing shared by every setting that names a peer (`host:port`, `group:host:port`, `[::1]:port`) and by every
 * place that shows or matches a remote address. Pure functions; they throw AddressError with a short "expected" text that the
 * config reporter turns into `NAME="value" is not …; e.g. NAME=…`.
 */
import { isIP } from 'node:net';

export class AddressError extends Error {}

export interface HostPort {
  host: string;
  port: number;
}

export interface GroupAddress extends HostPort {
  groupId: string;
}

const MAX_PORT = 65535;

/** `::ffff:10.0.0.1` → `10.0.0.1`: a `::` listener reports IPv4 clients as mapped addresses; people and configs use IPv4. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return '';
  const lower = address.toLowerCase();
  if (lower.startsWith('::ffff:') && isIP(address.slice(7)) === 4) return address.slice(7);
  return address;
}

/** `1.2.3.4:5` or `[::1]:5`: brackets are needed around IPv6 so that the last colon separates the port. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export function parsePort(text: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new AddressError(`"${text}" is not a port number (0-65535)`);
  const port = Number(text);
  if (port > MAX_PORT) throw new AddressError(`port ${port} is above 65535`);
  return port;
}

/**
 * Splits `host:port` where host may be `[v6]`. A bare IPv6 address without brackets is refused because its last group
 * cannot be told apart from a port.
 */
export function parseHostPort(text: string): HostPort {
  const trimmed = text.trim();
  let host: string;
  let portText: string;
  if (trimmed.startsWith('[')) {
    const close = trimmed.indexOf(']');
    if (close < 0 || trimmed[close + 1] !== ':') throw new AddressError(`"${trimmed}" is not [ipv6]:port`);
    host = trimmed.slice(1, close);
    portText = trimmed.slice(close + 2);
    if (isIP(host) !== 6) throw new AddressError(`"${host}" is not an IPv6 address`);
  } else {
    const colon = trimmed.lastIndexOf(':');
    if (colon <= 0) throw new AddressError(`"${trimmed}" is not host:port`);
    host = trimmed.slice(0, colon);
    portText = trimmed.slice(colon + 1);
    if (host.includes(':')) throw new AddressError(`"${trimmed}" has an IPv6 address without brackets; write [${host}]:${portText}`);
    if (!isValidHostname(host) && isIP(host) === 0) throw new AddressError(`"${host}" is not a host name or IP address`);
  }
  return { host: normalizeAddress(host), port: parsePort(portText) };
}

/** `group:host:port`. The group id is everything before the first colon (it may be empty, as an empty group id is valid). */
export function parseGroupAddress(text: string): GroupAddress {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  if (colon < 0) throw new AddressError(`"${trimmed}" is not group:host:port`);
  const groupId = trimmed.slice(0, colon);
  const rest = trimmed.slice(colon + 1);
  if (!rest.includes(':')) throw new AddressError(`"${trimmed}" is not group:host:port`);
  return { groupId, ...parseHostPort(rest) };
}

/** A comma-separated list; empty entries (a trailing comma, an empty setting) are ignored. */
export function parseList<T>(text: string, parseEntry: (entry: string) => T): T[] {
  return text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0)
    .map(parseEntry);
}

function isValidHostname(host: string): boolean {
  // RFC 1123 labels; underscores are tolerated because container and compose service names use them.
  return host.length <= 253 && /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/.test(host);
}
