// Attachments: files from the picker, drag-and-drop or paste, read as data URIs, shown as thumbnails.

// the server's default --max-media-bytes; a larger file is refused there anyway, so not read here
const MAX_BYTES = 64 * 1024 * 1024;
let nextId = 1;

export function kindOf(file) {
  const type = (file.type || "").toLowerCase();
  if (type === "application/pdf" || /\.pdf$/i.test(file.name)) return "pdf";
  if (type.startsWith("video/")) return "video";
  if (type.startsWith("image/")) return "image";
  return "file";
}

function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** The OpenAI content part of one attachment: videos as video_url (with `transcribe`, their speech
 *  too), PDFs as a file part (the server reads each page as an image), everything else as image_url
 *  (the server says what it cannot decode). */
export async function contentPart(att, { transcribe = false } = {}) {
  const url = await att.dataUrl;
  if (att.kind === "video") return { type: "video_url", video_url: transcribe ? { url, transcript: "auto" } : { url } };
  if (att.kind === "pdf") return { type: "file", file: { file_data: url, filename: att.name } };
  return { type: "image_url", image_url: { url } };
}

/** A list item previewing `att`: the image, the video's first frame, or a file box; the name as text. */
export function thumbnail(att) {
  const li = document.createElement("li");
  li.className = `thumb ${att.kind}`;
  li.title = `${att.name} (${formatSize(att.size)})`;
  let preview;
  if (att.kind === "image") {
    preview = document.createElement("img");
    preview.src = att.url;
    preview.alt = att.name;
  } else if (att.kind === "video") {
    preview = document.createElement("video");
    preview.src = att.url;
    preview.muted = true;
    preview.preload = "metadata";
    preview.setAttribute("aria-label", att.name);
  } else {
    preview = document.createElement("div");
    preview.className = "filebox";
    preview.textContent = (att.name.split(".").pop() || "file").slice(0, 5).toUpperCase();
  }
  const caption = document.createElement("span");
  caption.className = "thumb-name";
  caption.textContent = att.name;
  li.append(preview, caption);
  return li;
}

/** The pending attachments of the next message, shown in `listEl`. */
export class AttachmentTray {
  constructor(listEl, onNotice) {
    this.listEl = listEl;
    this.onNotice = onNotice;
    this.items = [];
  }

  add(files) {
    const refused = [];
    for (const file of files) {
      const kind = kindOf(file);
      if (file.size > MAX_BYTES) {
        refused.push(`${file.name}: ${formatSize(file.size)} is over the server's default media limit (64 MB)`);
      } else {
        const att = { id: nextId++, file, name: file.name || "pasted image", size: file.size, kind,
                      url: URL.createObjectURL(file), dataUrl: readDataUrl(file) };
        // a read error surfaces when sending; keep it from being reported as unhandled now
        att.dataUrl.catch(() => {});
        this.items.push(att);
      }
    }
    if (refused.length) this.onNotice(refused.join("\n"));
    this.render();
  }

  remove(id) {
    const i = this.items.findIndex((a) => a.id === id);
    if (i >= 0) URL.revokeObjectURL(this.items.splice(i, 1)[0].url);
    this.render();
  }

  /** Hand the attachments over to a sent message (their preview URLs go with them). */
  take() {
    const items = this.items;
    this.items = [];
    this.render();
    return items;
  }

  clear() {
    this.items.forEach((a) => URL.revokeObjectURL(a.url));
    this.items = [];
    this.render();
  }

  render() {
    const nodes = this.items.map((att) => {
      const li = thumbnail(att);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${att.name}`);
      remove.addEventListener("click", () => this.remove(att.id));
      li.append(remove);
      return li;
    });
    this.listEl.replaceChildren(...nodes);
    this.listEl.hidden = nodes.length === 0;
  }
}

/** Files dragged anywhere over `target` show `overlay`; dropping them calls onFiles(files). */
export function installDropZone(target, overlay, onFiles) {
  let depth = 0;
  const hasFiles = (e) => Array.from(e.dataTransfer?.types || []).includes("Files");
  target.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth += 1;
    overlay.hidden = false;
  });
  target.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  target.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.hidden = true;
  });
  target.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    onFiles(Array.from(e.dataTransfer.files));
  });
}
