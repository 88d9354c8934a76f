/**
 * An upload's writes through pooled staging buffers (src/uploads/staged-writes.ts): the file gets
 * every byte in order whatever the chunk sizes, a chunk is copied (free once `append` resolved),
 * the buffers are reused by the next upload, and a failed write fails the upload.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pooledStageBuffers, STAGE_BYTES, StagedWrites } from '../src/uploads/staged-writes.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-staged-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('staged writes', () => {
  it('write every byte in order, chunks of any size across the staging buffers, and reuse the buffers', async () => {
    const path = join(dir, 'a.bin');
    const file = await open(path, 'wx+');
    const staged = new StagedWrites(file);
    const chunks: Buffer[] = [];
    // Sizes around the staging buffer's: smaller, exactly one, straddling, several at once.
    for (const size of [1, 100, STAGE_BYTES - 101, STAGE_BYTES, 7, STAGE_BYTES + 13, 3 * STAGE_BYTES + 5, 65536, 0, 12345]) {
      const chunk = randomBytes(size);
      chunks.push(Buffer.from(chunk));
      await staged.append(chunk);
      chunk.fill(0); // the caller's buffer is free once appended: what was written is a copy
    }
    await staged.end();
    await file.close();
    expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
    // Its two buffers are back in the pool, and the next upload takes them instead of new ones.
    const pooled = pooledStageBuffers();
    expect(pooled).toBeGreaterThanOrEqual(2);
    const next = new StagedWrites(await open(join(dir, 'b.bin'), 'wx+'));
    expect(pooledStageBuffers()).toBe(pooled - 2);
    await next.abandon();
    expect(pooledStageBuffers()).toBe(pooled);
  });

  it('a failed write fails the upload with its error, later appends and the end too, and keeps nothing of it', async () => {
    const path = join(dir, 'c.bin');
    await (await open(path, 'w')).close();
    const file = await open(path, 'r'); // read-only: every write fails with EBADF
    const staged = new StagedWrites(file);
    const failure = (async () => {
      for (let i = 0; i < 4; i++) await staged.append(randomBytes(STAGE_BYTES));
    })();
    await expect(failure).rejects.toMatchObject({ code: 'EBADF' });
    await expect(staged.append(Buffer.from('x'))).rejects.toMatchObject({ code: 'EBADF' });
    await expect(staged.end()).rejects.toMatchObject({ code: 'EBADF' });
    await staged.abandon();
    await file.close();
    expect((await readFile(path)).length).toBe(0);
  });

  it('given up while an append waits for the running write, starts no further write', async () => {
    const path = join(dir, 'd.bin');
    const file = await open(path, 'wx+');
    const staged = new StagedWrites(file);
    await staged.append(randomBytes(STAGE_BYTES)); // the first buffer full: its write runs
    const waiting = staged.append(randomBytes(STAGE_BYTES)); // the second full: waits for that write
    const abandoned = staged.abandon();
    await expect(waiting).rejects.toThrow(/abandoned/);
    await abandoned;
    await file.close();
    expect((await readFile(path)).length).toBe(STAGE_BYTES);
  });
});
