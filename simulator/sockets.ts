/**
 * The WebSocket side of PromptServer (docs/comfyui-protocol.md §3.1, §3.2, §4): the clientId → socket table with
 * its replacement and close race, feature-flag negotiation as the first message only, and message
 * routing (targeted to the prompt's client_id, dropped without a socket, broadcast without one).
 */
import { randomUUID } from 'node:crypto';
import type { RawData, WebSocket } from 'ws';
import { BinaryEvent, encodePreviewFrame } from '../src/comfyui/protocol.js';
import type { MessageSink } from './executor.js';
import type { Link } from './link.js';
import { type PyDict, type PyValue, isDict, pyDumps, pyLoads } from './py.js';

interface Outgoing {
  payload: string | Buffer;
  sid: PyValue;
}

/** The WebSocket endpoint and ComfyUI's message routing. */
export class SocketHub implements MessageSink {
  /** clientId → socket, like `PromptServer.sockets`. */
  readonly sockets = new Map<string, WebSocket>();
  /** clientId → negotiated client feature flags. */
  private readonly flags = new Map<string, PyValue>();
  private readonly all = new Set<WebSocket>();
  private outbox: Outgoing[] = [];
  private flushing = false;
  /** While set (the simulator is paused), messages wait in the outbox. */
  private holding = false;

  constructor(
    private readonly serverFeatures: () => PyDict,
    private readonly connectInfo: () => { queueRemaining: number; runningClientId: PyValue; lastNodeId: string | null },
    /** Called with the text of each JSON message routed through `sendSync`, right after it went out to its socket(s); not for messages no socket received. */
    private readonly onSent?: (text: string) => void,
    /** Delays and paces every message (simulator/link.ts); default none. */
    private readonly link?: Link,
  ) {}

  /** Registers a new connection and runs its protocol until it closes. */
  accept(ws: WebSocket, clientIdParam: string | null): void {
    let sid = clientIdParam ?? '';
    if (sid) this.sockets.delete(sid);
    else sid = randomUUID().replace(/-/g, '');
    this.sockets.set(sid, ws);
    this.flags.set(sid, new Map());
    this.all.add(ws);

    const info = this.connectInfo();
    this.sendDirect(ws, 'status', new Map<string, PyValue>([
      ['status', statusData(info.queueRemaining)],
      ['sid', sid],
    ]));
    if (info.runningClientId === sid && info.lastNodeId !== null) {
      this.sendDirect(ws, 'executing', new Map<string, PyValue>([['node', info.lastNodeId]]));
    }

    let first = true;
    const delayMs = this.link?.oneWayMs ?? 0;
    ws.on('message', (data, isBinary) => {
      // Over a link the message reaches the server one-way delay after the client sent it.
      if (delayMs > 0) setTimeout(() => onMessage(data, isBinary), delayMs);
      else onMessage(data, isBinary);
    });
    const onMessage = (data: RawData, isBinary: boolean): void => {
      if (isBinary) return;
      let msg: PyValue;
      try {
        msg = pyLoads(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'));
      } catch {
        return; // invalid JSON: ignored, and it does not count as the first message
      }
      if (!isDict(msg)) return; // data.get() would raise: same as above
      if (first && msg.get('type') === 'feature_flags') {
        this.flags.set(sid, msg.has('data') ? (msg.get('data') ?? null) : new Map());
        this.sendDirect(ws, 'feature_flags', this.serverFeatures());
      }
      first = false;
    };
    ws.on('close', () => {
      // As in ComfyUI: removes whatever is registered under this id now, even a newer socket.
      this.sockets.delete(sid);
      this.flags.delete(sid);
      this.all.delete(ws);
    });
    ws.on('error', () => undefined);
  }

  /** Abruptly terminates every socket (a network drop). */
  dropAll(): void {
    for (const ws of this.all) ws.terminate();
  }

  /** Closes every socket (server shutdown). */
  closeAll(): void {
    for (const ws of this.all) {
      try {
        ws.close(1001);
      } catch {
        ws.terminate();
      }
    }
  }

  /** Broadcasts the queue count (PromptServer.queue_updated). */
  queueUpdated(remaining: number): void {
    this.sendSync('status', new Map<string, PyValue>([['status', statusData(remaining)]]), null);
  }

  sendSync(type: string, data: unknown, sid: PyValue): void {
    this.outbox.push({ payload: pyDumps({ type, data }), sid });
    this.scheduleFlush();
  }

  sendPreview(jpeg: Buffer, sid: PyValue, metadata: PyDict | null): void {
    let frame: Buffer;
    if (metadata) {
      // Built here rather than with protocol.ts: ComfyUI's json.dumps puts spaces after , and :
      metadata.set('image_type', 'image/jpeg');
      const json = Buffer.from(pyDumps(metadata), 'utf8');
      const head = Buffer.alloc(8);
      head.writeUInt32BE(BinaryEvent.PreviewImageWithMetadata, 0);
      head.writeUInt32BE(json.length, 4);
      frame = Buffer.concat([head, json, jpeg]);
    } else {
      frame = encodePreviewFrame(jpeg, 'image/jpeg');
    }
    this.outbox.push({ payload: frame, sid });
    this.scheduleFlush();
  }

  hasRecipient(sid: PyValue): boolean {
    if (sid === null) return this.sockets.size > 0;
    return typeof sid === 'string' && this.sockets.has(sid);
  }

  supportsMetadata(sid: PyValue): boolean {
    if (typeof sid !== 'string') return false;
    const f = this.flags.get(sid);
    return isDict(f) && f.get('supports_preview_metadata') === true;
  }

  /** Holds every message back (pause) or sends what was held and continues (resume). */
  hold(on: boolean): void {
    this.holding = on;
    if (!on && this.outbox.length > 0) this.scheduleFlush();
  }

  /** Sends everything queued so far, in order (used before the process ends). */
  flushNow(): void {
    const batch = this.outbox;
    this.outbox = [];
    for (const m of batch) this.deliver(m);
  }

  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = true;
    // Like ComfyUI's send_sync: the message leaves after the current handler (e.g. the HTTP reply).
    setImmediate(() => {
      this.flushing = false;
      if (!this.holding) this.flushNow();
    });
  }

  private deliver(m: Outgoing): void {
    let sent = false;
    if (m.sid === null) {
      for (const ws of [...this.sockets.values()]) sent = this.send(ws, m.payload) || sent;
    } else if (typeof m.sid === 'string') {
      const ws = this.sockets.get(m.sid);
      if (ws) sent = this.send(ws, m.payload);
    }
    if (sent && this.onSent && typeof m.payload === 'string') this.onSent(m.payload);
  }

  private sendDirect(ws: WebSocket, type: string, data: PyDict): void {
    this.send(ws, pyDumps({ type, data }));
  }

  /** Hands a message to the socket, over the link when there is one; true when it was taken. */
  private send(ws: WebSocket, payload: string | Buffer): boolean {
    if (!this.link || this.link.transparent) return safeSend(ws, payload);
    if (ws.readyState !== 1) return false;
    this.link.sendWs(ws, payload);
    return true;
  }
}

function statusData(remaining: number): PyDict {
  return new Map<string, PyValue>([['exec_info', new Map<string, PyValue>([['queue_remaining', remaining]])]]);
}

/** True when the payload was handed to the socket. */
function safeSend(ws: WebSocket, payload: string | Buffer): boolean {
  if (ws.readyState !== 1) return false;
  try {
    ws.send(payload, () => undefined);
    return true;
  } catch {
    // a socket that died mid-send is dropped silently, as send_socket_catch_exception does
    return false;
  }
}
