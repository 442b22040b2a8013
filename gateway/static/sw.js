// The inbox's service worker (served at /static/sw.js with scope /): shows the hub's Web Push
// notifications and opens the conversation on a click. It holds no token and calls no API.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// The notification of one push payload (docs/push.md): one per conversation (its tag),
// a newer one replacing the older.
self.showPush = function showPush(data) {
  const conversationId = typeof data.conversationId === "string" ? data.conversationId : "";
  return self.registration.showNotification(String(data.title || "New message").slice(0, 200), {
    body: String(data.body || "").slice(0, 1000),
    tag: conversationId ? `conversation:${conversationId}` : "hub",
    renotify: true,
    data: { conversationId, url: conversationId ? `/#conversation=${encodeURIComponent(conversationId)}` : "/" },
  });
};

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  event.waitUntil(self.showPush(data && typeof data === "object" ? data : {}));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const { conversationId, url } = event.notification.data || {};
  event.waitUntil((async () => {
    const open = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const tab = open.find((c) => new URL(c.url).origin === self.location.origin);
    if (tab) {
      // An open inbox keeps its token: it opens the conversation itself.
      tab.postMessage({ type: "open-conversation", conversationId });
      return tab.focus();
    }
    return self.clients.openWindow(new URL(url || "/", self.location.origin).href);
  })());
});
