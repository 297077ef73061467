/**
 * Ports for peers that must be told their port before they listen (socat, pymodbus, Go peers, REQUEST_PORT), shared by
 * the tests and the benchmarks.
 *
 * They are chosen below the kernel's ephemeral range (net.ipv4.ip_local_port_range). A port inside it that was free a
 * moment ago can be handed to someone else before the peer binds it: the test file running beside this one listens on
 * port 0 and opens connections all the time. That happened in CI: socat could not bind its port, another test's
 * listener got it, and switchboard dialled that listener instead of socat. Below the range, ports are only ever taken
 * by explicit binds, which this function checks for.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port handed out here; below it sit well-known services (and 0-1023 need privileges). */
const LOWEST = 10_000;

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768; // Linux's default
  }
}

function canListen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** A port on `host` that nothing listens on and that the kernel does not hand out by itself. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const high = ephemeralLow();
  if (high - LOWEST < 1000) throw new Error(`freePort: the ephemeral range starts at ${high}, too low to choose below it`);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (high - LOWEST));
    if (await canListen(port, host)) return port;
  }
  throw new Error(`freePort: no free port found between ${LOWEST} and ${high}`);
}
