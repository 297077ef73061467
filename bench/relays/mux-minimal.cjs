// A minimal Modbus TCP mux for `npm run bench:mux`: many clients, one upstream connection to the device at argv[2], one
// request in flight, transaction ids rewritten and restored, replies to the client that asked. No deadlines, limits,
// fairness, metrics or logging, and it trusts every length it reads. It is the floor a Node mux can reach on this machine,
// measured beside switchboard's mode (bench/RESULTS.md).
const net = require('node:net');

const queue = []; // { socket, frame } in arrival order
let inflight; // the request whose reply is awaited
let transactionId = 0;

/** Complete MBAP frames from a byte stream; the rest waits in `state.pending`. */
function frames(state, chunk) {
  let buffer = state.pending.length > 0 ? Buffer.concat([state.pending, chunk]) : chunk;
  const out = [];
  while (buffer.length >= 6) {
    const size = 6 + buffer.readUInt16BE(4);
    if (buffer.length < size) break;
    out.push(buffer.subarray(0, size));
    buffer = buffer.subarray(size);
  }
  state.pending = buffer;
  return out;
}

const upstream = net.connect({ host: '127.0.0.1', port: Number(process.argv[2]), noDelay: true });
function pump() {
  if (inflight !== undefined || queue.length === 0) return;
  inflight = queue.shift();
  const request = Buffer.from(inflight.frame);
  transactionId = (transactionId + 1) & 0xffff;
  request.writeUInt16BE(transactionId, 0);
  upstream.write(request);
}
const upstreamState = { pending: Buffer.alloc(0) };
upstream.on('data', (chunk) => {
  for (const frame of frames(upstreamState, chunk)) {
    const request = inflight;
    inflight = undefined;
    pump(); // the next request first, as switchboard does: the device works while the reply goes out
    const reply = Buffer.from(frame);
    reply.writeUInt16BE(request.frame.readUInt16BE(0), 0);
    request.socket.write(reply);
  }
});
upstream.on('error', (error) => {
  console.error(error.message);
  process.exit(1);
});

const server = net.createServer({ noDelay: true }, (socket) => {
  const state = { pending: Buffer.alloc(0) };
  socket.on('data', (chunk) => {
    for (const frame of frames(state, chunk)) queue.push({ socket, frame });
    pump();
  });
  socket.on('error', () => {});
});
upstream.on('connect', () => server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port }))));
