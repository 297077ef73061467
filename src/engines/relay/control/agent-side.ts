/**
 * The agent's half of the control stream: wait for hello, answer the challenge, ask for a port, and return what the relay
 * said. Pure protocol over a stream; agent.ts owns the connection and the reconnects.
 */
import type { Duplex } from 'node:stream';
import { ErrorCodes, SwitchboardError } from '../../../errors.js';
import {
  AUTH_HMAC,
  authTag,
  ControlLineDecoder,
  encodeControl,
  type BindMessage,
  type BoundMessage,
  type ControlMessage,
  type ErrorMessage,
} from './messages.js';

export interface AgentHandshakeOptions {
  /** Empty = no secret (only a relay with AUTH=none accepts us). */
  authSecret: string;
  bind: BindMessage;
  timeoutMs: number;
}

/** Resolves with bound or the relay's error; rejects on a protocol problem, a closed stream or the timeout. */
export function agentHandshake(control: Duplex, options: AgentHandshakeOptions): Promise<BoundMessage | ErrorMessage> {
  const decoder = new ControlLineDecoder();
  return new Promise((resolve, reject) => {
    let helloSeen = false;
    const fail = (message: string): void => {
      cleanup();
      reject(new SwitchboardError(ErrorCodes.PROTOCOL, message));
    };
    const timer = setTimeout(() => fail(`no answer from the relay within ${options.timeoutMs} ms`), options.timeoutMs);
    const onMessage = (message: ControlMessage): boolean => {
      if (!helloSeen) {
        if (message.type !== 'hello') {
          fail(`expected hello from the relay, got ${message.type}`);
          return false;
        }
        helloSeen = true;
        if (message.auth === AUTH_HMAC) {
          if (options.authSecret === '') {
            fail('the relay requires authentication but AUTH_SECRET is empty');
            return false;
          }
          control.write(encodeControl({ type: 'auth', tag: authTag(options.authSecret, message.nonce) }));
        }
        control.write(encodeControl(options.bind));
        return true;
      }
      if (message.type === 'bound' || message.type === 'error') {
        cleanup();
        resolve(message);
        return false;
      }
      fail(`unexpected ${message.type} from the relay`);
      return false;
    };
    const onData = (chunk: Buffer): void => {
      const { messages, error } = decoder.push(chunk);
      for (const message of messages) if (!onMessage(message)) return;
      if (error) fail(`bad control line from the relay: ${error.message}`);
    };
    const onEnd = (): void => fail('the relay closed the control stream');
    const onError = (error: Error): void => fail(`control stream failed: ${error.message}`);
    const cleanup = (): void => {
      clearTimeout(timer);
      control.off('data', onData);
      control.off('end', onEnd);
      control.off('error', onError);
    };
    control.on('data', onData);
    control.on('end', onEnd);
    control.on('error', onError);
  });
}
