/**
 * One WebSocket to one ComfyUI server (docs/comfyui-protocol.md §3 and §4), reconnecting forever until
 * `close()`.
 *
 * - Every connection uses a **fresh clientId**. Reusing one after an unclean drop can leave the new
 *   socket silently orphaned when the server finally drops the old one (docs/comfyui-protocol.md §3.1, §8.4).
 *   Prompts submitted under an earlier clientId get no more messages; the worker polls them.
 * - A connection counts as open only after its first `status` message: a prompt posted before
 *   that could lose its first messages (pitfall 2).
 * - ComfyUI sets no heartbeat, so we send ws pings (aiohttp answers them) and drop a connection
 *   whose pong does not come back within one ping interval.
 * - Malformed frames are counted in `malformedFrames`, reported as `'error'` events if anyone
 *   listens, and otherwise ignored. Unknown message types are ignored (custom nodes send their own).
 * - Type-1 previews carry no prompt id: they are attributed to the prompt of the latest `progress`
 *   or `executing` message on this connection (docs/comfyui-protocol.md §4).
 *
 * Events:
 * - `'open'` `{clientId, reconnected}`: a connection got its first `status`. `reconnected` is true
 *   for every connection after the first one.
 * - `'message'` a parsed JSON message of a known type (`WsMessage`).
 * - `'preview'` `{promptId?, nodeId?, mime, image}` a sampler preview.
 * - `'close'` `{code, reason}`: an open connection closed (a reconnect follows unless `close()` was called).
 * - `'error'` a failed connection attempt or a malformed frame; emitted only when someone listens.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { ComfyBadReplyError, ComfyError, ComfyTimeoutError, ComfyUnreachableError } from './errors.js';
import { decodeBinaryFrame, parseWsMessage, type WsMessage } from './protocol.js';

export interface ComfySocketOptions {
  /**
   * Ask for type-4 previews (with prompt and node ids) by sending `feature_flags` as the first
   * message. Harmless when the server runs without previews.
   * @default true
   */
  previewMetadata?: boolean;
  /**
   * First reconnect delay in milliseconds; doubles after each failed attempt, with jitter.
   * @default 250
   */
  reconnectInitialMs?: number;
  /**
   * Longest reconnect delay in milliseconds.
   * @default 10_000
   */
  reconnectMaxMs?: number;
  /**
   * Interval of ws pings in milliseconds; a connection without a pong for one interval is dropped.
   * @default 15_000
   */
  pingIntervalMs?: number;
  /**
   * Time allowed from dialing to the first `status` message, in milliseconds.
   * @default 10_000
   */
  connectTimeoutMs?: number;
}

export interface SocketOpenEvent {
  clientId: string;
  /** False only for the first connection of this socket. */
  reconnected: boolean;
}

export interface SocketPreviewEvent {
  /** From type-4 metadata, or inferred from the latest progress/executing for type 1. */
  promptId?: string;
  nodeId?: string;
  mime: string;
  image: Buffer;
}

export interface SocketCloseEvent {
  code: number;
  reason: string;
}

export interface ComfySocketEvents {
  open: [SocketOpenEvent];
  message: [WsMessage];
  preview: [SocketPreviewEvent];
  close: [SocketCloseEvent];
  error: [Error];
}

type AttemptWaiter = { resolve: () => void; reject: (err: Error) => void };

export class ComfySocket extends EventEmitter<ComfySocketEvents> {
  readonly baseUrl: string;
  /** Frames that could not be parsed since the socket was created. */
  malformedFrames = 0;
  /** Connections that reached `open`, the first one included. */
  connections = 0;

  private readonly wsUrl: string;
  private readonly previewMetadata: boolean;
  private readonly reconnectInitialMs: number;
  private readonly reconnectMaxMs: number;
  private readonly pingIntervalMs: number;
  private readonly connectTimeoutMs: number;

  private currentClientId = randomUUID();
  private ws: WebSocket | undefined;
  private open = false;
  private started = false;
  private closed = false;
  /** Consecutive failed attempts, for the backoff. */
  private failures = 0;
  private lastError: Error | undefined;
  /** Any frame or pong since the last ping. */
  private alive = true;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private attemptWaiters: AttemptWaiter[] = [];
  private openWaiters = new Set<() => void>();
  /** For type-1 previews, which name no prompt. */
  private lastPromptId: string | undefined;
  private lastNodeId: string | undefined;

  constructor(baseUrl: string, options: ComfySocketOptions = {}) {
    super();
    const url = new URL(baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`ComfyUI URL must be http(s): ${baseUrl}`);
    const prefix = url.pathname.replace(/\/+$/, '');
    this.baseUrl = url.origin + prefix;
    this.wsUrl = `${url.protocol === 'https:' ? 'wss:' : 'ws:'}//${url.host}${prefix}/ws`;
    this.previewMetadata = options.previewMetadata ?? true;
    this.reconnectInitialMs = options.reconnectInitialMs ?? 250;
    this.reconnectMaxMs = options.reconnectMaxMs ?? 10_000;
    this.pingIntervalMs = options.pingIntervalMs ?? 15_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  }

  /** The clientId of the current (or next) connection. Changes on every reconnect. */
  get clientId(): string {
    return this.currentClientId;
  }

  /** True between a connection's first `status` and its close. */
  get isOpen(): boolean {
    return this.open;
  }

  /**
   * Starts connecting. Resolves when the first connection is open (its first `status` arrived);
   * rejects with `ComfyUnreachableError` or `ComfyTimeoutError` if that attempt fails, while the
   * socket keeps retrying in the background. Called again later, it waits for the next attempt.
   */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new ComfyError('UNREACHABLE', this.baseUrl, `ComfyUI socket to ${this.baseUrl} is closed`));
    if (this.open) return Promise.resolve();
    const attempt = new Promise<void>((resolve, reject) => this.attemptWaiters.push({ resolve, reject }));
    if (!this.started) {
      this.started = true;
      this.dial();
    }
    return attempt;
  }

  /**
   * Waits until a connection is open, for at most `timeoutMs`. Resolves `true` when open, `false`
   * on timeout or after `close()`. A reconnect waiting out its backoff is started at once.
   */
  waitUntilOpen(timeoutMs: number): Promise<boolean> {
    if (this.open) return Promise.resolve(true);
    if (this.closed || !this.started) return Promise.resolve(false);
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      this.dial();
    }
    return new Promise((resolve) => {
      const done = (value: boolean) => {
        clearTimeout(timer);
        this.openWaiters.delete(onOpen);
        resolve(value);
      };
      const onOpen = () => done(this.open);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.openWaiters.add(onOpen);
    });
  }

  /** Closes the connection for good (no reconnect) and waits until it is closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.settleAttempt(new ComfyError('UNREACHABLE', this.baseUrl, `ComfyUI socket to ${this.baseUrl} was closed`));
    for (const wake of this.openWaiters) wake();
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => ws.terminate(), 1_000);
      ws.once('close', () => {
        clearTimeout(force);
        resolve();
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000, 'client closing');
    });
  }

  // -------------------------------------------------------------------------------------------

  private dial(): void {
    this.currentClientId = randomUUID();
    this.lastPromptId = undefined;
    this.lastNodeId = undefined;
    this.lastError = undefined;
    const ws = new WebSocket(`${this.wsUrl}?clientId=${encodeURIComponent(this.currentClientId)}`, {
      handshakeTimeout: this.connectTimeoutMs,
      perMessageDeflate: false,
    });
    this.ws = ws;
    this.connectTimer = setTimeout(() => {
      this.lastError = new ComfyTimeoutError(this.baseUrl, 'the WebSocket to open and send its first status', this.connectTimeoutMs);
      ws.terminate();
    }, this.connectTimeoutMs);

    ws.on('open', () => {
      // Must be the very first client message, or the server ignores it (docs/comfyui-protocol.md §3.1).
      if (this.previewMetadata) ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } }));
    });
    ws.on('pong', () => (this.alive = true));
    ws.on('message', (data, isBinary) => {
      if (ws !== this.ws) return;
      this.alive = true;
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary) this.onBinary(buf);
      else this.onText(ws, buf.toString('utf8'));
    });
    ws.on('error', (err) => {
      this.lastError ??= err;
    });
    ws.on('close', (code, reason) => {
      if (ws === this.ws) this.onClose(code, reason.toString('utf8'));
    });
  }

  private onText(ws: WebSocket, text: string): void {
    let msg: ReturnType<typeof parseWsMessage>;
    try {
      msg = parseWsMessage(text);
    } catch (err) {
      this.malformed(`text frame ${JSON.stringify(text.slice(0, 120))}: ${err instanceof Error ? err.message : String(err)}`, err);
      return;
    }
    if (msg.type === 'unknown') return;
    if (msg.type === 'status' && !this.open) {
      clearTimeout(this.connectTimer);
      this.open = true;
      this.failures = 0;
      this.connections++;
      this.startPing(ws);
      this.emit('open', { clientId: this.currentClientId, reconnected: this.connections > 1 });
      this.settleAttempt(undefined);
      for (const wake of this.openWaiters) wake();
    }
    if ((msg.type === 'progress' || msg.type === 'executing') && msg.data.prompt_id) {
      this.lastPromptId = msg.data.prompt_id;
      if (msg.data.node) this.lastNodeId = msg.data.node;
    }
    this.emit('message', msg);
  }

  /** Drops the connection when a ping gets no pong (nor any other frame) within one interval. */
  private startPing(ws: WebSocket): void {
    this.alive = true;
    this.pingTimer = setInterval(() => {
      if (!this.alive) {
        this.lastError = new ComfyTimeoutError(this.baseUrl, 'a pong', this.pingIntervalMs);
        ws.terminate();
        return;
      }
      this.alive = false;
      if (ws.readyState === WebSocket.OPEN) ws.ping();
    }, this.pingIntervalMs);
  }

  private onBinary(buf: Buffer): void {
    let frame: ReturnType<typeof decodeBinaryFrame>;
    try {
      frame = decodeBinaryFrame(buf);
    } catch (err) {
      this.malformed(`binary frame of ${buf.length} bytes: ${err instanceof Error ? err.message : String(err)}`, err);
      return;
    }
    if ('unknown' in frame) return;
    if (frame.event === 1) {
      this.emit('preview', {
        ...(this.lastPromptId ? { promptId: this.lastPromptId } : {}),
        ...(this.lastNodeId ? { nodeId: this.lastNodeId } : {}),
        mime: frame.mime,
        image: frame.image,
      });
    } else if (frame.event === 4) {
      const nodeId = frame.metadata.display_node_id ?? frame.metadata.node_id;
      this.emit('preview', { promptId: frame.metadata.prompt_id, ...(nodeId ? { nodeId } : {}), mime: frame.mime, image: frame.image });
    }
    // Event 3 (text from API nodes) is broadcast and not tied to our prompts: ignored.
  }

  private onClose(code: number, reason: string): void {
    clearTimeout(this.connectTimer);
    clearInterval(this.pingTimer);
    this.ws = undefined;
    const wasOpen = this.open;
    this.open = false;
    if (wasOpen) {
      this.emit('close', { code, reason });
    } else if (!this.closed) {
      const err = this.attemptError();
      this.settleAttempt(err);
      if (this.listenerCount('error') > 0) this.emit('error', err);
    }
    if (this.closed) return;
    const ceiling = Math.min(this.reconnectMaxMs, this.reconnectInitialMs * 2 ** this.failures);
    this.failures = wasOpen ? 0 : this.failures + 1;
    // Equal jitter: half fixed, half random, so many gateways do not reconnect in lockstep.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.dial();
    }, delay);
  }

  /** The typed error of a failed connection attempt. */
  private attemptError(): Error {
    const err = this.lastError;
    if (err instanceof ComfyError) return err;
    const code = (err as { code?: unknown } | undefined)?.code;
    const reason = typeof code === 'string' ? code : (err?.message ?? 'connection closed before the first status message');
    return new ComfyUnreachableError(this.baseUrl, reason, `WebSocket ${this.wsUrl}`, err ? { cause: err } : undefined);
  }

  private settleAttempt(err: Error | undefined): void {
    const waiters = this.attemptWaiters;
    this.attemptWaiters = [];
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  private malformed(problem: string, cause: unknown): void {
    this.malformedFrames++;
    if (this.listenerCount('error') > 0) this.emit('error', new ComfyBadReplyError(this.baseUrl, 'a WebSocket message', problem, { cause }));
  }
}
