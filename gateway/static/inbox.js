// The demo inbox: only the public REST API and the /ws protocol, no build step.
const params = new URLSearchParams(location.search);
if (params.get("token")) {
  sessionStorage.setItem("hub.token", params.get("token"));
  history.replaceState(null, "", location.pathname);
}
const state = { token: sessionStorage.getItem("hub.token"), conversations: new Map(),
  unread: { total: 0, byPlatform: {} }, selected: null, cursor: null, socket: null, retry: 0,
  names: new Map() };  // who a title-less conversation is with, from its inbound messages
const $ = (sel) => document.querySelector(sel);

async function api(path, options = {}) {
  const resp = await fetch(path, { ...options, headers: { "Authorization": `Bearer ${state.token}`,
    "Content-Type": "application/json", ...(options.headers || {}) } });
  if (resp.status === 401) { logout(); throw new Error("unauthorized"); }
  if (!resp.ok) throw new Error(`${path}: ${resp.status}`);
  return resp.status === 204 ? null : resp.json();
}

function logout() {
  sessionStorage.removeItem("hub.token");
  state.token = null;
  if (state.socket) state.socket.close();
  $("#app").hidden = true; $("#login").hidden = false;
}

function fmtTime(iso) { return iso ? new Date(iso).toLocaleTimeString() : ""; }

function renderTotals() {
  const parts = [`<span class="pill" data-testid="total">total <b>${state.unread.total}</b></span>`];
  for (const [platform, n] of Object.entries(state.unread.byPlatform).sort()) {
    parts.push(`<span class="pill" data-platform="${platform}">${platform} <b>${n}</b></span>`);
  }
  $("#totals").innerHTML = parts.join("");
}

function renderConversations() {
  const list = [...state.conversations.values()].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
  const ul = $("#conversations");
  ul.replaceChildren(...list.map((c) => {
    const li = document.createElement("li");
    li.dataset.conversationId = c.id;
    if (c.id === state.selected) li.classList.add("selected");
    const last = c.lastMessage;
    li.innerHTML = `<span class="title"></span><span class="badge" data-count="${c.unreadCount}">${c.unreadCount}</span>
      <span class="meta"></span>`;
    // Platforms such as Slack send no chat name with a message: fall back to who wrote.
    if (last && last.direction !== "outbound") state.names.set(c.id, last.sender.name || last.sender.id);
    li.querySelector(".title").textContent = c.title || state.names.get(c.id) || c.id;
    const who = last && (last.direction === "outbound" ? "You" : (last.sender.name || last.sender.id));
    const said = last && (last.deleted ? "(deleted)" : last.text);
    li.querySelector(".meta").textContent = `${c.platform} · ${last ? `${who}: ${said}` : ""}`;
    li.addEventListener("click", () => openConversation(c.id));
    return li;
  }));
  if (!list.length) ul.innerHTML = `<li class="empty">No conversations yet.</li>`;
}

// Outbound statuses only move forward; `failed` comes only before delivery.
const RANK = { pending: 0, sent: 1, failed: 1.5, delivered: 2, read: 3 };
const STATUS_TEXT = { pending: "sending...", sent: "sent", delivered: "delivered", read: "read",
  failed: "failed" };
// Replies this tab sent, by message id: what a retry sends again (the same clientMessageId).
const SENDS_KEY = "hub.sends";
const sends = new Map(JSON.parse(sessionStorage.getItem(SENDS_KEY) || "[]"));
function keepSends() {
  while (sends.size > 200) sends.delete(sends.keys().next().value);
  sessionStorage.setItem(SENDS_KEY, JSON.stringify([...sends]));
}

const msgSelector = (id) => `.msg[data-message-id="${CSS.escape(id)}"]`;

function messageNode(m) {
  const div = document.createElement("div");
  div.dataset.messageId = m.id;
  div.innerHTML = `<div><span class="who"></span><span class="when"></span><span class="edited" hidden>edited</span></div>
    <div class="text"></div>`;
  div.querySelector(".who").textContent = m.direction === "outbound" ? "You" : (m.sender.name || m.sender.id);
  div.querySelector(".when").textContent = fmtTime(m.sentAt);
  if (m.direction === "outbound") {
    div.className = "msg out";
    const foot = document.createElement("div");
    foot.className = "foot";
    foot.innerHTML = `<span class="state"></span><button type="button" class="retry" hidden>Retry</button>`;
    foot.querySelector(".retry").addEventListener("click", () => retrySend(div.dataset.messageId));
    div.append(foot);
    setOutboundStatus(div, m.status, true);
  } else {
    div.className = `msg ${m.status}`;
  }
  showContent(div, m);
  return div;
}

function showContent(node, m) {
  if (m.deleted) { tombstone(node); return; }
  node.querySelector(".text").textContent = m.text;
  node.querySelector(".edited").hidden = !m.editedAt;
}

function tombstone(node) {
  node.classList.add("deleted");
  node.querySelector(".text").textContent = "This message was deleted.";
  node.querySelector(".edited").hidden = true;
  const retry = node.querySelector(".retry");
  if (retry) retry.hidden = true;
}

function setOutboundStatus(node, status, force = false) {
  const now = node.dataset.status;
  const retried = now === "failed" && status === "pending";  // a retry, from any tab
  if (!force && !retried && now !== undefined && (RANK[status] ?? -1) <= (RANK[now] ?? -1)) return;
  node.dataset.status = status;
  node.querySelector(".state").textContent = STATUS_TEXT[status] || status;
  // A retry needs the clientMessageId, which only the tab that sent the reply knows.
  node.querySelector(".retry").hidden = !(status === "failed" && sends.has(node.dataset.messageId)
    && !node.classList.contains("deleted"));
  if (status !== "pending" && status !== "failed" && sends.delete(node.dataset.messageId)) keepSends();
}

function newClientMessageId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// POST the reply; the same clientMessageId again is the same message on the hub.
async function postReply(conversationId, text, clientMessageId) {
  const body = JSON.stringify({ text, clientMessageId });
  const answer = await api(`/api/conversations/${encodeURIComponent(conversationId)}/messages`,
    { method: "POST", body });
  return answer.id;
}

async function sendReply(event) {
  event.preventDefault();
  const input = $("#reply-text");
  const text = input.value.trim();
  const conversationId = state.selected;
  if (!text || !conversationId) return;
  const clientMessageId = newClientMessageId();
  input.value = "";
  // Shown at once under a local id; the hub's id replaces it when the POST answers.
  const local = messageNode({ id: `local-${clientMessageId}`, direction: "outbound", status: "pending",
    sender: { id: "" }, text, sentAt: new Date().toISOString(), conversationId });
  $("#messages").append(local);
  scrollDown();
  try {
    const id = await postReply(conversationId, text, clientMessageId);
    sends.set(id, { conversationId, text, clientMessageId }); keepSends();
    const shown = document.querySelector(msgSelector(id));
    if (shown && shown !== local) local.remove(); else local.dataset.messageId = id;
  } catch (err) {
    // Not accepted: the hub has no such message yet; retrying posts the same id again.
    sends.set(local.dataset.messageId, { conversationId, text, clientMessageId }); keepSends();
    setOutboundStatus(local, "failed", true);
    console.warn("reply not accepted", err);
  }
}

async function retrySend(messageId) {
  const node = document.querySelector(msgSelector(messageId));
  const send = sends.get(messageId);
  if (!node || !send) return;
  setOutboundStatus(node, "pending", true);
  try {
    const id = await postReply(send.conversationId, send.text, send.clientMessageId);
    if (id !== messageId) {
      sends.delete(messageId); sends.set(id, send); keepSends();
      const shown = document.querySelector(msgSelector(id));
      if (shown && shown !== node) node.remove(); else node.dataset.messageId = id;
    }
  } catch (err) {
    setOutboundStatus(node, "failed", true);
    console.warn("retry not accepted", err);
  }
}

async function openConversation(id) {
  state.selected = id;
  renderConversations();
  const page = await api(`/api/conversations/${encodeURIComponent(id)}/messages?limit=50`);
  if (state.selected !== id) return;  // another conversation was opened meanwhile
  const items = page.messages.slice().reverse();
  $("#messages").replaceChildren(...items.map(messageNode));
  $("#reply").hidden = false;
  scrollDown();
  const conv = state.conversations.get(id);
  if (conv && conv.unreadCount > 0) {
    await api(`/api/conversations/${encodeURIComponent(id)}/read`, { method: "POST", body: "{}" });
  }
}

function scrollDown() { const box = $("#messages"); box.scrollTop = box.scrollHeight; }

// Delivery is at least once: a redone batch or a resumed socket repeats events with the
// same id. Each carries absolute state, so applying one twice is harmless except for
// appending a message twice; the ids seen lately are remembered and repeats skipped.
const SEEN_MAX = 2000;
const seen = new Set();
function firstTime(id) {
  if (seen.has(id)) return false;
  seen.add(id);
  if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value);
  return true;
}

function applyEvent(ev) {
  if (ev.id && !firstTime(ev.id)) return;
  const d = ev.data;
  if (ev.type === "new_message") {
    const shown = document.querySelector(msgSelector(d.message.id));
    if (shown && shown.classList.contains("out")) setOutboundStatus(shown, d.message.status);
    else if (d.message.conversationId === state.selected && !shown) {
      $("#messages").append(messageNode(d.message));
      scrollDown();
    }
  } else if (ev.type === "conversation_update") {
    state.conversations.set(d.conversation.id, d.conversation);
    renderConversations();
  } else if (ev.type === "unread_count_update") {
    const u = d.unreadCounts;
    state.unread = { total: u.total, byPlatform: u.byPlatform };
    for (const [id, n] of Object.entries(u.byConversation || {})) {
      const conv = state.conversations.get(id);
      if (conv) conv.unreadCount = n;
    }
    renderTotals(); renderConversations();
  } else if (ev.type === "message_status_update") {
    for (const id of d.messageIds) {
      const node = document.querySelector(msgSelector(id));
      if (!node) continue;
      if (node.classList.contains("out")) setOutboundStatus(node, d.status);
      else { node.classList.remove("unread"); node.classList.add(d.status); }
    }
  } else if (ev.type === "message_updated") {
    const node = document.querySelector(msgSelector(d.message.id));
    if (node) showContent(node, d.message);
  } else if (ev.type === "message_deleted") {
    const node = document.querySelector(msgSelector(d.messageId));
    if (node) tombstone(node);
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  state.socket = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "authenticate", token: state.token,
    ...(state.cursor ? { resumeFrom: state.cursor } : {}) }));
  ws.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    if (ev.type === "authenticated") {
      state.retry = 0;
      $("#user").textContent = ev.data.userId;
      $("#status").textContent = "live"; $("#status").className = "live";
      return;
    }
    if (ev.type === "pong") return;
    if (ev.cursor) state.cursor = ev.cursor;
    if (ev.type === "error") {
      // A failed send also arrives as its status update; this says why.
      const node = ev.data.messageId && document.querySelector(msgSelector(ev.data.messageId));
      if (node) node.title = ev.data.message;
      console.warn("hub error", ev.data);
      return;
    }
    applyEvent(ev);
  };
  ws.onclose = (e) => {
    $("#status").textContent = `disconnected (${e.code})`; $("#status").className = "";
    if (e.code === 4401) { logout(); return; }
    if (!state.token) return;
    state.retry = Math.min(state.retry + 1, 6);
    setTimeout(connect, 250 * 2 ** state.retry);
  };
}

async function load() {
  const page = await api("/api/conversations?limit=100");
  for (const c of page.conversations) state.conversations.set(c.id, c);
  const unread = await api("/api/unread");
  state.unread = { total: unread.total, byPlatform: unread.byPlatform };
  renderTotals(); renderConversations();
}

async function start() {
  if (!state.token) { $("#login").hidden = false; return; }
  $("#login").hidden = true; $("#app").hidden = false;
  connect();  // first, so no event between the REST snapshot and the socket is missed
  await load();
  setInterval(() => state.socket && state.socket.readyState === 1 &&
    state.socket.send(JSON.stringify({ type: "ping" })), 25000);
}

$("#reply").addEventListener("submit", sendReply);
$("#reply-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#reply").requestSubmit(); }
});
$("#token-save").addEventListener("click", () => {
  state.token = $("#token-input").value.trim();
  if (state.token) { sessionStorage.setItem("hub.token", state.token); start(); }
});
start();
