// Camera page: the live view with overlays, pipeline switches, threshold sliders, snapshot, and
// teaching by pointing (draw a box → track / learn a class; click a face → this is… / not this person).
import { drawOverlays, KINDS, ResultBuffer } from "./overlay.js";

const SLIDERS = [
  ["face", "match", 0, 1, 0.01],
  ["face", "detect", 0, 1, 0.01],
  ["segment", "score", 0, 1, 0.01],
  ["track", "score", 0, 1.01, 0.01],
  ["classifier", "min_similarity", 0, 1, 0.01],
  ["classifier", "max_distance", 1, 40, 0.5],
];

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  for (const [k, v] of Object.entries(props.dataset || {})) e.dataset[k] = v;
  e.append(...children);
  return e;
}

export class CameraPage {
  constructor(ctx, dev) {
    this.ctx = ctx;
    this.dev = dev;
    this.results = new ResultBuffer();
    this.show = Object.fromEntries(KINDS.map((k) => [k, true]));
    this.frozen = null; // {bitmap, grab, w, h} while teaching
    this.drag = null;
    this.box = null; // [x, y, w, h] in frame pixels
    this.face = null;
    this.frames = 0;
    this.build();
    this.refreshControls();
  }

  build() {
    const { main } = this.ctx;
    this.canvas = el("canvas", { id: "view", width: 640, height: 360 });
    this.g = this.canvas.getContext("2d");
    this.info = el("div", { id: "frameinfo", className: "muted" }, "waiting for the live view…");
    const left = el("div", { className: "viewwrap" }, this.canvas, this.info, this.teachPanel());
    const side = el("div", {}, this.overlayPanel(), this.pipelinePanel(), this.thresholdPanel(), this.snapshotPanel());
    main.append(el("h2", {}, `Camera ${this.dev}`), el("div", { className: "camera" }, left, side));
    this.canvas.addEventListener("mousedown", (e) => this.down(e));
    this.canvas.addEventListener("mousemove", (e) => this.move(e));
    this.canvas.addEventListener("mouseup", (e) => this.up(e));
  }

  overlayPanel() {
    const p = el("div", { className: "panel" }, el("h3", {}, "Overlays"));
    for (const k of KINDS) {
      const box = el("input", { type: "checkbox", checked: true, id: `overlay-${k}` });
      box.addEventListener("change", () => { this.show[k] = box.checked; });
      p.append(el("label", {}, box, ` ${k}`));
    }
    return p;
  }

  pipelinePanel() {
    const p = el("div", { className: "panel", id: "pipelines" }, el("h3", {}, "Pipelines"));
    this.switches = {};
    for (const k of ["faces", "segment", "track", "classifier"]) {
      const box = el("input", { type: "checkbox", id: `pipeline-${k}` });
      box.addEventListener("change", async () => {
        const r = this.ctx.shown(`pipelines/set ${k}`, await this.cmd("pipelines/set", { [k]: box.checked }));
        if (r.ok) this.setSwitches(r.data);
      });
      this.switches[k] = box;
      p.append(el("label", {}, box, ` ${k}`));
    }
    return p;
  }

  thresholdPanel() {
    const p = el("div", { className: "panel", id: "thresholds" }, el("h3", {}, "Thresholds"));
    this.sliders = {};
    for (const [group, key, min, max, step] of SLIDERS) {
      const out = el("span", { className: "muted" });
      const input = el("input", { type: "range", min, max, step, id: `th-${group}-${key}` });
      input.addEventListener("input", () => { out.textContent = ` ${input.value}`; });
      input.addEventListener("change", async () => {
        const r = this.ctx.shown(`thresholds ${group}.${key}`, await this.cmd("thresholds/set", { [group]: { [key]: Number(input.value) } }));
        if (r.ok) this.setSliders(r.data);
      });
      this.sliders[`${group}.${key}`] = [input, out];
      p.append(el("label", {}, `${group}.${key}`, out, input));
    }
    return p;
  }

  snapshotPanel() {
    const btn = el("button", { id: "snapshot", textContent: "Download snapshot" });
    btn.addEventListener("click", async () => {
      const msg = await this.ctx.link.request({ type: "grab", dev: this.dev });
      if (!this.ctx.shown("snapshot", msg.reply).ok) return;
      const a = el("a", { href: `data:image/jpeg;base64,${msg.jpeg}`, download: `${this.dev}-${msg.seq ?? "frame"}.jpg` });
      document.body.append(a);
      a.click();
      a.remove();
    });
    return el("div", { className: "panel" }, el("h3", {}, "Snapshot"), btn);
  }

  teachPanel() {
    this.teach = el("div", { className: "panel", id: "teach", hidden: true });
    return this.teach;
  }

  async cmd(command, body, extra) {
    return this.ctx.link.command(this.dev, command, body, extra);
  }

  async refreshControls() {
    const p = await this.cmd("pipelines/get");
    if (p.ok) this.setSwitches(p.data);
    const t = await this.cmd("thresholds/get");
    if (t.ok) this.setSliders(t.data);
  }

  setSwitches(data) {
    for (const [k, box] of Object.entries(this.switches)) box.checked = !!data[k];
  }

  setSliders(data) {
    for (const [name, [input, out]] of Object.entries(this.sliders)) {
      const [group, key] = name.split(".");
      const v = data[group]?.[key];
      if (v != null) { input.value = v; out.textContent = ` ${v}`; }
    }
  }

  // -- stream ----------------------------------------------------------------------------------
  message(msg) {
    if (msg.type === "result" && msg.dev === this.dev) this.results.add(msg.kind, msg.body);
  }

  async frame(head, blob) {
    if (head.dev !== this.dev || this.frozen) return;
    const bitmap = await createImageBitmap(blob);
    if (this.frozen) return;
    this.head = head;
    this.paint(bitmap, head);
    this.frames += 1;
    this.canvas.dataset.frames = String(this.frames);
    this.canvas.dataset.seq = String(head.seq);
  }

  paint(bitmap, head) {
    if (this.canvas.width !== bitmap.width || this.canvas.height !== bitmap.height) {
      this.canvas.width = bitmap.width;
      this.canvas.height = bitmap.height;
    }
    this.g.drawImage(bitmap, 0, 0);
    this.scale = bitmap.width / head.w;
    const res = {};
    for (const k of KINDS) res[k] = this.results.pick(k, head.seq, head.ts);
    this.current = res;
    drawOverlays(this.g, res, this.scale, this.show);
    const names = KINDS.filter((k) => res[k]).join(", ") || "none";
    this.info.textContent = `frame ${head.seq} · ${head.w}×${head.h} · overlays: ${names}`;
    this.info.dataset.overlays = names;
    if (this.box) this.drawBox(this.box);
  }

  // -- teaching by pointing ------------------------------------------------------------------------
  point(e) {
    const r = this.canvas.getBoundingClientRect();
    const k = this.canvas.width / r.width;
    return [(e.clientX - r.left) * k, (e.clientY - r.top) * k];
  }

  async freeze() {
    if (this.frozen) return;
    this.frozen = { pending: true };
    const msg = await this.ctx.link.request({ type: "grab", dev: this.dev });
    if (!msg.grab) {
      this.ctx.shown("grab", msg.reply ?? { ok: false, error: { message: msg.message } });
      this.unfreeze();
      return;
    }
    const blob = await (await fetch(`data:image/jpeg;base64,${msg.jpeg}`)).blob();
    const full = await createImageBitmap(blob);
    const bitmap = await createImageBitmap(full, { resizeWidth: this.canvas.width, resizeHeight: Math.round(this.canvas.width * msg.h / msg.w) });
    if (!this.frozen) return;
    this.frozen = { grab: msg.grab, w: msg.w, h: msg.h, bitmap, seq: msg.seq };
    this.repaintFrozen();
    this.canvas.dataset.grab = msg.grab;
  }

  repaintFrozen() {
    const f = this.frozen;
    if (!f || !f.bitmap) return;
    this.g.drawImage(f.bitmap, 0, 0, this.canvas.width, this.canvas.height);
    if (this.box) this.drawBox(this.box);
    for (const face of f.faces || []) this.drawBox(face.box, face === this.face ? "#fbbc04" : "#9aa0a6");
  }

  unfreeze() {
    this.frozen = null;
    this.box = null;
    this.face = null;
    this.teach.hidden = true;
    this.teach.replaceChildren();
    delete this.canvas.dataset.grab;
  }

  drawBox(box, colour = "#ff00ff") {
    const s = this.scale || 1;
    this.g.strokeStyle = colour;
    this.g.lineWidth = 2;
    this.g.strokeRect(box[0] * s, box[1] * s, box[2] * s, box[3] * s);
  }

  down(e) {
    if (!this.head) return;
    this.drag = { start: this.point(e), end: this.point(e) };
    this.freeze();
  }

  move(e) {
    if (!this.drag) return;
    this.drag.end = this.point(e);
    const s = this.scale || 1;
    const [x0, y0] = this.drag.start;
    const [x1, y1] = this.drag.end;
    this.box = [Math.min(x0, x1) / s, Math.min(y0, y1) / s, Math.abs(x1 - x0) / s, Math.abs(y1 - y0) / s];
    this.repaintFrozen();
  }

  up(e) {
    if (!this.drag) return;
    this.move(e);
    const [x0, y0] = this.drag.start;
    const [x1, y1] = this.drag.end;
    this.drag = null;
    if (Math.abs(x1 - x0) < 6 && Math.abs(y1 - y0) < 6) {
      this.box = null;
      this.clickFace(x0, y0);
      return;
    }
    this.boxActions();
  }

  // A click: the faces of the still frame (infer on the grabbed frame), then the one clicked.
  async clickFace(x, y) {
    const s = this.scale || 1;
    while (this.frozen && !this.frozen.grab) await new Promise((r) => setTimeout(r, 50));
    const f = this.frozen;
    if (!f) return;
    if (!f.faces) {
      const r = await this.cmd("infer", { pipeline: "faces" }, { grab: f.grab });
      if (!r.ok) { this.ctx.shown("faces on the still frame", r); this.unfreeze(); return; }
      f.faces = r.data.faces || [];
      this.canvas.dataset.stillFaces = String(f.faces.length);
    }
    this.repaintFrozen();
    const [fx, fy] = [x / s, y / s];
    const face = f.faces.find((c) => fx >= c.box[0] && fx <= c.box[0] + c.box[2] && fy >= c.box[1] && fy <= c.box[1] + c.box[3]);
    if (!face) {
      this.showTeach([el("h3", {}, f.faces.length ? "Click a face on the still frame" : "No face on the still frame")]);
      return;
    }
    this.face = face;
    this.repaintFrozen();
    const name = el("input", { type: "text", id: "face-label", placeholder: "name" });
    const enrol = el("button", { id: "face-enrol", textContent: "This is…" });
    const others = f.faces.filter((c) => c !== face).map((c) => c.box);
    enrol.addEventListener("click", () => this.act("face/enrol", { label: name.value, pick: "largest" }, others));
    const parts = [el("h3", {}, `Face: ${face.label ?? "unknown"}`), name, enrol];
    if (face.label && face.label !== "unknown") {
      const not = el("button", { id: "face-reject", className: "danger", textContent: `Not ${face.label}` });
      not.addEventListener("click", () => this.act("face/reject", { label: face.label, box: face.box }));
      parts.push(not);
    }
    this.showTeach(parts);
  }

  boxActions() {
    const box = this.box.map((v) => Math.round(v * 10) / 10);
    const track = el("button", { id: "track-this", textContent: "Track this" });
    track.addEventListener("click", () => this.act("track/start", { box }));
    const name = el("input", { type: "text", id: "class-label", placeholder: "class name" });
    const learn = el("button", { id: "learn-class", textContent: "Learn as class…" });
    learn.addEventListener("click", () => this.act("classifier/add_class", { label: name.value, box }));
    this.showTeach([el("h3", {}, `Box ${box.map(Math.round).join(", ")}`), track, el("div", {}, name, learn)]);
  }

  showTeach(parts) {
    const cancel = el("button", { className: "plain", id: "teach-cancel", textContent: "Cancel" });
    cancel.addEventListener("click", () => this.unfreeze());
    this.replyBox = el("div", { id: "teach-reply" });
    this.teach.replaceChildren(...parts, cancel, this.replyBox);
    this.teach.hidden = false;
  }

  // A command on the frozen frame; `hide`: boxes greyed out first (the faces not meant).
  async act(command, body, hide) {
    while (this.frozen && !this.frozen.grab) await new Promise((r) => setTimeout(r, 50));
    if (!this.frozen) return;
    const extra = { grab: this.frozen.grab };
    if (hide && hide.length) extra.hide = hide;
    const reply = this.ctx.shown(command, await this.cmd(command, body, extra));
    this.replyBox.textContent = reply.ok ? `${command}: ok` : `${command}: ${reply.error.message}`;
    this.replyBox.className = reply.ok ? "" : "error";
    if (reply.ok) setTimeout(() => this.unfreeze(), 300);
  }
}
