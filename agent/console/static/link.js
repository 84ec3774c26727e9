// The page's one WebSocket to the console: JSON messages both ways, live-view frames as binary
// (4-byte header length, JSON header, JPEG). request() resolves with the message of the same ref.
export class Link {
  constructor(onMessage, onFrame) {
    this.onMessage = onMessage;
    this.onFrame = onFrame;
    this.ref = 0;
    this.waiting = new Map();
    this.watching = null;
    this.open();
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws.binaryType = "arraybuffer";
    this.ready = new Promise((resolve) => this.ws.addEventListener("open", resolve, { once: true }));
    this.ws.addEventListener("open", () => { if (this.watching) this.send({ type: "watch", dev: this.watching }); });
    this.ws.addEventListener("message", (ev) => this.receive(ev.data));
    this.ws.addEventListener("close", () => {
      this.onMessage({ type: "broker", connected: false, closed: true });
      setTimeout(() => this.open(), 1000);
    });
  }

  receive(data) {
    if (data instanceof ArrayBuffer) {
      const view = new DataView(data);
      const n = view.getUint32(0);
      const head = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 4, n)));
      this.onFrame(head, new Blob([new Uint8Array(data, 4 + n)], { type: "image/jpeg" }));
      return;
    }
    const msg = JSON.parse(data);
    if (msg.ref !== undefined && msg.ref !== null && this.waiting.has(msg.ref)) {
      this.waiting.get(msg.ref)(msg);
      this.waiting.delete(msg.ref);
    }
    this.onMessage(msg);
  }

  async send(obj) {
    await this.ready;
    this.ws.send(JSON.stringify(obj));
  }

  watch(dev) {
    this.watching = dev;
    this.send({ type: "watch", dev });
  }

  request(obj, timeoutMs = 60000) {
    const ref = ++this.ref;
    return new Promise((resolve) => {
      this.waiting.set(ref, resolve);
      this.send({ ...obj, ref });
      setTimeout(() => {
        if (!this.waiting.delete(ref)) return;
        resolve({ type: "error", ref, message: "no answer from the console" });
      }, timeoutMs);
    });
  }

  // A command to one camera: resolves with {ok, data} or {ok: false, error: {code, message}}.
  async command(dev, command, body = {}, extra = {}) {
    const msg = await this.request({ type: "cmd", dev, command, body, ...extra });
    if (msg.type === "error") return { ok: false, error: { code: "refused", message: msg.message } };
    return msg.reply;
  }
}
