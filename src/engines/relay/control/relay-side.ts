/**
 * The relay's half of the control stream (docs/relay-protocol.md): hello with a fresh nonce, the agent's auth tag checked
 * in constant time, then bind requests answered at once with bound or error. Runs once per agent session.
 */
import type { Logger } from '../../../log.js';
import type { YamuxSession, YamuxStream } from '../yamux/session.js';
import {
  AUTH_HMAC,
  CONTROL_PROTOCOL_VERSION,
  ControlLineDecoder,
  encodeControl,
  newNonce,
  verifyAuthTag,
  type BindMessage,
  type ControlErrorCode,
  type ControlMessage,
} from './messages.js';

export type BindResult = { port: number; leaseId: string; leaseTtlMs: number } | { code: ControlErrorCode; message: string };

export interface RelayControlOptions {
  /** Undefined = AUTH=none. */
  authSecret: string | undefined;
  /** Allocates or re-attaches a public port; must answer promptly (no waiting for ports to free up). */
  bind: (request: BindMessage) => Promise<BindResult>;
  log: Logger;
}

type State = 'await_auth' | 'await_bind' | 'binding' | 'bound' | 'closing';

/**
 * Serves the control stream the agent opened. Resolves true once bound (the session then carries visitors), false when
 * the agent failed to authenticate or broke the protocol (the session is closed by then).
 */
export function serveControl(session: YamuxSession, control: YamuxStream, options: RelayControlOptions): Promise<boolean> {
  const { authSecret, log } = options;
  const nonce = newNonce();
  const decoder = new ControlLineDecoder();
  let state: State = authSecret === undefined ? 'await_bind' : 'await_auth';

  return new Promise<boolean>((resolve) => {
    let settled = false;
    const settle = (bound: boolean): void => {
      if (settled) return;
      settled = true;
      resolve(bound);
    };
    const send = (message: ControlMessage, then?: () => void): void => {
      if (!control.writable) return;
      control.write(encodeControl(message), then ? () => then() : undefined);
    };
    /** An error that ends the session: the line is flushed to the transport first, then GoAway and close. */
    const fatal = (code: ControlErrorCode, message: string): void => {
      state = 'closing'; // nothing more is read
      // Settled (and the session closed) only once the line is on the transport; if the write never completes because
      // the peer does not read, the session's write timeout ends it and 'close' settles.
      send({ type: 'error', code, message }, () => {
        session.close();
        settle(false);
      });
    };

    control.on('error', (error) => {
      log.debug({ err: error }, 'control stream error');
      if (!settled) session.close();
      settle(false);
    });
    control.on('end', () => {
      // The agent closed its control stream: an agent that is not bound yet has given up.
      if (state !== 'bound' && state !== 'closing') {
        session.close();
        settle(false);
      }
    });
    session.once('close', () => settle(false));

    const onMessage = async (message: ControlMessage): Promise<void> => {
      switch (state) {
        case 'await_auth':
          if (message.type !== 'auth') {
            log.warn({ code: 'auth_failed', got: message.type }, 'agent did not authenticate; session closed');
            fatal('auth_failed', 'authenticate first: send {"type":"auth","tag":…}');
            return;
          }
          if (!verifyAuthTag(authSecret!, nonce, message.tag)) {
            log.warn({ code: 'auth_failed' }, 'agent failed authentication (wrong AUTH_SECRET?); session closed');
            fatal('auth_failed', 'authentication failed');
            return;
          }
          state = 'await_bind';
          return;
        case 'await_bind': {
          if (message.type === 'auth') return; // with AUTH=none an auth line is harmless; ignore it
          if (message.type !== 'bind') {
            fatal('bad_request', `expected bind, got ${message.type}`);
            return;
          }
          state = 'binding';
          const result = await options.bind(message);
          if (session.closed) return settle(false);
          if ('code' in result) {
            // Not fatal: the agent may ask again (another port, or later).
            state = 'await_bind';
            log.info({ code: result.code, requestedPort: message.port }, `bind refused: ${result.message}`);
            send({ type: 'error', code: result.code, message: result.message });
            return;
          }
          state = 'bound';
          send({ type: 'bound', port: result.port, leaseId: result.leaseId, leaseTtlMs: result.leaseTtlMs });
          settle(true);
          return;
        }
        case 'binding':
          fatal('bad_request', 'one bind at a time');
          return;
        case 'bound':
          send({ type: 'error', code: 'bad_request', message: 'already bound' });
          return;
        case 'closing':
          return;
      }
    };

    // Messages are handled one at a time, in order, even though a bind awaits the port allocation.
    let chain = Promise.resolve();
    control.on('data', (chunk: Buffer) => {
      const { messages, error } = decoder.push(chunk);
      for (const message of messages) chain = chain.then(() => onMessage(message));
      if (error) {
        chain = chain.then(() => {
          log.warn({ code: error.code }, `bad control line from agent: ${error.message}; session closed`);
          fatal('bad_request', error.message);
        });
      }
    });

    send({ type: 'hello', proto: CONTROL_PROTOCOL_VERSION, auth: authSecret === undefined ? 'none' : AUTH_HMAC, nonce });
  });
}
