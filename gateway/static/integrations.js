// The Integrations panel: the caller's webhook endpoints through the public REST API
// (docs/webhooks.md): add one (its secret shown once), see recent deliveries, replay.
const EVENTS = ["new_message", "message_status_update", "message_updated", "message_deleted",
  "unread_count_update", "conversation_update", "error"];

export function mountIntegrations(api) {
  const root = document.querySelector("#integrations");
  const form = root.querySelector("#hook-form");
  const boxes = root.querySelector("#hook-events");
  boxes.replaceChildren(...EVENTS.map((name) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.value = name; box.checked = name === "new_message";
    label.append(box, ` ${name}`);
    return label;
  }));
  const say = (text) => { root.querySelector("#hook-note").textContent = text; };

  async function render() {
    const { webhooks } = await api("/api/webhooks");
    const list = root.querySelector("#hooks");
    list.replaceChildren(...webhooks.map((hook) => {
      const li = document.createElement("li");
      li.dataset.webhookId = hook.id;
      const state = hook.disabledReason ? `disabled: ${hook.disabledReason}` : (hook.paused ? "paused" : "active");
      li.innerHTML = `<div><b class="url"></b> <span class="state"></span></div>
        <div class="meta events"></div><ul class="deliveries"></ul>
        <button class="refresh" type="button">Deliveries</button>
        <button class="replay" type="button">Replay last hour</button>`;
      li.querySelector(".url").textContent = hook.url;
      li.querySelector(".state").textContent = state;
      li.querySelector(".events").textContent = hook.events.join(", ");
      li.querySelector(".refresh").addEventListener("click", () => deliveries(hook.id, li));
      li.querySelector(".replay").addEventListener("click", async () => {
        const from = new Date(Date.now() - 3600_000).toISOString();
        const r = await api(`/api/webhooks/${hook.id}/replay`, { method: "POST", body: JSON.stringify({ from }) });
        say(`replay: ${r.scheduled} scheduled`);
      });
      return li;
    }));
    if (!webhooks.length) list.innerHTML = `<li class="empty">No endpoints yet.</li>`;
  }

  async function deliveries(id, li) {
    const page = await api(`/api/webhooks/${id}/deliveries?limit=10`);
    li.querySelector(".deliveries").replaceChildren(...page.deliveries.map((d) => {
      const item = document.createElement("li");
      const last = d.lastAttempts.at(-1);
      item.dataset.state = d.state;
      item.textContent = `${d.eventType} · ${d.state} · ${d.attempts} attempt(s)` +
        (last ? ` · ${last.status ?? last.error} in ${Math.round(last.latencyMs)} ms` : "");
      return item;
    }));
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const events = [...boxes.querySelectorAll("input:checked")].map((b) => b.value);
    const url = root.querySelector("#hook-url").value.trim();
    try {
      const hook = await api("/api/webhooks", { method: "POST", body: JSON.stringify({ url, events }) });
      root.querySelector("#hook-secret").textContent = hook.secret;
      say("Endpoint added. Its signing secret is shown once:");
      await render();
    } catch (err) {
      say(`not added: ${err.message}`);
    }
  });
  root.addEventListener("toggle", () => { if (root.open) render(); });
}
