/**
 * What the relay needs from an agent's session, whichever protocol it speaks: a switchboard agent (yamux) or a tcp-relay
 * service (muxado v1). One visitor = one stream opened by the relay.
 */
import type { Duplex } from 'node:stream';
import { YamuxSession } from './yamux/session.js';
import type { Muxado1Session } from './muxado1/session.js';

export interface Tunnel {
  readonly protocol: 'yamux' | 'muxado1';
  /** The agent's address, for logs and /status. */
  readonly agent: string;
  readonly closed: boolean;
  /** A new stream towards the agent, or the error that prevents it (session closing, peer GoAway, stream limit). */
  openStream(): Duplex | Error;
  /** No new streams; close once the open ones finish or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void>;
  close(): void;
  onClose(listener: () => void): void;
}

export class YamuxTunnel implements Tunnel {
  readonly protocol = 'yamux';
  constructor(
    readonly session: YamuxSession,
    readonly agent: string,
  ) {}
  get closed(): boolean {
    return this.session.closed;
  }
  openStream(): Duplex | Error {
    try {
      return this.session.openStream();
    } catch (error) {
      return error as Error;
    }
  }
  drain(timeoutMs: number): Promise<void> {
    return this.session.drain(timeoutMs);
  }
  close(): void {
    this.session.close();
  }
  onClose(listener: () => void): void {
    if (this.session.closed) process.nextTick(listener);
    else this.session.once('close', () => listener());
  }
}

export class Muxado1Tunnel implements Tunnel {
  readonly protocol = 'muxado1';
  constructor(
    readonly session: Muxado1Session,
    readonly agent: string,
  ) {}
  get closed(): boolean {
    return this.session.closed;
  }
  openStream(): Duplex | Error {
    return this.session.openStream();
  }
  drain(timeoutMs: number): Promise<void> {
    if (this.session.closed) return Promise.resolve();
    this.session.goAway();
    return new Promise((resolve) => {
      const finish = (): void => {
        clearInterval(poll);
        clearTimeout(timer);
        this.session.close();
        resolve();
      };
      // muxado1's session has no drain of its own: poll for its streams to finish (visitors are few and this runs once).
      const poll = setInterval(() => {
        if (this.session.streamCount === 0 || this.session.closed) finish();
      }, 50);
      const timer = setTimeout(finish, timeoutMs);
      timer.unref();
      poll.unref();
    });
  }
  close(): void {
    this.session.close();
  }
  onClose(listener: () => void): void {
    if (this.session.closed) process.nextTick(listener);
    else this.session.once('close', () => listener());
  }
}
