// Load client for P4/P5: N WebSocket connections speaking the hub's /ws protocol
// (`--proto hub`) or raw Socket.IO v4 over a WebSocket (`--proto sio`). Prints JSON lines:
// {"ready":n} once all are authenticated, then {"done":...} when every connection got
// `--expect` event frames (or `--timeout` s passed). Stays idle (`--expect 0`) until stdin closes.
// `--tokens FILE` (a JSON array) gives connection i the token i % length instead of `--token`.
// `--hold 1`: {"done":...} is printed when complete but the sockets stay open until stdin
// closes, so the server's teardown of every socket is not inside the measured burst.
import { readFileSync } from "node:fs";
import WebSocket from "ws";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) =>
  (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const n = Number(args.n || 100), expect = Number(args.expect || 0);
const url = args.url, proto = args.proto || "hub";
const tokens = args.tokens ? JSON.parse(readFileSync(args.tokens, "utf8")) : [args.token || ""];
const timeoutMs = Number(args.timeout || 60) * 1000;
const hold = args.hold === "1";
let ready = 0, frames = 0, complete = 0, firstAt = 0, lastAt = 0, failed = 0;
const counts = new Uint32Array(n);
const sockets = [];

function onEvent(i) {
  const now = Date.now();
  if (!firstAt) firstAt = now;
  lastAt = now;
  frames++;
  if (++counts[i] === expect && ++complete === n) finish("complete");
}
let reported = false;
function finish(reason) {
  if (!reported) console.log(JSON.stringify({ done: reason, frames, firstAt, lastAt, complete, failed }));
  reported = true;
  if (hold && reason === "complete") return;
  for (const s of sockets) s.terminate();
  process.exit(0);
}
function authed() { if (++ready === n) console.log(JSON.stringify({ ready, failed })); }

// A handshake reset in the opening burst (a full accept queue on a loaded machine) is
// retried a few times: P4 measures idle sockets, not how a burst of connects is absorbed.
function open(i, attempt = 0) {
  const token = tokens[i % tokens.length];
  const ws = new WebSocket(url, { perMessageDeflate: false });
  sockets.push(ws);
  let opened = false;
  ws.on("open", () => { opened = true; });
  ws.on("error", () => {
    if (!opened && attempt < 5) setTimeout(() => open(i, attempt + 1), 250 * (attempt + 1));
    else failed++;
  });
  if (proto === "hub") {
    ws.on("open", () => ws.send(JSON.stringify({ type: "authenticate", token })));
    ws.on("message", (data) => {
      const s = data.toString();
      if (s.startsWith('{"type":"authenticated"')) return authed();
      if (s.includes('"cursor"')) onEvent(i);
    });
  } else {
    ws.on("message", (data) => {
      const s = data.toString();
      if (s[0] === "0") ws.send("40");                       // engine.io open -> SIO connect
      else if (s === "2") ws.send("3");                      // ping -> pong
      else if (s.startsWith("40")) ws.send(`42["authenticate",${JSON.stringify({ token })}]`);
      else if (s.startsWith('42["authenticated"')) authed();
      else if (s.startsWith("42[")) onEvent(i);
    });
  }
}

// Open in waves so the server's accept queue is not flooded.
let opened = 0;
const wave = () => { for (let k = 0; k < 500 && opened < n; k++) open(opened++); if (opened < n) setTimeout(wave, 20); };
wave();
if (expect > 0) setTimeout(() => finish("timeout"), timeoutMs);
process.stdin.on("end", () => finish("stdin closed"));
process.stdin.resume();
// Progress for the benchmark's log while connections are being opened.
setInterval(() => console.log(JSON.stringify({ progress: ready, failed, frames })), 5000).unref();
