/**
 * A shared result's graphql-ws `next` message written as one whole WebSocket text frame straight to
 * the connection's TCP (or TLS) stream, the one the upgrade handed to ws. ws' `send` does the same
 * work in more steps: per message it measures the string, builds a header, corks the stream, writes
 * header and text as two chunks, uncorks, and Node turns them into a vectored write. In the
 * many-tasks fan-out bench that path was ~11 µs of each subscriber's ~39 µs (the rest mostly the
 * kernel's socket write), and a frame's 100 writes run back to back with nothing else between them.
 *
 * It is safe beside ws because of what this server never does: no permessage-deflate (ws then
 * writes every frame synchronously, in call order, and queues nothing) and no fragmented messages,
 * so a frame written here never lands inside one of ws' own. Anything else (a socket without a known
 * stream, an extension negotiated) goes through `send`.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** The stream under each accepted socket, as the upgrade handed it to ws; gone with the socket. */
const wires = new WeakMap<WebSocket, Duplex>();

/**
 * Records `wire` as the stream `socket` (accepted by ws from that upgrade) writes to, unless the
 * handshake negotiated an extension: extensions are fixed by then, so `sendMessage` need not ask.
 */
export function rememberWire(socket: WebSocket, wire: Duplex): void {
  if (socket.extensions === '') wires.set(socket, wire);
}

/** RFC 6455 §5.2: FIN and opcode 1 (text) in the first byte. */
const FIN_TEXT = 0x81;

/** What every graphql-ws message of an operation starts with, before the operation's id. */
const ID_KEY = Buffer.from('{"id":');

/**
 * Sends a graphql-ws message on `socket` (which must be OPEN): `{"id":` then `quotedId` (the operation
 * id as JSON) then `rest` (UTF-8: the message's other fields and its closing brace). One frame and
 * one write on the stream when the socket's stream is known, else ws' `send`. A stream destroyed under
 * an OPEN socket (a reset not yet seen by ws) drops the write, as ws' own writes then do.
 */
export function sendMessage(socket: WebSocket, quotedId: string, rest: Uint8Array): void {
  const wire = wires.get(socket);
  if (!wire) {
    socket.send(Buffer.concat([ID_KEY, Buffer.from(quotedId), rest]), { binary: false });
    return;
  }
  wire.write(messageFrame(quotedId, rest));
}

/** The message of `sendMessage` as an unmasked, unfragmented text frame (a server's). */
export function messageFrame(quotedId: string, rest: Uint8Array): Buffer {
  const idBytes = Buffer.byteLength(quotedId);
  const length = ID_KEY.length + idBytes + rest.byteLength;
  const headerBytes = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  // allocUnsafe takes small buffers from Node's shared pool: no allocation of its own per frame.
  const frame = Buffer.allocUnsafe(headerBytes + length);
  frame[0] = FIN_TEXT;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 0x10000) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2);
    frame.writeUInt32BE(length % 0x1_0000_0000, 6);
  }
  frame.set(ID_KEY, headerBytes);
  frame.write(quotedId, headerBytes + ID_KEY.length);
  frame.set(rest, headerBytes + ID_KEY.length + idBytes);
  return frame;
}
