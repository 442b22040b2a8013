// Recovery bench client: the seed's socket.io-client code (default transports, `authenticate`
// after `connect`) holding one socket. Stdin commands: `drop` destroys its TCP connection
// (no automatic reconnect), `reconnect N` reconnects and times until N more events arrived.
// Prints JSON lines: {"ready"}, {"got"} per event before the drop, {"dropped"}, {"done", ms,
// recovered, events, ordered}, then {"settled": events a second later}.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) =>
  (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const socket = io(args.url, { reconnectionDelay: 100, reconnectionDelayMax: 300 });
let upgraded = false, authed = false, expect = 0, started = 0, after = [];

socket.on("connect", () => socket.emit("authenticate", { token: args.token }));
socket.io.on("open", () => socket.io.engine.once("upgrade", () => {
  upgraded = true;
  if (authed) out({ ready: 1 });
}));
socket.on("authenticated", () => {
  authed = true;
  if (upgraded) out({ ready: 1 });
});
socket.on("disconnect", (reason) => { if (reason === "transport close") out({ dropped: 1 }); });
socket.on("new_message", (d) => {
  if (!started) return out({ got: d.cursor });
  after.push(d.cursor);
  if (after.length === expect) {
    const ms = performance.now() - started;
    const offsets = after.map((c) => Number(c.split("-")[1]));
    const ordered = offsets.every((o, i) => i === 0 || o > offsets[i - 1]);
    out({ done: 1, ms, recovered: socket.recovered, events: after.length, ordered });
    setTimeout(() => out({ settled: after.length }), 1000); // a duplicate would show here
  }
});

createInterface({ input: process.stdin }).on("line", (line) => {
  const [op, n] = line.trim().split(" ");
  if (op === "drop") {
    socket.io.reconnection(false);
    socket.io.engine.transport.ws._socket.destroy();
  } else if (op === "reconnect") {
    expect = Number(n);
    started = performance.now();
    socket.io.reconnection(true);
    socket.connect();
  }
});
