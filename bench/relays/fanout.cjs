// A bare group relay for `npm run bench:groups-ab` (AB_MEASURE=latency): every connection's first line (the join line)
// is dropped, and everything after it goes to every other connection, with no flow control, metrics or logging. It is
// the floor a Node relay can reach on this machine, for comparison with switchboard's groups mode.
const net = require('node:net');
const members = new Set();
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let joined = false;
  socket.on('data', (chunk) => {
    if (!joined) {
      const newline = chunk.indexOf(10);
      if (newline < 0) return;
      joined = true;
      members.add(socket);
      chunk = chunk.subarray(newline + 1);
      if (chunk.length === 0) return;
    }
    for (const other of members) if (other !== socket) other.write(chunk);
  });
  socket.on('error', () => {});
  socket.on('close', () => members.delete(socket));
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
