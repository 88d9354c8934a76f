/** Identifiers of tasks and of their ComfyUI prompts. */
import { createHash, randomBytes } from 'node:crypto';

/**
 * A new task id: a UUID (version 7), so ids sort by creation time, which keeps cursors and
 * indexes in order, and still looks like the old service's uuid4 ids to legacy callers.
 */
export function newTaskId(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = 0x70 | (b[6]! & 0x0f);
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
