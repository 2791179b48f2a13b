// Types of herald.js (the browser client), for editors and TypeScript projects:
//   import type { Herald, HeraldError } from "./herald.js";   // with this file beside it
// They describe what herald.js does; docs/javascript.md and docs/protocol.md say the rest.

export const VERSION: string;

/** A channel's position: where a resubscribe continues from. */
export interface Position {
  offset: number;
  epoch: string;
}

export interface Notification {
  type: "notification";
  /** Absent on a notification addressed to the user (`user` is set instead). */
  channel?: string;
  user?: string;
  title?: string;
  body?: string;
  data?: unknown;
  timestamp: string;
  id: string;
  from?: string;
  fromName?: string;
  fromUser?: string;
  /** The publisher's `conflate_key` (a slow client of a `latest` namespace gets the newest per key). */
  conflate_key?: string;
  offset?: number;
  epoch?: string;
}

/** The stable codes of `error` (docs/protocol.md#error-codes). */
export type ErrorCode =
  | "invalid_json" | "invalid_message" | "unknown_type" | "missing_field" | "invalid_field" | "invalid_channel"
  | "not_subscribed" | "too_many_subscriptions" | "name_too_long" | "rate_limited" | "payload_too_large"
  | "unauthorized" | "forbidden" | "invalid_token" | "token_expired" | "too_many_connections" | "unavailable"
  | "replication_timeout" | "not_found" | "unknown_namespace" | "temporarily_unavailable";

export interface HeraldError {
  code: ErrorCode;
  error: string;
  /** The subscribe or `message` refused; with `temporarily_unavailable` herald.js retries it. */
  channel?: string;
  /** The close code that ended the client (a refusal: 4001, or the backend's 4000–4999). */
  closeCode?: number;
}

export interface Subscribed {
  type: "subscribed";
  channel: string;
  subscriberCount: number;
  offset?: number;
  epoch?: string;
  recovered?: boolean;
  replayed?: number;
  /** Resumed from the user's acknowledged position (a `durable` namespace): how many followed it. */
  unread?: number;
}

export interface Recovery {
  type: "recovery";
  channel: string;
  recovered: boolean;
  replayed: number;
  offset?: number;
  epoch?: string;
  unread?: number;
}

export interface PresenceMember {
  clientId: string;
  user?: string;
  name?: string;
  node: string;
  connectedAt: string;
}

export interface HeraldOptions {
  /** Connection token (JWT), sent as the first message. */
  token?: string;
  /** Fetches a fresh token before every connection. */
  getToken?: () => Promise<string>;
  /** "auto" (default) falls back to Server-Sent Events. */
  transport?: "auto" | "websocket" | "sse";
  sseUrl?: string;
  /** First reconnect (and subscribe retry) delay, ms; default 200. */
  backoffBase?: number;
  /** Longest delay, ms; default 10000. */
  backoffCap?: number;
  /** Acknowledge each notification once its handlers returned; default true. */
  autoAck?: boolean;
  /** Acks are gathered per channel and sent at most this often, ms; default 1000. */
  ackDelay?: number;
}

export type State = "connecting" | "connected" | "disconnected" | "closed";

export interface HeraldEvents {
  state: State;
  notification: Notification;
  subscribed: Subscribed;
  unsubscribed: { type: "unsubscribed"; channel: string };
  recovery: Recovery;
  join: { type: "join"; channel: string; member: PresenceMember };
  leave: { type: "leave"; channel: string; member: PresenceMember };
  presence_changed: { type: "presence_changed"; channel: string };
  disconnected: { code: number; reason: string };
  error: HeraldError;
  message: { type: string; [field: string]: unknown };
}

export class Herald {
  constructor(url: string, options?: HeraldOptions);
  readonly url: string;
  readonly state: State;
  readonly transport: "websocket" | "sse";
  readonly clientId: string | null;
  readonly node: string | null;
  subscribe(channel: string, handler?: (notification: Notification) => void): { channel: string; unsubscribe(): void };
  on<E extends keyof HeraldEvents>(event: E, listener: (value: HeraldEvents[E]) => void): () => void;
  post(channel: string, text: string): void;
  presence(channel: string): Promise<{ type: "presence"; channel: string; members: PresenceMember[]; total: number }>;
  position(channel: string): Position | null;
  /** Acknowledges a channel up to `offset` (cumulative); WebSocket only. */
  ack(channel: string, offset: number, epoch?: string): void;
  ack(notification: Notification): void;
  close(): void;
}
