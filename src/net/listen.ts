/**
 * Listener start/stop for every mode: HOST fallback from `::` to `0.0.0.0`, MAX_CLIENTS, NODELAY and keepalive on every
 * data socket, connection metrics, and a socket error handler so that a reset never reaches the process.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Socket as UdpSocket } from 'node:dgram';
import { ErrorCodes, SwitchboardError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { normalizeAddress } from './address.js';

/** TCP keepalive probe delay: long enough to cost nothing, short enough to find vanished peers within minutes. */
export const KEEPALIVE_INITIAL_DELAY_MS = 30_000;

export interface ListenerInfo {
  name: string;
  protocol: 'tcp' | 'udp';
  host: string;
  port: number;
}

/** Errors that mean "this host has no IPv6": `::` then falls back to 0.0.0.0 (DESIGN §1, HOST). */
const NO_IPV6 = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL']);

/**
 * Binds with `bind(host)`; if host is `::` and the host has IPv6 disabled, binds `0.0.0.0` instead and logs it. Returns the
 * host actually bound.
 */
export async function bindWithFallback(host: string, bind: (host: string) => Promise<void>, log: Logger): Promise<string> {
  try {
    await bind(host);
    return host;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (host !== '::' || !code || !NO_IPV6.has(code)) throw error;
    log.warn({ code }, 'IPv6 is not available on this host; listening on 0.0.0.0 instead of ::');
    await bind('0.0.0.0');
    return '0.0.0.0';
  }
}

/** Every data socket: no Nagle delay (small request/reply protocols), keepalive (half-open peers are found). */
export function tuneSocket(socket: Socket): void {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
}

export function remoteAddressOf(socket: Socket): string {
  return normalizeAddress(socket.remoteAddress);
}

export interface TcpListenerOptions {
  name: string;
  mode: string;
  host: string;
  port: number;
  maxClients: number;
  log: Logger;
  metrics: Metrics;
  onConnection: (socket: Socket) => void;
}

export class TcpListener {
  readonly connections = new Set<Socket>();
  private readonly server: Server;
  private boundHost = '';

  constructor(private readonly options: TcpListenerOptions) {
    this.server = createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_INITIAL_DELAY_MS });
    this.server.on('connection', (socket) => this.accept(socket));
    this.server.on('error', (error) => options.log.error({ err: error, listener: options.name }, 'listener error'));
  }

  async start(): Promise<void> {
    const { host, port, name, log } = this.options;
    try {
      this.boundHost = await bindWithFallback(
        host,
        (bindHost) =>
          new Promise<void>((resolve, reject) => {
            const onError = (error: Error) => reject(error);
            this.server.once('error', onError);
            // ipv6Only false: `::` also takes IPv4 clients, shown as ::ffff:a.b.c.d and normalised.
            this.server.listen({ host: bindHost, port, ipv6Only: false }, () => {
              this.server.off('error', onError);
              resolve();
            });
          }),
        log,
      );
    } catch (error) {
      throw new SwitchboardError(
        ErrorCodes.LISTEN,
        `${name} listener cannot bind ${host}:${port}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    log.info({ listener: name, protocol: 'tcp', host: this.boundHost, port: this.port }, 'listening');
  }

  get port(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? this.options.port;
  }

  info(): ListenerInfo {
    return { name: this.options.name, protocol: 'tcp', host: this.boundHost || this.options.host, port: this.port };
  }

  /**
   * Stops accepting; open connections stay until the engine closes them. (server.close()'s callback waits for every
   * connection to end, so it is not awaited: the listening socket itself is closed synchronously.)
   */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
  }

  private accept(socket: Socket): void {
    const { maxClients, metrics, mode, name, onConnection, log } = this.options;
    socket.on('error', (error) => log.debug({ err: error, listener: name }, 'client socket error'));
    if (this.connections.size >= maxClients) {
      metrics.connectionsRejected.inc({ reason: 'max_clients' });
      log.debug({ listener: name, client: remoteAddressOf(socket) }, 'MAX_CLIENTS reached; connection closed');
      socket.destroy();
      return;
    }
    tuneSocket(socket);
    this.connections.add(socket);
    metrics.connectionsTotal.inc({ mode, listener: name });
    metrics.connectionsActive.inc({ mode, listener: name });
    socket.once('close', () => {
      this.connections.delete(socket);
      metrics.connectionsActive.dec({ mode, listener: name });
    });
    onConnection(socket);
  }
}

export async function bindUdp(socket: UdpSocket, host: string, port: number, log: Logger, name: string): Promise<string> {
  try {
    return await bindWithFallback(
      host,
      (bindHost) =>
        new Promise<void>((resolve, reject) => {
          const onError = (error: Error) => reject(error);
          socket.once('error', onError);
          socket.bind({ address: bindHost, port }, () => {
            socket.off('error', onError);
            resolve();
          });
        }),
      log,
    );
  } catch (error) {
    throw new SwitchboardError(ErrorCodes.LISTEN, `${name} listener cannot bind ${host}:${port}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
