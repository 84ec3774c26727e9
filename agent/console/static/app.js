// maix console: hash routes (#/ fleet, #/camera/DEV, #/library/DEV), one WebSocket, plain modules.
import { Link } from "./link.js";
import { FleetPage } from "./fleet.js";
import { CameraPage } from "./camera.js";
import { LibraryPage } from "./library.js";

const main = document.getElementById("main");
const cameras = new Map();
let page = null;

export function log(text, ok = true) {
  const el = document.createElement("div");
  el.textContent = text;
  if (!ok) el.className = "err";
  const box = document.getElementById("log");
  box.prepend(el);
  while (box.children.length > 8) box.lastChild.remove();
}

// Show a command's reply in the log; returns it.
export function shown(what, reply) {
  if (reply.ok) log(`${what}: ok ${JSON.stringify(reply.data ?? {}).slice(0, 160)}`);
  else log(`${what}: ${reply.error?.code ?? "error"}: ${reply.error?.message ?? ""}`, false);
  return reply;
}

const link = new Link(
  (msg) => {
    if (msg.type === "hello") { cameras.clear(); for (const c of msg.cameras) cameras.set(c.dev, c); broker(msg.connected); }
    else if (msg.type === "device") cameras.set(msg.camera.dev, msg.camera);
    else if (msg.type === "broker") broker(msg.connected);
    else if (msg.type === "error" && (msg.ref === null || msg.ref === undefined)) log(msg.message, false);
    page?.message?.(msg);
  },
  (head, blob) => page?.frame?.(head, blob),
);

function broker(connected) {
  const el = document.getElementById("broker");
  el.textContent = connected ? "broker connected" : "broker disconnected";
  el.className = `badge ${connected ? "online" : "offline"}`;
}

function route() {
  page?.close?.();
  const [, kind, dev] = location.hash.split("/");
  const ctx = { link, cameras, main, log, shown };
  main.replaceChildren();
  const nav = document.getElementById("nav");
  nav.replaceChildren();
  if (dev) {
    const d = decodeURIComponent(dev);
    for (const [k, name] of [["camera", "Live view"], ["library", "Libraries"]]) {
      const a = document.createElement("a");
      a.href = `#/${k}/${encodeURIComponent(d)}`;
      a.textContent = `${name} · ${d}`;
      nav.append(a);
    }
  }
  if (kind === "camera" && dev) page = new CameraPage(ctx, decodeURIComponent(dev));
  else if (kind === "library" && dev) page = new LibraryPage(ctx, decodeURIComponent(dev));
  else page = new FleetPage(ctx);
  link.watch(page.dev ?? null);
}

window.maixConsole = { get page() { return page; }, link }; // for the browser tests and the devtools
window.addEventListener("hashchange", route);
route();
