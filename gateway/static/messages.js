import { showAttachments } from "./attachments.js";

// One message of the thread: its node, its text or tombstone, an outbound reply's status.
// Replies this tab sent are kept (sessionStorage) so that a retry can send them again.

function fmtTime(iso) { return iso ? new Date(iso).toLocaleTimeString() : ""; }

// Outbound statuses only move forward; `failed` comes only before delivery.
export const RANK = { pending: 0, sent: 1, failed: 1.5, delivered: 2, read: 3 };
const STATUS_TEXT = { pending: "sending...", sent: "sent", delivered: "delivered", read: "read",
  failed: "failed" };
// Replies this tab sent, by message id: what a retry sends again (the same clientMessageId).
const SENDS_KEY = "hub.sends";
export const sends = new Map(JSON.parse(sessionStorage.getItem(SENDS_KEY) || "[]"));
export function keepSends() {
  while (sends.size > 200) sends.delete(sends.keys().next().value);
  sessionStorage.setItem(SENDS_KEY, JSON.stringify([...sends]));
}

export const msgSelector = (id) => `.msg[data-message-id="${CSS.escape(id)}"]`;

export function messageNode(m, onRetry) {
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
    foot.querySelector(".retry").addEventListener("click", () => onRetry(div.dataset.messageId));
    div.append(foot);
    setOutboundStatus(div, m.status, true);
  } else {
    div.className = `msg ${m.status}`;
  }
  showContent(div, m);
  return div;
}

export function showContent(node, m) {
  if (m.deleted) { tombstone(node); return; }
  node.querySelector(".text").textContent = m.text;
  node.querySelector(".edited").hidden = !m.editedAt;
  showAttachments(node, m.attachments);
}

export function tombstone(node) {
  node.classList.add("deleted");
  node.querySelector(".text").textContent = "This message was deleted.";
  node.querySelector(".edited").hidden = true;
  showAttachments(node, []);
  const retry = node.querySelector(".retry");
  if (retry) retry.hidden = true;
}

export function setOutboundStatus(node, status, force = false) {
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

