// Runs a switchboard entry point (argv[2], an absolute path) with a heap probe for benchmarks: on SIGWINCH (ignored by
// default, and not one of the signals close-with-grace shuts down on) it collects garbage twice and prints
// {"heapUsed": n} on stdout, so "heap per idle client" counts what is retained, not garbage awaiting collection.
// Needs node --expose-gc (and --import tsx for a .ts entry point; bench/relay.ts runs dist/main.js).
process.on('SIGWINCH', () => {
  globalThis.gc();
  globalThis.gc();
  process.stdout.write(`${JSON.stringify({ heapUsed: process.memoryUsage().heapUsed })}\n`);
});
// The entry point reads its own command line (tcp-multiplexer flags): it must not see its path there.
const [entry] = process.argv.splice(2, 1);
await import(entry);
