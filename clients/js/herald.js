// herald.js — the browser client of Herald. One dependency-free ES module.
//
//   import { Herald } from "/herald.js";
//   const herald = new Herald("ws://host:8080/ws", { token });   // or getToken: async () => …
//   const sub = herald.subscribe("news", (notification) => { … });
//   herald.on("state", (state) => { … });   // connecting, connected, disconnected, closed
//   sub.unsubscribe(); herald.close();
//
// It answers the server's pings, reconnects with exponential backoff and full jitter (or after
// the delay a server_shutdown suggests), and resubscribes with `since` — the position of the
// last notification it received on each channel — so that what was published meanwhile
// arrives once and in order; when the server cannot replay it, a "recovery" event says
// recovered: false. When a WebSocket cannot be opened it falls back to Server-Sent Events
// (GET /sse), which resume through Last-Event-ID. A subscribe the application's backend could
// not be asked about (`temporarily_unavailable`) is sent again with backoff, and so is a
// connection its connect hook could not judge (close 4503); a connection the backend refused
// (another 4000–4999 code) is not retried. See docs/javascript.md.

export const VERSION = "1.3.0";

const CLOSE_UNAUTHORIZED = 4001;
const CLOSE_TOKEN_EXPIRED = 4002;
const CLOSE_DISCONNECTED = 4003;
const CLOSE_BACKEND_UNAVAILABLE = 4503;

/** A close code that says reconnecting as is cannot help: the server or its backend refused. */
function isRefusal(code) {
  return code >= 4000 && code <= 4999 && code !== CLOSE_TOKEN_EXPIRED && code !== CLOSE_BACKEND_UNAVAILABLE;
}

/** The SSE resume token of a set of positions: "channel~offset~epoch", comma-separated. */
function resumeToken(positions) {
  return [...positions.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([channel, p]) => `${channel}~${p.offset}~${p.epoch}`)
    .join(",");
}

export class Herald {
  /**
   * @param {string} url   ws:// or wss:// URL of a node's /ws
   * @param {object} [options]
   * @param {string} [options.token]          connection token (JWT), sent as the first message
   * @param {() => Promise<string>} [options.getToken]  fetches a fresh token before every connection
   * @param {"auto"|"websocket"|"sse"} [options.transport]  "auto" (default) falls back to SSE
   * @param {string} [options.sseUrl]         the node's /sse URL (default: derived from url)
   * @param {number} [options.backoffBase]    first reconnect delay, ms (default 200)
   * @param {number} [options.backoffCap]     longest reconnect delay, ms (default 10000)
   * @param {boolean} [options.autoAck]       acknowledge each notification once its handlers
   *   returned (default true); false: call ack() when the application has handled it
   * @param {number} [options.ackDelay]       acks are gathered per channel and sent at most
   *   this often, ms (default 1000): one small message per channel, however many notifications
   *   (each counts against the connection's HERALD_RATE_LIMIT)
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    this.sseUrl = options.sseUrl ?? url.replace(/^ws(s?):/, "http$1:").replace(/\/ws(\?.*)?$/, "/sse");
    this.transport = options.transport === "sse" ? "sse" : "websocket";
    this.state = "disconnected";
    this.clientId = null;
    this.node = null;
    this._listeners = new Map();
    this._subscriptions = new Map(); // channel → Set of handlers
    this._positions = new Map(); // channel → {offset, epoch}: where a resubscribe continues from
    this._socket = null;
    this._source = null;
    this._failures = 0;
    this._everOpened = false;
    this._reconnectHint = null;
    this._timer = null;
    this._resubscribes = new Map(); // channel → {attempts, timer}: subscribes to try again
    this._closed = false;
    this._acks = new Map(); // channel → {offset, epoch}: the highest not yet sent
    this._ackTimer = null;
    this._connect();
  }

  // MARK: API

  /** Subscribes `handler` to `channel`; returns `{ channel, unsubscribe() }`. */
  subscribe(channel, handler) {
    let handlers = this._subscriptions.get(channel);
    const fresh = !handlers;
    if (fresh) {
      handlers = new Set();
      this._subscriptions.set(channel, handlers);
    }
    if (handler) handlers.add(handler);
    if (fresh) this._channelsChanged(() => this._send({ type: "subscribe", channel }));
    return {
      channel,
      unsubscribe: () => {
        const set = this._subscriptions.get(channel);
        if (!set) return;
        if (handler) set.delete(handler);
        if (set.size > 0 && handler) return;
        this._subscriptions.delete(channel);
        this._positions.delete(channel);
        this._channelsChanged(() => this._send({ type: "unsubscribe", channel }));
      },
    };
  }

  /**
   * Listens to "state", "notification", "subscribed", "recovery", "error", "join", "leave",
   * "presence_changed", "disconnected" (the server ended this client: 4003) or "message"
   * (every server message). Returns a function that removes the listener.
   */
  on(event, listener) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(listener);
    return () => this._listeners.get(event)?.delete(listener);
  }

  /** Posts `text` to a channel the client is subscribed to (WebSocket transport only). */
  post(channel, text) {
    if (this.transport !== "websocket") throw new Error("posting needs the WebSocket transport");
    this._send({ type: "message", channel, text });
  }

  /**
   * Acknowledges `channel` up to `offset` (cumulative; `notification` may be passed instead of
   * both). In a `durable` namespace the server keeps the user's highest acknowledged position, and
   * any other connection of the user resumes after it. WebSocket transport only (a no-op on SSE).
   */
  ack(channel, offset, epoch) {
    if (typeof channel === "object" && channel !== null) ({ channel, offset, epoch } = channel);
    if (typeof offset !== "number" || this.transport !== "websocket") return;
    const pending = this._acks.get(channel);
    if (pending && pending.epoch === epoch && pending.offset >= offset) return;
    this._acks.set(channel, { offset, epoch });
    if (this._ackTimer === null) this._ackTimer = setTimeout(() => this._flushAcks(), this.options.ackDelay ?? 1000);
  }

  _flushAcks() {
    this._ackTimer = null;
    if (this._socket?.readyState !== WebSocket.OPEN) return; // sent again with the next one after a reconnect
    for (const [channel, { offset, epoch }] of this._acks) {
      if (this._subscriptions.has(channel)) this._send(epoch ? { type: "ack", channel, offset, epoch } : { type: "ack", channel, offset });
    }
    this._acks.clear();
  }

  /** The position a resubscribe of `channel` would continue from. */
  position(channel) {
    return this._positions.get(channel) ?? null;
  }

  /**
   * Who is subscribed to `channel` (one this client is subscribed to), cluster-wide:
   * resolves to `{ channel, members: [{clientId, user, name, node, connectedAt}], total }`.
   * WebSocket transport only; rejects with the server's error.
   */
  presence(channel) {
    if (this.transport !== "websocket" || this._socket?.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error("presence needs a connected WebSocket"));
    }
    return new Promise((resolve, reject) => {
      const off = this.on("message", (message) => {
        if (message.type === "presence" && message.channel === channel) {
          off();
          resolve(message);
        } else if (message.type === "error" && (message.code === "not_subscribed" || message.code === "unavailable")) {
          off();
          reject(Object.assign(new Error(message.error), { code: message.code }));
        }
      });
      this._send({ type: "presence", channel });
    });
  }

  /** The server ended this client for good (4003): no reconnect. */
  _disconnected(code, reason) {
    this._emit("disconnected", { code, reason });
    this.close();
  }

  /** Stops for good. */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    for (const retry of this._resubscribes.values()) clearTimeout(retry.timer);
    this._resubscribes.clear();
    this._socket?.close(1000);
    this._source?.close();
    this._setState("closed");
  }

  // MARK: Connection

  async _connect() {
    if (this._closed) return;
    this._setState("connecting");
    let token = this.options.token;
    if (this.options.getToken) {
      try {
        token = await this.options.getToken();
      } catch (error) {
        this._emit("error", { code: "unauthorized", error: `getToken failed: ${error}` });
        return this._retry();
      }
    }
    if (this._closed) return;
    if (this.transport === "sse") return this._openSSE(token);
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      return this._fallBackOrRetry();
    }
    this._socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this._everOpened = true;
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "welcome") {
        this._failures = 0;
        this.clientId = message.clientId;
        this.node = message.node;
        // Held by the server until the token is verified, so subscriptions may follow at once.
        if (token) this._send({ type: "auth", token });
        for (const channel of this._subscriptions.keys()) this._send(this._subscribeMessage(channel));
        this._setState("connected");
      } else if (message.type === "ping") {
        this._send({ type: "pong" });
      }
      this._dispatch(message);
    };
    socket.onclose = (event) => {
      if (this._socket !== socket) return;
      this._socket = null;
      if (this._closed) return;
      this._setState("disconnected");
      if (event.code === CLOSE_DISCONNECTED) return this._disconnected(event.code, event.reason);
      const refused = isRefusal(event.code) || (event.code === CLOSE_TOKEN_EXPIRED && !this.options.getToken);
      if (refused) {
        const code = event.code === CLOSE_UNAUTHORIZED ? "unauthorized" : event.code === CLOSE_TOKEN_EXPIRED ? "token_expired" : "forbidden";
        this._emit("error", { code, error: event.reason, closeCode: event.code });
        return this.close();
      }
      if (!opened) return this._fallBackOrRetry();
      this._retry();
    };
  }

  /** A WebSocket that never opened: after two such failures, Server-Sent Events instead. */
  _fallBackOrRetry() {
    this._failures += 1;
    if (this.options.transport !== "websocket" && !this._everOpened && this._failures >= 2) {
      this.transport = "sse";
      this._failures = 0;
      return this._connect();
    }
    this._retry();
  }

  _retry() {
    if (this._closed) return;
    const hint = this._reconnectHint;
    this._reconnectHint = null;
    const base = this.options.backoffBase ?? 200;
    const cap = this.options.backoffCap ?? 10000;
    const ceiling = Math.min(cap, base * 2 ** Math.min(this._failures, 20));
    const delay = hint ?? Math.random() * ceiling;
    this._failures += hint === null ? 1 : 0;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._connect(), delay);
  }

  _openSSE(token) {
    const query = new URLSearchParams();
    for (const channel of this._subscriptions.keys()) query.append("channel", channel);
    if (token) query.set("token", token);
    const resume = resumeToken(this._positions);
    if (resume) query.set("lastEventId", resume);
    if (this._subscriptions.size === 0) {
      // Nothing to stream yet: the stream opens with the first subscription.
      this._setState("connected");
      return;
    }
    const source = new EventSource(`${this.sseUrl}?${query}`);
    this._source = source;
    const parse = (event) => {
      try {
        return JSON.parse(event.data);
      } catch {
        return null;
      }
    };
    source.addEventListener("welcome", (event) => {
      const message = parse(event);
      this._failures = 0;
      this.clientId = message?.clientId ?? null;
      this.node = message?.node ?? null;
      this._setState("connected");
      if (message) this._dispatch(message);
    });
    for (const name of ["subscribed", "unsubscribed", "server_shutdown", "error", "presence", "join", "leave", "presence_changed"]) {
      source.addEventListener(name, (event) => {
        const message = parse(event);
        if (message) this._dispatch(message);
      });
    }
    source.addEventListener("disconnect", (event) => {
      const message = parse(event);
      const code = message?.code ?? CLOSE_DISCONNECTED;
      if (code === CLOSE_TOKEN_EXPIRED) {
        // As over a WebSocket: with getToken, reconnect with a fresh token; without, stop.
        source.close();
        this._source = null;
        this._setState("disconnected");
        if (this.options.getToken) return this._retry();
        this._emit("error", { code: "token_expired", error: message?.reason ?? "" });
        return this.close();
      }
      this._disconnected(code, message?.reason ?? "");
    });
    source.addEventListener("recovery", (event) => {
      const report = parse(event);
      if (report) this._emit("recovery", report);
    });
    source.onmessage = (event) => {
      const message = parse(event);
      if (message) this._dispatch(message);
    };
    source.onerror = () => {
      if (this._source !== source) return;
      this._setState("disconnected");
      // EventSource reconnects by itself (with Last-Event-ID) unless the server refused it;
      // then the stream is closed for good and we open a new one, with a fresh token.
      if (source.readyState === EventSource.CLOSED) {
        this._source = null;
        this._retry();
      }
    };
  }

  /** Subscriptions changed: a WebSocket sends the message; an SSE stream is reopened. */
  _channelsChanged(sendOverWebSocket) {
    if (this.transport === "websocket") {
      if (this._socket?.readyState === WebSocket.OPEN && this.state === "connected") sendOverWebSocket();
      return;
    }
    if (this.state === "connecting") return;
    this._source?.close();
    this._source = null;
    this._connect();
  }

  _subscribeMessage(channel) {
    const since = this._positions.get(channel);
    return since ? { type: "subscribe", channel, since } : { type: "subscribe", channel };
  }

  _send(message) {
    if (this._socket?.readyState === WebSocket.OPEN) this._socket.send(JSON.stringify(message));
  }

  // MARK: Messages

  _dispatch(message) {
    this._emit("message", message);
    switch (message.type) {
      case "notification": {
        if (message.offset !== undefined && message.epoch !== undefined) {
          this._positions.set(message.channel, { offset: message.offset, epoch: message.epoch });
        }
        for (const handler of this._subscriptions.get(message.channel) ?? []) handler(message);
        this._emit("notification", message);
        // Handled once the handlers returned; a conflated delivery's offset is the real one,
        // so acknowledging it skips what the server replaced, as it should.
        if (this.options.autoAck !== false && message.offset !== undefined) this.ack(message.channel, message.offset, message.epoch);
        break;
      }
      case "subscribed": {
        // A recovered subscription continues from where the client was (the replay moves the
        // position on); otherwise it starts at the channel's latest position.
        if (message.recovered !== true && message.offset !== undefined) {
          this._positions.set(message.channel, { offset: message.offset, epoch: message.epoch });
        }
        this._subscribeSucceeded(message.channel);
        this._emit("subscribed", message);
        if (message.recovered !== undefined && this.transport === "websocket") {
          this._emit("recovery", {
            type: "recovery", channel: message.channel, recovered: message.recovered, replayed: message.replayed ?? 0,
            offset: message.offset, epoch: message.epoch, unread: message.unread,
          });
        }
        break;
      }
      case "server_shutdown":
        this._reconnectHint = message.reconnectAfter ?? null;
        break;
      case "unsubscribed":
        // The application made this user leave the channel (or we asked to).
        this._subscriptions.delete(message.channel);
        this._positions.delete(message.channel);
        this._emit("unsubscribed", message);
        break;
      case "join":
      case "leave":
      case "presence_changed":
        this._emit(message.type, message);
        break;
      case "error":
        if (message.code === "temporarily_unavailable" && message.channel) this._subscribeLater(message.channel);
        this._emit("error", message);
        break;
    }
  }

  /** The backend could not be asked about `channel`: subscribe again after a backoff delay. */
  _subscribeLater(channel) {
    if (this.transport !== "websocket" || !this._subscriptions.has(channel)) return;
    const retry = this._resubscribes.get(channel) ?? { attempts: 0, timer: null };
    clearTimeout(retry.timer);
    const base = this.options.backoffBase ?? 200;
    const cap = this.options.backoffCap ?? 10000;
    const delay = Math.random() * Math.min(cap, base * 2 ** Math.min(retry.attempts, 20));
    retry.attempts += 1;
    retry.timer = setTimeout(() => {
      if (!this._subscriptions.has(channel)) return this._resubscribes.delete(channel);
      this._channelsChanged(() => this._send(this._subscribeMessage(channel)));
    }, delay);
    this._resubscribes.set(channel, retry);
  }

  _subscribeSucceeded(channel) {
    clearTimeout(this._resubscribes.get(channel)?.timer);
    this._resubscribes.delete(channel);
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", state);
  }

  _emit(event, value) {
    for (const listener of this._listeners.get(event) ?? []) {
      try {
        listener(value);
      } catch (error) {
        console.error("herald.js listener failed", error);
      }
    }
  }
}
