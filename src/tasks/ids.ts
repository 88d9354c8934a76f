/** Identifiers of tasks and of their ComfyUI prompts. */
import { createHash, randomBytes } from 'node:crypto';

/** The last id's millisecond and counter: ids made in one millisecond still sort in the order made. */
let last = { ms: 0, counter: 0 };

/**
 * A new task id: a UUID (version 7), so ids sort by creation time, which keeps cursors and
 * indexes in order, and still looks like the old service's uuid4 ids to legacy callers. Within one
 * process they are monotonic (RFC 9562, method 1: a 12-bit counter in `rand_a`, started at a random
 * value each millisecond): two tasks made in the same millisecond keep their order in the queue.
 */
export function newTaskId(now = Date.now()): string {
  const b = randomBytes(16);
  if (now > last.ms) last = { ms: now, counter: b.readUInt16BE(6) & 0x7ff };
  else if (last.counter < 0xfff) last = { ms: last.ms, counter: last.counter + 1 };
  else last = { ms: last.ms + 1, counter: b.readUInt16BE(6) & 0x7ff }; // 4096 in one millisecond: borrow the next
  b.writeUIntBE(last.ms, 0, 6);
  b.writeUInt16BE(0x7000 | last.counter, 6);
  b[8] = 0x80 | (b[8]! & 0x3f);
  return formatUuid(b);
}

/**
 * The ComfyUI prompt_id of one image: derived from the task id and index (a name-based UUID), so
 * it is known and stored before submission, and a resubmission after a crash reuses it.
 */
export function promptIdFor(taskId: string, index: number): string {
  const b = createHash('sha1').update(`kontext-gateway/${taskId}/${index}`).digest().subarray(0, 16);
  b[6] = 0x50 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  return formatUuid(b);
}

function formatUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
