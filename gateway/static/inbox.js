// The demo inbox: only the public REST API and the /ws protocol, no build step.
import { RANK, keepSends, messageNode, msgSelector, sends, setOutboundStatus, showContent, tombstone }
  from "./messages.js";
import { setupPush, showMute } from "./push.js";
import { attachPicker, upload } from "./attachments.js";
import { mountIntegrations } from "./integrations.js";

// `#token=` (never sent to a server, so never in a proxy's log), or `?token=` as before.
const given = new URLSearchParams(location.hash.slice(1)).get("token")
  || new URLSearchParams(location.search).get("token");
if (given) {
  sessionStorage.setItem("hub.token", given);
  history.replaceState(null, "", location.pathname);
}
const state = { token: sessionStorage.getItem("hub.token"), conversations: new Map(),
  unread: { total: 0, byPlatform: {} }, selected: null, cursor: null, socket: null, retry: 0,
  names: new Map(),  // who a title-less conversation is with, from its inbound messages
  unreadLive: false, heard: new Map() };
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
    const files = last && !last.deleted && (last.attachments || []).length
      ? `📎 ${last.attachments.map((a) => a.name || a.kind).join(", ")} ` : "";
    const said = last && (last.deleted ? "(deleted)" : `${files}${last.text}`);
    li.querySelector(".meta").textContent = `${c.platform} · ${last ? `${who}: ${said}` : ""}`;
    li.addEventListener("click", () => openConversation(c.id));
    return li;
  }));
  if (!list.length) ul.innerHTML = `<li class="empty">No conversations yet.</li>`;
}

function newClientMessageId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// POST the reply; the same clientMessageId again is the same message on the hub.
async function postReply({ conversationId, text, clientMessageId, attachments }) {
  const ids = (attachments || []).map((a) => a.id);
  const body = JSON.stringify({ text, clientMessageId, ...(ids.length ? { attachments: ids } : {}) });
  const answer = await api(`/api/conversations/${encodeURIComponent(conversationId)}/messages`,
    { method: "POST", body });
  return answer.id;
}

async function sendReply(event) {
  event.preventDefault();
  const input = $("#reply-text");
  const text = input.value.trim();
  const conversationId = state.selected;
  const files = picker.files();
  if ((!text && !files.length) || !conversationId) return;
  let attachments = [];
  if (files.length) {
    $("#reply-send").disabled = true;
    try {
      attachments = await Promise.all(files.map((file) => upload(conversationId, file)));
    } catch (err) {
      // Nothing sent: the text and the files stay for another try.
      $("#reply-files").title = String(err.message);
      console.warn("upload refused", err);
      return;
    } finally {
      $("#reply-send").disabled = false;
    }
    picker.clear();
  }
  const send = { conversationId, text, clientMessageId: newClientMessageId(), attachments };
  input.value = "";
  let id;
  try {
    id = await postReply(send);
  } catch (err) {
    // Not accepted: the hub has no such message; a retry posts the same clientMessageId.
    console.warn("reply not accepted", err);
    id = `local-${send.clientMessageId}`;
    sends.set(id, send); keepSends();
    showReply(id, send, "failed");
    return;
  }
  sends.set(id, send); keepSends();
  // Shown once accepted, under the hub's id: its events (maybe here already) find it.
  showReply(id, send, "pending");
}

function showReply(id, send, status) {
  let node = document.querySelector(msgSelector(id));
  if (!node) {
    if (state.selected !== send.conversationId) return;
    node = messageNode({ id, direction: "outbound", status, sender: { id: "" }, text: send.text,
      sentAt: new Date().toISOString(), conversationId: send.conversationId,
      attachments: send.attachments || [] }, retrySend);
    $("#messages").append(node);
    scrollDown();
  }
  setOutboundStatus(node, node.dataset.status, true);  // the retry button, now that it can
}

async function retrySend(messageId) {
  const node = document.querySelector(msgSelector(messageId));
  const send = sends.get(messageId);
  if (!node || !send) return;
  setOutboundStatus(node, "pending", true);
  let id;
  try {
    id = await postReply(send);
  } catch (err) {
    setOutboundStatus(node, "failed", true);
    console.warn("retry not accepted", err);
    return;
  }
  if (id !== messageId) {  // a reply the hub never accepted before
    sends.delete(messageId); sends.set(id, send); keepSends();
    if (document.querySelector(msgSelector(id))) node.remove(); else node.dataset.messageId = id;
  }
}

// Messages heard of live, newest last (bounded): a conversation opened right after its
// message arrived may find the store not written yet, and shows them from here.
const HEARD_MAX = 500;
function hear(m) {
  state.heard.delete(m.id);
  state.heard.set(m.id, m);
  if (state.heard.size > HEARD_MAX) state.heard.delete(state.heard.keys().next().value);
}

// Who an email reply goes to: the sender of the thread's newest mail, which anyone who
// knows the thread can be; shown before the user writes.
function renderReplyTo() {
  const conv = state.conversations.get(state.selected);
  const node = $("#reply-to");
  node.hidden = !conv || conv.platform !== "email";
  const to = conv && conv.recipient && conv.recipient.includes("@") ? conv.recipient : "";
  node.textContent = node.hidden ? "" : `To: ${to || "nobody (the mail names no single address)"}`;
}

async function openConversation(id) {
  state.selected = id;
  renderConversations();
  $("#messages").replaceChildren();  // what arrives from now on belongs to this conversation
  $("#reply").hidden = false;
  $("#thread-head").hidden = false;
  const known = state.conversations.get(id);
  $("#thread-title").textContent = (known && (known.title || state.names.get(id))) || id;
  showMute(api, $("#mute"), id);
  renderReplyTo();
  const page = await storedMessages(id);
  if (state.selected !== id) return;  // another conversation was opened meanwhile
  const items = page.messages.slice().reverse();
  const stored = new Set(items.map((m) => m.id));
  for (const m of state.heard.values()) if (m.conversationId === id && !stored.has(m.id)) items.push(m);
  // Replies sent and events received while the page loaded stay; a status already
  // heard of live is not taken back by an older page.
  const arrived = new Map([...$("#messages").children].map((n) => [n.dataset.messageId, n]));
  const fresh = items.map((m) => {
    const node = messageNode(m, retrySend);
    const live = arrived.get(m.id);
    if (live && live.dataset.status && node.classList.contains("out")) setOutboundStatus(node, live.dataset.status);
    arrived.delete(m.id);
    return node;
  });
  $("#messages").replaceChildren(...fresh, ...arrived.values());
  scrollDown();
  const conv = state.conversations.get(id);
  if (conv && conv.unreadCount > 0) {
    api(`/api/conversations/${encodeURIComponent(id)}/read`, { method: "POST", body: "{}" })
      .catch((err) => console.warn("not marked read", err));
  }
}

// A conversation heard of live may not be in the store yet (404): ask again for a few
// seconds, then show what the socket told.
async function storedMessages(id) {
  const path = `/api/conversations/${encodeURIComponent(id)}/messages?limit=50`;
  for (let attempt = 0; ; attempt++) {
    try {
      return await api(path);
    } catch (err) {
      if (!String(err.message).endsWith(": 404") || attempt >= 10 || state.selected !== id) {
        console.warn("conversation not loaded", err);
        return { messages: [] };
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
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
    hear(d.message);
    const shown = document.querySelector(msgSelector(d.message.id));
    if (shown && shown.classList.contains("out")) setOutboundStatus(shown, d.message.status);
    else if (d.message.conversationId === state.selected && !shown) {
      $("#messages").append(messageNode(d.message, retrySend));
      scrollDown();
    }
  } else if (ev.type === "conversation_update") {
    state.conversations.set(d.conversation.id, d.conversation);
    renderConversations();
    if (d.conversation.id === state.selected) renderReplyTo();
  } else if (ev.type === "unread_count_update") {
    const u = d.unreadCounts;
    state.unread = { total: u.total, byPlatform: u.byPlatform };
    state.unreadLive = true;
    for (const [id, n] of Object.entries(u.byConversation || {})) {
      const conv = state.conversations.get(id);
      if (conv) conv.unreadCount = n;
    }
    renderTotals(); renderConversations();
  } else if (ev.type === "message_status_update") {
    for (const id of d.messageIds) {
      const m = state.heard.get(id);
      if (m && (m.direction !== "outbound" || (RANK[d.status] ?? -1) > (RANK[m.status] ?? -1))) m.status = d.status;
      const node = document.querySelector(msgSelector(id));
      if (!node) continue;
      if (node.classList.contains("out")) setOutboundStatus(node, d.status);
      else { node.classList.remove("unread"); node.classList.add(d.status); }
    }
  } else if (ev.type === "message_updated") {
    if (state.heard.has(d.message.id)) hear(d.message);
    const node = document.querySelector(msgSelector(d.message.id));
    if (node) showContent(node, d.message);
  } else if (ev.type === "message_deleted") {
    const m = state.heard.get(d.messageId);
    if (m) hear({ ...m, deleted: true, text: "" });
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
      if (ev.cursor) state.cursor = ev.cursor; // resumable before the first event
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

// Events come before the store is written (events first): what the socket told while
// the REST snapshot loaded is newer than the snapshot, and wins.
async function load() {
  const page = await api("/api/conversations?limit=100");
  for (const c of page.conversations) if (!state.conversations.has(c.id)) state.conversations.set(c.id, c);
  const unread = await api("/api/unread");
  if (!state.unreadLive) state.unread = { total: unread.total, byPlatform: unread.byPlatform };
  renderTotals(); renderConversations();
}

async function start() {
  if (!state.token) { $("#login").hidden = false; return; }
  $("#login").hidden = true; $("#app").hidden = false;
  connect();  // first, so no event between the REST snapshot and the socket is missed
  mountIntegrations(api);
  await load();
  // Opened from a notification: `#conversation=<id>`.
  const wanted = new URLSearchParams(location.hash.slice(1)).get("conversation");
  if (wanted) openConversation(wanted);
  setupPush(api, $("#bell"), openConversation).catch((err) => console.warn("push", err));
  setInterval(() => state.socket && state.socket.readyState === 1 &&
    state.socket.send(JSON.stringify({ type: "ping" })), 25000);
}

const picker = attachPicker($("#reply"), $("#reply-file"), $("#reply-files"));
$("#reply").addEventListener("submit", sendReply);
$("#reply-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#reply").requestSubmit(); }
});
$("#token-save").addEventListener("click", () => {
  state.token = $("#token-input").value.trim();
  if (state.token) { sessionStorage.setItem("hub.token", state.token); start(); }
});
start();
