// Web Push in the demo inbox: the service worker, the bell (this browser subscribed or
// not) and the mute button of the open conversation. Only the public REST API.

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - base64url.length % 4) % 4));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function sameKey(subscription, publicKey) {
  const key = subscription.options && subscription.options.applicationServerKey;
  if (!key) return true;
  const mine = new Uint8Array(key), theirs = keyBytes(publicKey);
  return mine.length === theirs.length && mine.every((v, i) => v === theirs[i]);
}

export async function setupPush(api, bell, onOpen) {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    bell.dataset.state = "unavailable"; bell.title = "this browser has no Web Push"; bell.hidden = false;
    return;
  }
  const registration = await navigator.serviceWorker.register("/static/sw.js", { scope: "/" });
  navigator.serviceWorker.addEventListener("message", (e) => {
    if (e.data && e.data.type === "open-conversation" && e.data.conversationId) onOpen(e.data.conversationId);
  });
  const config = await api("/api/vapid-public-key");
  const show = async () => {
    const sub = await registration.pushManager.getSubscription();
    const on = Boolean(sub) && config.enabled;
    bell.dataset.state = config.vapidPublicKey ? (on ? "on" : "off") : "unavailable";
    bell.textContent = on ? "🔔" : "🔕";
    bell.title = !config.vapidPublicKey ? "push is not configured on this hub"
      : on ? "notifications on: click to turn off in this browser" : "notify me when I am away";
    bell.setAttribute("aria-pressed", String(on));
  };
  bell.addEventListener("click", async () => {
    if (!config.vapidPublicKey) return;
    bell.disabled = true;
    try {
      const sub = await registration.pushManager.getSubscription();
      if (sub && config.enabled) {
        await api("/api/push-subscriptions", { method: "DELETE", body: JSON.stringify({ endpoint: sub.endpoint }) });
        await sub.unsubscribe();
      } else {
        if (await Notification.requestPermission() !== "granted") throw new Error("notifications not allowed");
        const made = sub || await registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: keyBytes(config.vapidPublicKey) });
        await api("/api/push-subscriptions", { method: "POST", body: JSON.stringify(made.toJSON()) });
        if (!config.enabled) {
          await api("/api/push-settings", { method: "PUT", body: JSON.stringify({ enabled: true, preview: config.preview }) });
          config.enabled = true;
        }
      }
    } catch (err) {
      console.warn("push", err);
      bell.dataset.error = String(err.message || err);
    } finally {
      bell.disabled = false;
      await show();
    }
  });
  // A browser subscribed before is told to the hub again (the same endpoint replaces
  // itself): the hub may have dropped it (a 410 once) while this browser kept it.
  const existing = config.vapidPublicKey && await registration.pushManager.getSubscription();
  if (existing && !sameKey(existing, config.vapidPublicKey)) {
    await existing.unsubscribe();  // made for a key the hub no longer has: useless
  } else if (existing && config.enabled) {
    api("/api/push-subscriptions", { method: "POST", body: JSON.stringify(existing.toJSON()) })
      .catch((err) => console.warn("push subscription not renewed", err));
  }
  bell.hidden = false;
  await show();
}

export async function showMute(api, button, conversationId) {
  const url = `/api/conversations/${encodeURIComponent(conversationId)}/mute`;
  const render = (muted) => {
    button.dataset.muted = String(muted);
    button.textContent = muted ? "Unmute" : "Mute";
    button.title = muted ? "notifications of this conversation are off" : "no notifications of this conversation";
    button.setAttribute("aria-pressed", String(muted));
  };
  button.hidden = true;
  button.onclick = null;
  button.dataset.conversationId = conversationId;
  let state;
  try { state = await api(url); } catch { return; }  // not in the store yet: no button
  if (button.dataset.conversationId !== conversationId) return;  // another one opened since
  render(state.muted);
  button.hidden = false;
  button.onclick = async () => {
    const next = button.dataset.muted !== "true";
    render((await api(url, { method: "PUT", body: JSON.stringify({ muted: next }) })).muted);
  };
}
