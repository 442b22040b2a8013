// Baseline for P5: a plain Node.js Socket.IO server doing the hub's fan-out.
// Clients emit `authenticate`, get `authenticated`; POST /burst?events=N&size=B makes the
// server emit N `new_message` events to every authenticated socket (one room).
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.env.PORT || 8090);
const http = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method === "POST" && url.pathname === "/burst") {
    const events = Number(url.searchParams.get("events") || 20);
    const payload = JSON.parse(url.searchParams.get("payload") || "{}");
    const started = Date.now();
    for (let i = 0; i < events; i++) {
      io.to("user").emit("new_message", { ...payload, cursor: `0-${i}` });
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ events, sockets: io.of("/").sockets.size, emitMs: Date.now() - started }));
    return;
  }
  if (url.pathname === "/stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ sockets: io.of("/").sockets.size, rss: process.memoryUsage().rss }));
    return;
  }
  res.writeHead(404).end();
});
const io = new Server(http, { transports: ["websocket"], serveClient: false, perMessageDeflate: false });
io.on("connection", (socket) => {
  socket.on("authenticate", (data) => {
    socket.join("user");
    socket.emit("authenticated", { userId: "bench", connectionId: socket.id });
  });
});
http.listen(port, "127.0.0.1", () => console.log(JSON.stringify({ listening: port })));
