// The real npm socket.io-client, driven by the gateway's integration tests over stdin/stdout.
// Commands (one JSON object a line): {"op":"connect", url, transports?, auth?, emitAuth?,
// resumeFrom?, headers?}, {"op":"drop"} (destroy the TCP connection, no reconnect),
// {"op":"reconnect", url?}, {"op":"close"}. Everything the client sees is printed as
// one JSON line: {"ev": "connect"|"upgrade"|"disconnect"|"connect_error"|<event name>, ...}.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

let socket = null;
let emitAuth = null;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const transportName = () => socket?.io?.engine?.transport?.name ?? null;

function connect(cmd) {
  emitAuth = cmd.emitAuth ? { token: cmd.emitAuth } : null;
  if (emitAuth && cmd.resumeFrom) emitAuth.resumeFrom = cmd.resumeFrom;
  const opts = {
    reconnectionDelay: 100,
    reconnectionDelayMax: 300,
    timeout: 10000,
    extraHeaders: cmd.headers ?? {},
  };
  if (cmd.transports) opts.transports = cmd.transports;
  if (cmd.auth) opts.auth = cmd.auth;
  socket = io(cmd.url, { ...opts, autoConnect: false });
  // A recovery session of someone else's (the refusal test): what a client would send.
  if (cmd.pid) [socket._pid, socket._lastOffset] = [cmd.pid, cmd.offset];
  socket.on("connect", () => {
    out({ ev: "connect", id: socket.id, recovered: socket.recovered, pid: socket._pid,
          transport: transportName() });
    if (emitAuth) socket.emit("authenticate", emitAuth);
  });
  socket.io.on("open", () =>
    socket.io.engine.once("upgrade", (t) => out({ ev: "upgrade", transport: t.name })));
  socket.on("disconnect", (reason) => out({ ev: "disconnect", reason }));
  socket.on("connect_error", (err) => out({ ev: "connect_error", message: err.message }));
  socket.onAny((name, ...args) =>
    out({ ev: name, data: args[0], offset: args.length > 1 ? args[args.length - 1] : null,
          transport: transportName() }));
  socket.connect();
}

function drop() {
  socket.io.reconnection(false);
  const transport = socket.io.engine.transport;
  if (transport.name !== "websocket") throw new Error("drop needs the websocket transport");
  transport.ws._socket.destroy(); // the TCP connection, as a network failure would
}

function reconnect(cmd) {
  if (cmd.url) socket.io.uri = cmd.url;
  socket.io.reconnection(true);
  socket.connect();
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const cmd = JSON.parse(line);
  try {
    if (cmd.op === "connect") connect(cmd);
    else if (cmd.op === "drop") drop();
    else if (cmd.op === "reconnect") reconnect(cmd);
    else if (cmd.op === "close") {
      socket?.disconnect();
      process.exit(0);
    }
  } catch (err) {
    out({ ev: "driver_error", message: String(err) });
  }
});
lines.on("close", () => process.exit(0));
