// Libraries: faces (a card per person with sample thumbnails; rename, forget, remove one sample),
// classes (views, remove, learn) and the review queue of unknown faces (name one to enrol it).
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  e.append(...children);
  return e;
}

function jpegSrc(data) {
  const b64 = data?.image ?? data?.jpeg ?? data?.crop;
  return typeof b64 === "string" ? `data:image/jpeg;base64,${b64}` : null;
}

export class LibraryPage {
  constructor(ctx, dev) {
    this.ctx = ctx;
    this.dev = null; // the library takes no live-view lease
    this.camera = dev;
    this.tabs = el("div", { className: "tabs" });
    this.body = el("div", { id: "library" });
    for (const [key, name] of [["faces", "Faces"], ["classes", "Classes"], ["review", "Review queue"]]) {
      const b = el("button", { className: "plain", id: `tab-${key}`, textContent: name });
      b.addEventListener("click", () => this.open(key));
      this.tabs.append(b);
    }
    ctx.main.append(el("h2", {}, `Libraries · ${dev}`), this.tabs, this.body);
    this.open("faces");
  }

  cmd(command, body = {}) {
    return this.ctx.link.command(this.camera, command, body);
  }

  error(reply, where = this.body) {
    where.append(el("p", { className: "error" }, `${reply.error?.code}: ${reply.error?.message}`));
  }

  async open(key) {
    this.current = key;
    for (const b of this.tabs.children) b.classList.toggle("active", b.id === `tab-${key}`);
    this.body.replaceChildren(el("p", { className: "muted" }, "loading…"));
    if (key === "faces") await this.faces();
    else if (key === "classes") await this.classes();
    else await this.review();
  }

  async act(command, body) {
    const reply = this.ctx.shown(command, await this.cmd(command, body));
    if (!reply.ok) this.error(reply);
    else await this.open(this.current);
    return reply;
  }

  // -- faces -----------------------------------------------------------------------------------------
  async faces() {
    const reply = await this.cmd("face/list");
    this.body.replaceChildren();
    if (!reply.ok) return this.error(reply);
    const people = reply.data.faces || [];
    const cards = el("div", { className: "cards", id: "faces" });
    if (!people.length) cards.append(el("p", { className: "muted" }, "nobody enrolled yet: click a face in the live view"));
    for (const p of people) cards.append(this.personCard(p));
    this.body.append(cards);
  }

  personCard(p) {
    // face/list of the face library: sample_list [{id, added, origin, crop_bytes}]; older agents: a count
    const samples = Array.isArray(p.sample_list) ? p.sample_list : Array.isArray(p.samples) ? p.samples : [];
    const count = typeof p.samples === "number" ? p.samples : samples.length;
    const card = el("div", { className: "card person" });
    card.dataset.label = p.label;
    const negatives = typeof p.negatives === "number" ? p.negatives : (p.negative_list || []).length;
    card.append(
      el("h3", {}, p.label),
      el("div", { className: "muted" }, `${count} sample${count === 1 ? "" : "s"}${negatives ? ` · ${negatives} negative${negatives === 1 ? "" : "s"}` : ""}`),
    );
    const thumbs = el("div", { className: "thumbs" });
    for (const s of samples) thumbs.append(this.thumb(p.label, typeof s === "object" ? s.id : s));
    const to = el("input", { type: "text", className: "rename-to", placeholder: "new name" });
    const rename = el("button", { className: "rename", textContent: "Rename" });
    rename.addEventListener("click", () => this.act("face/rename", { label: p.label, to: to.value }));
    const forget = el("button", { className: "danger forget", textContent: "Forget" });
    forget.addEventListener("click", () => this.act("face/forget", { label: p.label }));
    card.append(thumbs, el("div", {}, to, rename), forget);
    return card;
  }

  thumb(label, id) {
    const img = el("img", { alt: `sample ${id}` });
    const wrap = el("div", { className: "thumb" }, img);
    wrap.dataset.sample = id;
    this.cmd("face/sample", { sample: id }).then((r) => {
      const src = r.ok ? jpegSrc(r.data) : null;
      if (src) { img.src = src; img.className = "loaded"; }
      else img.title = r.error?.message ?? "no crop";
    });
    const remove = el("button", { className: "danger remove-sample", textContent: "×", title: "remove this sample" });
    remove.addEventListener("click", () => this.act("face/forget", { label, sample: id }));
    wrap.append(remove);
    return wrap;
  }

  // -- classes ---------------------------------------------------------------------------------------
  async classes() {
    const reply = await this.cmd("classifier/list");
    this.body.replaceChildren();
    if (!reply.ok) return this.error(reply);
    const table = el("table", { id: "classes" });
    table.innerHTML = "<tr><th>class</th><th>views</th><th>learned</th><th></th></tr>";
    for (const c of reply.data.classes || []) {
      const tr = table.insertRow();
      tr.dataset.label = c.label;
      tr.insertCell().textContent = c.label;
      tr.insertCell().textContent = c.views;
      tr.insertCell().textContent = c.learned ? "yes" : "no";
      const rm = el("button", { className: "danger", textContent: "Remove" });
      rm.addEventListener("click", () => this.act("classifier/remove_class", { label: c.label }));
      tr.insertCell().append(rm);
    }
    const learn = el("button", { id: "learn", textContent: "Learn from samples" });
    learn.addEventListener("click", () => this.act("classifier/learn", {}));
    this.body.append(
      table,
      el("p", { className: "muted" }, `${reply.data.samples ?? 0} unlabelled samples · new classes: draw a box in the live view`),
      learn,
    );
  }

  // -- review queue ------------------------------------------------------------------------------------
  async review() {
    const reply = await this.cmd("face/unknowns", { crops: true });
    this.body.replaceChildren();
    if (!reply.ok) return this.error(reply);
    const items = reply.data.unknowns || reply.data.faces || [];
    const cards = el("div", { className: "cards", id: "unknowns" });
    if (!items.length) cards.append(el("p", { className: "muted" }, "no unknown faces waiting"));
    for (const u of items) {
      const card = el("div", { className: "card unknown" });
      card.dataset.id = u.id;
      const src = jpegSrc(u);
      if (src) card.append(el("img", { src, alt: `unknown ${u.id}`, className: "crop" }));
      const t = u.last_seen ?? u.created ?? u.ts;
      const when = t ? new Date(t * 1000).toLocaleString() : "";
      const name = el("input", { type: "text", placeholder: "name" });
      const enrol = el("button", { textContent: "Enrol" });
      enrol.addEventListener("click", () => this.act("face/enrol", { label: name.value, unknown_id: u.id }));
      const dismiss = el("button", { className: "plain", textContent: "Dismiss" });
      dismiss.addEventListener("click", () => this.act("face/dismiss", { unknown_id: u.id }));
      card.append(el("div", { className: "muted" }, when), name, enrol, dismiss);
      cards.append(card);
    }
    this.body.append(cards);
  }
}
