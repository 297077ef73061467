/**
 * One visitor (or service) socket joined to one tunnel stream, both ways, with half-close.
 *
 * Flow control: this is a 1-to-1 path, so it uses plain `pipe()` backpressure rather than net/flow.ts's Fanout. With one
 * receiver, DESIGN §3's rule ("the source runs at the pace of the fastest receiver") is exactly what pipe does: a visitor
 * that stops reading makes socket.write() return false, pipe stops pulling from the stream, the stream stops returning
 * window to the peer, and the sender on the far side is held by the yamux window. Nothing is copied or queued beyond
 * the socket's and the stream's high-water marks and the window, and no other stream of the session is affected (the
 * session itself is never paused). A slow-client policy would only cut a visitor who is merely slow; TCP does not either.
 *
 * Half-close: a FIN from the socket ends the stream's writable side (yamux FIN) and a FIN on the stream ends the socket's
 * writable side; the socket must be created with allowHalfOpen. An error or reset on either side destroys the other
 * (a stream destroyed before both FINs sends RST).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface SpliceCounters {
  /** Bytes read from the socket (towards the stream). */
  fromSocket: (bytes: number) => void;
  /** Bytes read from the stream (towards the socket). */
  fromStream: (bytes: number) => void;
}

/** Joins `socket` and `stream`; `onClose` runs once, when both are closed. */
export function splice(socket: Socket, stream: Duplex, counters: SpliceCounters, onClose: () => void): void {
  let open = 2;
  const closed = (): void => {
    if (--open === 0) onClose();
  };
  socket.on('data', (chunk: Buffer) => counters.fromSocket(chunk.length));
  stream.on('data', (chunk: Buffer) => counters.fromStream(chunk.length));
  socket.on('error', () => stream.destroy());
  stream.on('error', () => socket.destroy());
  socket.once('close', () => {
    // A socket that closed after both directions finished leaves the stream to finish its FINs; any other close resets.
    if (!(socket.readableEnded && socket.writableFinished)) stream.destroy();
    closed();
  });
  stream.once('close', () => {
    if (!(stream.readableEnded && stream.writableFinished)) socket.destroy();
    closed();
  });
  socket.pipe(stream);
  stream.pipe(socket);
}
