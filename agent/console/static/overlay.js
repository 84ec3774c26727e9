// Overlays drawn in the browser from the results of the frame shown (matched by seq).
const COLOURS = ["#4287f5", "#f5425d", "#42f581", "#f5d442", "#be42f5", "#42e6f5"];
const KINDS = ["faces", "segments", "track", "classify"];

// Results per kind, newest last; pick() gives the one of a frame (or the latest before it).
export class ResultBuffer {
  constructor() { this.byKind = Object.fromEntries(KINDS.map((k) => [k, []])); }
  add(kind, body) {
    const list = this.byKind[kind];
    if (!list) return;
    list.push(body);
    if (list.length > 90) list.shift();
  }
  pick(kind, seq, ts) {
    const list = this.byKind[kind] || [];
    let best = null;
    for (const r of list) {
      if (r.seq === seq) return r;
      if (r.seq < seq && (!best || r.seq > best.seq)) best = r;
    }
    return best && Math.abs((ts ?? best.ts) - best.ts) < 1.0 ? best : null;
  }
}

function label(g, text, x, y, colour) {
  g.font = "13px system-ui, sans-serif";
  const w = g.measureText(text).width + 6;
  g.fillStyle = colour;
  g.fillRect(x, Math.max(0, y - 16), w, 16);
  g.fillStyle = "#000";
  g.fillText(text, x + 3, Math.max(12, y - 4));
}

// Draw the results `res` (frame pixels) scaled by s onto the canvas context g.
export function drawOverlays(g, res, s, show) {
  g.lineWidth = 2;
  const seg = res.segments;
  if (show.segments && seg) {
    seg.objects.forEach((o, i) => {
      const c = COLOURS[(o.class_id ?? i) % COLOURS.length];
      g.fillStyle = c + "55";
      g.strokeStyle = c;
      for (const p of o.polygons || []) {
        if (p.length < 6) continue;
        g.beginPath();
        g.moveTo(p[0] * s, p[1] * s);
        for (let k = 2; k < p.length; k += 2) g.lineTo(p[k] * s, p[k + 1] * s);
        g.closePath();
        g.fill();
        g.stroke();
      }
      const [x, y] = o.box;
      label(g, `${o.label} ${(o.score * 100).toFixed(0)}%`, x * s, y * s, c);
    });
  }
  const faces = res.faces;
  if (show.faces && faces) {
    for (const f of faces.faces) {
      const known = f.label && f.label !== "unknown";
      const c = known ? "#34a853" : "#fbbc04";
      const [x, y, w, h] = f.box;
      g.strokeStyle = c;
      g.strokeRect(x * s, y * s, w * s, h * s);
      const sim = f.similarity != null ? ` ${f.similarity.toFixed(2)}` : "";
      label(g, `${f.label ?? "unknown"}${sim}`, x * s, y * s, c);
    }
  }
  const track = res.track;
  if (show.track && track && track.box) {
    const [x, y, w, h] = track.box;
    const c = track.state === "tracking" ? "#00e5ff" : "#ff6d00";
    g.strokeStyle = c;
    g.setLineDash(track.state === "tracking" ? [] : [6, 4]);
    g.strokeRect(x * s, y * s, w * s, h * s);
    g.setLineDash([]);
    label(g, `${track.state} ${(track.score ?? 0).toFixed(2)}`, x * s, y * s + h * s + 16, c);
  }
  const cls = res.classify;
  if (show.classify && cls) {
    label(g, `class: ${cls.label} ${cls.score != null ? cls.score.toFixed(2) : ""}`, 8, 24, "#ffffff");
  }
}

export { KINDS };
