// The demo inbox: only the public REST API and the /ws protocol, no build step.
const params = new URLSearchParams(location.search);
if (params.get("token")) {
  sessionStorage.setItem("hub.token", params.get("token"));
  history.replaceState(null, "", location.pathname);
}
const state = { token: sessionStorage.getItem("hub.token"), conversations: new Map(),
  unread: { total: 0, byPlatform: {} }, selected: null, cursor: null, socket: null, retry: 0 };
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
    li.querySelector(".title").textContent = c.title || (last && (last.sender.name || last.sender.id)) || c.id;
    li.querySelector(".meta").textContent = `${c.platform} · ${last ? `${last.sender.name || last.sender.id}: ${last.text}` : ""}`;
    li.addEventListener("click", () => openConversation(c.id));
    return li;
  }));
  if (!list.length) ul.innerHTML = `<li class="empty">No conversations yet.</li>`;
}

function messageNode(m) {
  const div = document.createElement("div");
  div.className = `msg ${m.status}`;
  div.dataset.messageId = m.id;
  div.innerHTML = `<div><span class="who"></span><span class="when"></span></div><div class="text"></div>`;
  div.querySelector(".who").textContent = m.sender.name || m.sender.id;
  div.querySelector(".when").textContent = fmtTime(m.sentAt);
  div.querySelector(".text").textContent = m.text;
  return div;
}

async function openConversation(id) {
  state.selected = id;
  renderConversations();
  const page = await api(`/api/conversations/${encodeURIComponent(id)}/messages?limit=50`);
  const items = page.messages.slice().reverse();
  $("#thread").replaceChildren(...items.map(messageNode));
  const conv = state.conversations.get(id);
  if (conv && conv.unreadCount > 0) {
    await api(`/api/conversations/${encodeURIComponent(id)}/read`, { method: "POST", body: "{}" });
  }
}

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
    const shown = document.querySelector(`.msg[data-message-id="${CSS.escape(d.message.id)}"]`);
    if (d.message.conversationId === state.selected && !shown) $("#thread").append(messageNode(d.message));
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
      const node = document.querySelector(`.msg[data-message-id="${CSS.escape(id)}"]`);
      if (node) { node.classList.remove("unread"); node.classList.add(d.status); }
    }
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
    if (ev.type === "error") { console.warn("hub error", ev.data); return; }
    if (ev.cursor) state.cursor = ev.cursor;
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

$("#token-save").addEventListener("click", () => {
  state.token = $("#token-input").value.trim();
  if (state.token) { sessionStorage.setItem("hub.token", state.token); start(); }
});
start();
