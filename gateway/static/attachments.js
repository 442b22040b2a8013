// Attachments on the page: photos inline (thumbnail, click for the full size), audio and
// video players, file chips with name and size. The bytes need the Bearer token, which
// <img src> cannot send: each is fetched and shown from a blob: URL.

const urls = new Map();  // "id/variant" -> blob: URL (or its pending promise)
const URLS_MAX = 200;

function token() { return sessionStorage.getItem("hub.token"); }

export function attachmentUrl(id, variant = "file") {
  const key = `${id}/${variant}`;
  if (!urls.has(key)) {
    const path = `/api/attachments/${encodeURIComponent(id)}${variant === "thumbnail" ? "/thumbnail" : ""}`;
    urls.set(key, fetch(path, { headers: { "Authorization": `Bearer ${token()}` } })
      .then((resp) => {
        if (!resp.ok) throw new Error(`${path}: ${resp.status}`);
        return resp.blob();
      })
      .then((blob) => URL.createObjectURL(blob))
      .catch((err) => { urls.delete(key); throw err; }));
    if (urls.size > URLS_MAX) {
      const [oldest, url] = urls.entries().next().value;
      urls.delete(oldest);
      Promise.resolve(url).then((u) => URL.revokeObjectURL(u)).catch(() => {});
    }
  }
  return urls.get(key);
}

export function fmtSize(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function chip(a, note) {
  const el = document.createElement("a");
  el.className = "chip";
  el.href = "#";
  el.dataset.attachmentId = a.id;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = a.name || a.mimeType || "file";
  const size = document.createElement("span");
  size.className = "size";
  size.textContent = note || fmtSize(a.size);
  el.append("📎 ", name, " ", size);
  if (a.status === "ready") {
    el.addEventListener("click", async (e) => {
      e.preventDefault();
      const link = document.createElement("a");
      link.href = await attachmentUrl(a.id);
      link.download = a.name || "attachment";
      link.click();
    });
  }
  return el;
}

function viewer(a) {
  const box = document.createElement("div");
  box.id = "viewer";
  const img = document.createElement("img");
  img.alt = a.name || "photo";
  box.append(img);
  box.addEventListener("click", () => box.remove());
  document.body.append(box);
  attachmentUrl(a.id).then((u) => { img.src = u; }).catch(() => box.remove());
}

function image(a) {
  const img = document.createElement("img");
  img.className = "thumb";
  img.alt = a.name || "photo";
  img.dataset.attachmentId = a.id;
  if (a.width && a.height) { img.width = Math.min(a.width, 240); img.height = Math.round(img.width * a.height / a.width); }
  attachmentUrl(a.id, "thumbnail")
    .catch(() => attachmentUrl(a.id))  // no thumbnail: the image itself
    .then((u) => { img.src = u; })
    .catch(() => img.replaceWith(chip(a, "unavailable")));
  img.addEventListener("click", () => viewer(a));
  return img;
}

function player(a, tag) {
  const el = document.createElement(tag);
  el.controls = true;
  el.preload = "metadata";
  el.className = tag;
  el.dataset.attachmentId = a.id;
  attachmentUrl(a.id).then((u) => { el.src = u; }).catch(() => el.replaceWith(chip(a, "unavailable")));
  return el;
}

export function attachmentNode(a) {
  if (a.status === "pending") return chip(a, "loading...");
  if (a.status === "failed") return chip(a, `unavailable${a.reason ? ` (${a.reason.replace("_", " ")})` : ""}`);
  if ((a.kind === "image" || a.kind === "sticker") && a.mimeType !== "image/svg+xml") return image(a);
  if (a.kind === "audio" || a.kind === "voice") return player(a, "audio");
  if (a.kind === "video") return player(a, "video");
  return chip(a);
}

// (Re)draw a message's attachments; kept when nothing about them changed, so a player
// keeps playing through a status update.
export function showAttachments(node, attachments) {
  const list = attachments || [];
  let box = node.querySelector(".attachments");
  const key = JSON.stringify(list.map((a) => [a.id, a.status]));
  if (box && box.dataset.key === key) return;
  if (!list.length) { if (box) box.remove(); return; }
  if (!box) {
    box = document.createElement("div");
    box.className = "attachments";
    node.querySelector(".text").after(box);
  }
  box.dataset.key = key;
  box.replaceChildren(...list.map(attachmentNode));
}

// The reply box's paper-clip: files picked wait as chips until the reply is sent.
export function attachPicker(form, input, list) {
  const picked = [];
  const draw = () => {
    list.replaceChildren(...picked.map((file, i) => {
      const el = document.createElement("span");
      el.className = "chip picked";
      el.textContent = `📎 ${file.name} ${fmtSize(file.size)} `;
      const remove = document.createElement("button");
      remove.type = "button"; remove.className = "remove"; remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${file.name}`);
      remove.addEventListener("click", () => { picked.splice(i, 1); draw(); });
      el.append(remove);
      return el;
    }));
    list.hidden = !picked.length;
  };
  input.addEventListener("change", () => { picked.push(...input.files); input.value = ""; draw(); });
  return { files: () => [...picked], clear: () => { picked.length = 0; draw(); } };
}

// Upload one file to the conversation: its attachment (id, kind, name, size...).
export async function upload(conversationId, file) {
  const body = new FormData();
  body.append("file", file, file.name);
  const resp = await fetch(`/api/conversations/${encodeURIComponent(conversationId)}/attachments`,
    { method: "POST", body, headers: { "Authorization": `Bearer ${token()}` } });
  if (!resp.ok) {
    let detail = `${resp.status}`;
    try { detail = (await resp.json()).detail || detail; } catch { /* not JSON */ }
    throw new Error(`${file.name}: ${detail}`);
  }
  return resp.json();
}
