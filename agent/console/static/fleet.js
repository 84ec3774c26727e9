// Fleet page: every camera seen (retained availability + state), live.
export class FleetPage {
  constructor(ctx) {
    this.ctx = ctx;
    const h = document.createElement("h2");
    h.textContent = "Fleet";
    this.table = document.createElement("table");
    this.table.id = "fleet";
    ctx.main.append(h, this.table);
    this.render();
  }

  message(msg) {
    if (msg.type === "device" || msg.type === "hello") this.render();
  }

  render() {
    const rows = [...this.ctx.cameras.values()].sort((a, b) => a.dev.localeCompare(b.dev));
    const head = "<tr><th>camera</th><th>status</th><th>fps</th><th>pipelines</th><th>banks</th><th>sync</th><th>warnings</th><th></th></tr>";
    this.table.innerHTML = head;
    if (!rows.length) {
      const tr = this.table.insertRow();
      tr.insertCell().textContent = "no camera seen yet";
    }
    for (const c of rows) {
      const tr = this.table.insertRow();
      tr.dataset.dev = c.dev;
      const name = tr.insertCell();
      const a = document.createElement("a");
      a.href = `#/camera/${encodeURIComponent(c.dev)}`;
      a.textContent = c.dev;
      name.append(a);
      const st = tr.insertCell();
      const badge = document.createElement("span");
      badge.className = `badge status ${c.online ? "online" : "offline"}`;
      badge.textContent = c.online ? "online" : "offline";
      st.append(badge);
      tr.insertCell().textContent = c.online && c.fps != null ? c.fps.toFixed(1) : "–";
      tr.insertCell().textContent = Object.entries(c.pipelines || {}).filter(([, on]) => on).map(([k]) => k).join(", ") || "none";
      const b = c.banks || {};
      tr.insertCell().textContent = `faces ${b.faces ?? "?"} · classes ${b.classes ?? "?"}`;
      tr.insertCell().textContent = c.sync ? `${c.sync.state}${c.sync.signed ? " (signed)" : ""}` : "–";
      const w = tr.insertCell();
      w.className = "muted";
      w.textContent = (c.warnings || []).join("; ");
      const l = tr.insertCell();
      const lib = document.createElement("a");
      lib.href = `#/library/${encodeURIComponent(c.dev)}`;
      lib.textContent = "libraries";
      l.append(lib);
    }
  }
}
