/**
 * Every task and image transition against a real database, on each dialect: what each writes, the
 * frame it returns (which must be the one it stored), and each refusal, where nothing may be written.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { Db } from '../src/db/database.js';
import { imagesOfTask, updateImage } from '../src/db/images.js';
import { findTask, releaseClaim } from '../src/db/tasks.js';
import type { ImageRow, TaskRow } from '../src/db/types.js';
import { promptIdFor } from '../src/tasks/ids.js';
import type { ProgressFrame } from '../src/tasks/progress-frame.js';
import type { StoredImage } from '../src/tasks/transitions/complete-image.js';
import { transitions } from '../src/tasks/transitions/index.js';
import { forEachDialect } from './helpers/databases.js';

// The data folder only names the paths recorded in `result_path`; no file is written.
const dir = join(tmpdir(), 'kontext-transitions');
let db: Db;

// Creation times one second apart, so queue order is explicit and not left to the wall clock.
let clock = 0;
const createdAt = () => new Date(Date.UTC(2026, 0, 1) + ++clock * 1000).toISOString();
const leaseUntil = (fromNowMs = 60_000) => new Date(Date.now() + fromNowMs).toISOString();

function enqueue(id: string, count = 1, at = createdAt()): Promise<ProgressFrame> {
  return transitions.enqueueTask(
    db,
    { id, description: `task ${id}`, status: 'pending', created_at: at, updated_at: at, count, steps: 20 },
    Array.from({ length: count }, (_, idx) => ({ task_id: id, idx, seed: 100 + idx, prompt_id: promptIdFor(id, idx), status: 'pending' as const })),
  );
}

function claim(instance = 'me', maxProcessing = 10, lease = leaseUntil()) {
  return transitions.claimTask(db, { instance, leaseUntil: lease, maxProcessing });
}

/** A processing task whose images were all handed to `worker`. */
async function processing(id: string, count: number, worker = 'http://comfy-a'): Promise<void> {
  await enqueue(id, count);
  expect((await claim())?.row.id).toBe(id);
  for (let i = 0; i < count; i++) expect(await transitions.submitImage(db, id, i, worker)).toBeDefined();
}

const task = async (id: string): Promise<TaskRow> => (await findTask(db, id))!;
const images = (id: string): Promise<ImageRow[]> => imagesOfTask(db, id);
const image = async (id: string, idx: number): Promise<ImageRow> => (await images(id))[idx]!;

/** The task's stored snapshot in the shape it is published: stored frames carry neither seq (the row has it) nor a preview. */
async function snapshot(id: string): Promise<ProgressFrame> {
  const row = await task(id);
  return { ...(JSON.parse(row.last_frame!) as Omit<ProgressFrame, 'seq'>), seq: row.seq };
}

/** The returned frame is exactly what the database now holds. */
async function expectStored(frame: ProgressFrame | undefined): Promise<ProgressFrame> {
  expect(frame).toBeDefined();
  expect(await snapshot(frame!.taskId)).toEqual(frame);
  return frame!;
}

/** Runs a transition that must be refused: it returns `refusal`, and neither the task nor its images change. */
async function expectRefused(id: string, refusal: unknown, transition: () => Promise<unknown>): Promise<void> {
  const before = { task: await task(id), images: await images(id) };
  expect(await transition()).toBe(refusal);
  expect({ task: await task(id), images: await images(id) }).toEqual(before);
}

const storedFile = (id: string, idx: number): StoredImage => ({
  file_path: join('images', id, `${idx}.png`),
  width: 64 + idx,
  height: 48,
  bytes: 1000 + idx,
  content_type: 'image/png',
});

function complete(id: string, idx: number, progressWith = (done: number) => ({ progress: done * 10, etaSeconds: 5 })) {
  return transitions.completeImage(db, { taskId: id, image: { idx, seed: 100 + idx }, stored: storedFile(id, idx), dataDir: dir, progressWith });
}

forEachDialect('transitions', (ctx) => {
  beforeEach(() => {
    db = ctx.db;
  });

  describe('enqueueTask', () => {
    it('inserts the pending task, its images and its first frame (seq 1) together', async () => {
      const frame = await enqueue('t1', 2);
      expect(frame).toMatchObject({ taskId: 't1', seq: 1, status: 'pending', progress: 0, queuePosition: null, error: null, image: null });
      await expectStored(frame);
      expect(await task('t1')).toMatchObject({ status: 'pending', count: 2, seq: 1, claimed_by: null });
      expect((await images('t1')).map((i) => [i.idx, i.status, i.attempts, i.prompt_id])).toEqual([
        [0, 'pending', 0, promptIdFor('t1', 0)],
        [1, 'pending', 0, promptIdFor('t1', 1)],
      ]);
    });

    it('writes nothing when an image cannot be inserted (one transaction)', async () => {
      const at = createdAt();
      const duplicateIndex = { task_id: 't1', idx: 0, seed: 1, prompt_id: 'p', status: 'pending' as const };
      await expect(
        transitions.enqueueTask(db, { id: 't1', description: 'x', status: 'pending', created_at: at, updated_at: at, count: 2 }, [duplicateIndex, duplicateIndex]),
      ).rejects.toThrow(/UNIQUE|PRIMARY|duplicate key/);
      expect(await findTask(db, 't1')).toBeUndefined();
    });
  });

  describe('announcePosition', () => {
    it('writes the queue position of a pending task as its next frame', async () => {
      await enqueue('t1');
      const frame = await expectStored(await transitions.announcePosition(db, 't1', 3));
      expect(frame).toMatchObject({ seq: 2, status: 'pending', queuePosition: 3 });
    });

    it('is refused once the task is no longer pending', async () => {
      await enqueue('t1');
      await claim();
      await expectRefused('t1', undefined, () => transitions.announcePosition(db, 't1', 1));
      expect(await transitions.announcePosition(db, 'no such task', 1)).toBeUndefined();
    });
  });

  describe('claimTask', () => {
    it('claims the oldest pending task, with a lease, and writes its processing frame', async () => {
      // Enqueued newest first: the order comes from created_at, not from insertion.
      await enqueue('later', 1, '2026-02-01T00:00:02.000Z');
      await enqueue('sooner', 1, '2026-02-01T00:00:01.000Z');
      const lease = leaseUntil();
      const claimed = await claim('me', 10, lease);
      expect(claimed?.row).toMatchObject({ id: 'sooner', status: 'processing', claimed_by: 'me', lease_expires_at: lease });
      expect(claimed?.row.started_at).not.toBeNull();
      const { status, claimed_by, lease_expires_at, started_at } = claimed!.row;
      expect(await task('sooner')).toMatchObject({ status, claimed_by, lease_expires_at, started_at });
      const frame = await expectStored(claimed!.frame);
      expect(frame).toMatchObject({ taskId: 'sooner', seq: 2, status: 'processing', progress: 0, etaSeconds: null });
      // The row returned is the row as stored, with the frame just written.
      expect(claimed!.row).toEqual(await task('sooner'));
      expect(claimed!.row.seq).toBe(2);
      expect((await claim())?.row.id).toBe('later');
      expect(await claim()).toBeUndefined(); // none left
    });

    it('is refused while maxProcessing tasks are processing', async () => {
      for (const id of ['a', 'b', 'c']) await enqueue(id);
      expect((await claim('me', 2))?.row.id).toBe('a');
      expect((await claim('other', 2))?.row.id).toBe('b'); // the limit counts every instance's tasks
      await expectRefused('c', undefined, () => claim('me', 2));
      expect((await claim('me', 3))?.row.id).toBe('c');
    });

    it('two concurrent claims with maxProcessing 1 start one task', async () => {
      await enqueue('a');
      await enqueue('b');
      const results = await Promise.all([claim('one', 1), claim('two', 1)]);
      expect(results.filter((r) => r !== undefined).map((r) => r!.row.id)).toEqual(['a']);
      expect((await task('a')).status).toBe('processing');
      expect(await task('b')).toMatchObject({ status: 'pending', seq: 1 });
    });

    it('two concurrent claims never take the same task', async () => {
      await enqueue('only');
      const results = await Promise.all([claim('one', 5), claim('two', 5)]);
      const won = results.filter((r) => r !== undefined);
      expect(won).toHaveLength(1);
      const row = await task('only');
      expect(row.claimed_by).toBe(won[0]!.row.claimed_by);
      expect(row.seq).toBe(2); // one processing frame, not two
    });
  });

  describe('cancelPendingTask', () => {
    it('cancels a pending task and its images', async () => {
      await enqueue('t1', 2);
      const frame = await expectStored(await transitions.cancelPendingTask(db, 't1'));
      expect(frame).toMatchObject({ seq: 2, status: 'cancelled', progress: 0 });
      const row = await task('t1');
      expect(row.status).toBe('cancelled');
      expect(row.finished_at).not.toBeNull();
      expect((await images('t1')).map((i) => [i.status, i.finished_at])).toEqual([
        ['cancelled', row.finished_at],
        ['cancelled', row.finished_at],
      ]);
    });

    it('is refused for a processing task: nothing written', async () => {
      await processing('t1', 2);
      await expectRefused('t1', undefined, () => transitions.cancelPendingTask(db, 't1'));
    });

    it('is refused for finished tasks: completed, failed, or already cancelled', async () => {
      await processing('done', 1);
      expect((await complete('done', 0))?.taskCompleted).toBe(true);
      await expectRefused('done', undefined, () => transitions.cancelPendingTask(db, 'done'));

      await processing('failed', 1);
      await transitions.endTask(db, { taskId: 'failed', status: 'failed', error: 'boom', progress: 0 });
      await expectRefused('failed', undefined, () => transitions.cancelPendingTask(db, 'failed'));

      await enqueue('cancelled');
      await transitions.cancelPendingTask(db, 'cancelled');
      await expectRefused('cancelled', undefined, () => transitions.cancelPendingTask(db, 'cancelled'));
    });
  });

  describe('submitImage', () => {
    it('hands a pending image to a worker and counts the attempt; a second submit is refused', async () => {
      await enqueue('t1', 2);
      await claim();
      const submitted = await transitions.submitImage(db, 't1', 1, 'http://comfy-a');
      expect(submitted).toMatchObject({ task_id: 't1', idx: 1, status: 'submitted', worker: 'http://comfy-a', attempts: 1, error: null });
      expect(submitted?.submitted_at).not.toBeNull();
      expect(await image('t1', 1)).toEqual(submitted);
      await expectRefused('t1', undefined, () => transitions.submitImage(db, 't1', 1, 'http://comfy-b'));
      expect((await image('t1', 0)).status).toBe('pending'); // the other image is untouched
    });

    it('counts every attempt across requeues and clears the previous error', async () => {
      await processing('t1', 1);
      expect(await transitions.requeueImage(db, 't1', 0, 'server went away')).toBe(true);
      expect(await transitions.submitImage(db, 't1', 0, 'http://comfy-b')).toMatchObject({ attempts: 2, worker: 'http://comfy-b', error: null });
    });

    it('is refused for an image of a cancelled task', async () => {
      await enqueue('t1');
      await transitions.cancelPendingTask(db, 't1');
      await expectRefused('t1', undefined, () => transitions.submitImage(db, 't1', 0, 'http://comfy-a'));
    });
  });

  describe('startImage', () => {
    it('marks a submitted image running, once', async () => {
      await processing('t1', 1);
      expect(await transitions.startImage(db, 't1', 0)).toBe(true);
      expect(await image('t1', 0)).toMatchObject({ status: 'running', worker: 'http://comfy-a' });
      await expectRefused('t1', false, () => transitions.startImage(db, 't1', 0));
    });

    it('is refused for an image that is not submitted (pending, or ended with its task)', async () => {
      await enqueue('t1', 2);
      await claim();
      await expectRefused('t1', false, () => transitions.startImage(db, 't1', 0));
      await transitions.submitImage(db, 't1', 1, 'http://comfy-a');
      await transitions.endTask(db, { taskId: 't1', status: 'cancelled', error: null, progress: 0 });
      await expectRefused('t1', false, () => transitions.startImage(db, 't1', 1));
    });
  });

  describe('requeueImage', () => {
    it('puts a submitted or a running image back in the queue, with the reason noted', async () => {
      await processing('t1', 2);
      await transitions.startImage(db, 't1', 1);
      expect(await transitions.requeueImage(db, 't1', 0, 'prompt vanished')).toBe(true);
      expect(await transitions.requeueImage(db, 't1', 1, 'server down')).toBe(true);
      expect((await images('t1')).map((i) => [i.status, i.worker, i.error, i.attempts])).toEqual([
        ['pending', null, 'prompt vanished', 1],
        ['pending', null, 'server down', 1],
      ]);
    });

    it('is refused for a pending or a completed image', async () => {
      await processing('t1', 2);
      await transitions.requeueImage(db, 't1', 0, 'once');
      await expectRefused('t1', false, () => transitions.requeueImage(db, 't1', 0, 'twice'));
      await complete('t1', 1);
      await expectRefused('t1', false, () => transitions.requeueImage(db, 't1', 1, 'too late'));
    });
  });

  describe('completeImage', () => {
    it('two images finishing at once on two connections (two replicas): the task completes', async () => {
      const second = await ctx.database.open();
      try {
        for (let round = 0; round < 5; round++) {
          const id = `t${round}`;
          await processing(id, 2);
          const other = (i: number) =>
            transitions.completeImage(second, { taskId: id, image: { idx: i, seed: 100 + i }, stored: storedFile(id, i), dataDir: dir, progressWith: (d) => ({ progress: d * 10, etaSeconds: 5 }) });
          const [a, b] = await Promise.all([complete(id, 0), other(1)]);
          expect([a?.taskCompleted, b?.taskCompleted].sort()).toEqual([false, true]);
          expect(await task(id)).toMatchObject({ status: 'completed', progress: 100 });
        }
      } finally {
        await second.destroy();
      }
    });

    it('records an image that is not the last with a progress frame announcing it', async () => {
      await processing('t1', 2);
      const progressWith = vi.fn((done: number) => ({ progress: 42 + done, etaSeconds: 7.5 }));
      const result = await complete('t1', 1, progressWith);
      expect(progressWith).toHaveBeenCalledWith(1);
      expect(result).toMatchObject({ taskCompleted: false });
      expect(result!.done.map((i) => i.idx)).toEqual([1]);
      const frame = await expectStored(result!.frame);
      expect(frame).toMatchObject({
        seq: 3,
        status: 'processing',
        progress: 43,
        etaSeconds: 7.5,
        imageIndex: 1,
        image: { index: 1, width: 65, height: 48, seed: 101, contentType: 'image/png', bytes: 1001 },
      });
      expect(await task('t1')).toMatchObject({ status: 'processing', progress: 43, claimed_by: 'me', result_path: JSON.stringify([join(dir, 'images', 't1', '1.png')]) });
      expect(await image('t1', 1)).toMatchObject({ status: 'completed', ...storedFile('t1', 1), error: null });
      expect((await image('t1', 1)).finished_at).not.toBeNull();
    });

    it('the last image completes the task: result_path, progress 100, claim cleared', async () => {
      await processing('t1', 2);
      await complete('t1', 0);
      const progressWith = vi.fn(() => ({ progress: 99, etaSeconds: 1 }));
      const result = await complete('t1', 1, progressWith);
      expect(progressWith).not.toHaveBeenCalled();
      expect(result).toMatchObject({ taskCompleted: true });
      expect(result!.done.map((i) => i.idx)).toEqual([0, 1]);
      const frame = await expectStored(result!.frame);
      expect(frame).toMatchObject({ seq: 4, status: 'completed', progress: 100, image: { index: 1 } });
      const row = await task('t1');
      expect(row).toMatchObject({ status: 'completed', progress: 100, claimed_by: null, lease_expires_at: null });
      expect(row.finished_at).not.toBeNull();
      expect(JSON.parse(row.result_path!)).toEqual([join(dir, 'images', 't1', '0.png'), join(dir, 'images', 't1', '1.png')]);
    });

    it('is refused after the task ended, and for an image completed already', async () => {
      await processing('t1', 2);
      await complete('t1', 0);
      await expectRefused('t1', undefined, () => complete('t1', 0));
      await transitions.endTask(db, { taskId: 't1', status: 'cancelled', error: null, progress: 10 });
      await expectRefused('t1', undefined, () => complete('t1', 1));
      expect((await image('t1', 1)).file_path).toBeNull();
    });
  });

  describe('endTask', () => {
    it('fails a task: the error on the task and on the failed image, open images ended, finished ones kept, in-flight ones returned', async () => {
      await processing('t1', 4);
      await complete('t1', 0);
      await transitions.startImage(db, 't1', 1);
      await transitions.requeueImage(db, 't1', 3, 'server down'); // pending again: not in flight
      const ended = await transitions.endTask(db, { taskId: 't1', status: 'failed', error: 'image 1: out of memory', failedImage: 1, progress: 37 });
      const frame = await expectStored(ended?.frame);
      expect(frame).toMatchObject({ status: 'failed', progress: 37, error: 'image 1: out of memory' });
      // As they were: the caller cancels these prompts on the server each ran on.
      expect(ended!.inFlight.map((i) => [i.idx, i.status, i.worker, i.prompt_id])).toEqual([
        [1, 'running', 'http://comfy-a', promptIdFor('t1', 1)],
        [2, 'submitted', 'http://comfy-a', promptIdFor('t1', 2)],
      ]);
      const row = await task('t1');
      expect(row).toMatchObject({ status: 'failed', error_message: 'image 1: out of memory', progress: 37, claimed_by: null, lease_expires_at: null });
      expect(row.finished_at).not.toBeNull();
      expect((await images('t1')).map((i) => [i.status, i.error])).toEqual([
        ['completed', null],
        ['failed', 'image 1: out of memory'],
        ['failed', null],
        ['failed', 'server down'],
      ]);
      expect((await image('t1', 0)).file_path).toBe(storedFile('t1', 0).file_path);
    });

    it('cancels a task: no error, its open images cancelled', async () => {
      await processing('t1', 2);
      const ended = await transitions.endTask(db, { taskId: 't1', status: 'cancelled', error: null, progress: 5 });
      expect(await expectStored(ended?.frame)).toMatchObject({ status: 'cancelled', error: null, progress: 5 });
      expect(ended!.inFlight.map((i) => i.idx)).toEqual([0, 1]);
      expect(await task('t1')).toMatchObject({ status: 'cancelled', error_message: null });
      expect((await images('t1')).map((i) => i.status)).toEqual(['cancelled', 'cancelled']);
    });

    it('is refused when the task already ended, or never started', async () => {
      await processing('t1', 1);
      await transitions.endTask(db, { taskId: 't1', status: 'cancelled', error: null, progress: 0 });
      await expectRefused('t1', undefined, () => transitions.endTask(db, { taskId: 't1', status: 'failed', error: 'late', failedImage: 0, progress: 0 }));
      await processing('t2', 1);
      await complete('t2', 0);
      await expectRefused('t2', undefined, () => transitions.endTask(db, { taskId: 't2', status: 'cancelled', error: null, progress: 0 }));
      await enqueue('t3');
      await expectRefused('t3', undefined, () => transitions.endTask(db, { taskId: 't3', status: 'cancelled', error: null, progress: 0 }));
    });
  });

  describe('settleTask', () => {
    // A crash between an image's last write and the task's: the images ended, the task did not.
    const endImage = (id: string, idx: number, changes: Parameters<typeof updateImage>[3]) => updateImage(db, id, idx, changes);

    it('completes a processing task whose images all completed', async () => {
      await processing('t1', 2);
      for (const idx of [0, 1]) await endImage('t1', idx, { status: 'completed', ...storedFile('t1', idx) });
      const frame = await expectStored(await transitions.settleTask(db, 't1', dir));
      expect(frame).toMatchObject({ status: 'completed', progress: 100 });
      const row = await task('t1');
      expect(row).toMatchObject({ status: 'completed', progress: 100, claimed_by: null, lease_expires_at: null });
      expect(JSON.parse(row.result_path!)).toEqual([join(dir, 'images', 't1', '0.png'), join(dir, 'images', 't1', '1.png')]);
    });

    it("fails it when an image failed, with that image's error", async () => {
      await processing('t1', 2);
      await endImage('t1', 0, { status: 'completed', ...storedFile('t1', 0) });
      await endImage('t1', 1, { status: 'failed', error: 'image 1: bad output' });
      const frame = await expectStored(await transitions.settleTask(db, 't1', dir));
      expect(frame).toMatchObject({ status: 'failed', error: 'image 1: bad output' });
      expect(await task('t1')).toMatchObject({ status: 'failed', error_message: 'image 1: bad output', claimed_by: null });
    });

    it('fails it as interrupted when no image says why', async () => {
      await processing('t1', 1);
      await endImage('t1', 0, { status: 'cancelled' });
      expect(await transitions.settleTask(db, 't1', dir)).toMatchObject({ status: 'failed', error: 'interrupted by a restart' });
    });

    it('is refused while an image is open, and for a task that is not processing', async () => {
      await processing('t1', 3);
      await endImage('t1', 0, { status: 'completed', ...storedFile('t1', 0) });
      await transitions.requeueImage(db, 't1', 2, 'server down');
      await expectRefused('t1', undefined, () => transitions.settleTask(db, 't1', dir)); // 1 submitted, 2 pending
      await transitions.startImage(db, 't1', 1);
      await endImage('t1', 2, { status: 'completed', ...storedFile('t1', 2) });
      await expectRefused('t1', undefined, () => transitions.settleTask(db, 't1', dir)); // 1 running
      await processing('t2', 1);
      await transitions.endTask(db, { taskId: 't2', status: 'cancelled', error: null, progress: 0 });
      await expectRefused('t2', undefined, () => transitions.settleTask(db, 't2', dir)); // ended: nothing open, still refused
      await enqueue('t3');
      await expectRefused('t3', undefined, () => transitions.settleTask(db, 't3', dir)); // pending (its image is open too)
    });
  });

  describe('recordProgress', () => {
    const step = (id: string, progress: number) => ({
      taskId: id,
      status: 'processing' as const,
      progress,
      imageIndex: 0,
      step: 4,
      totalSteps: 20,
      node: '31',
      queuePosition: null,
      etaSeconds: 3.2,
      preview: 'data:image/jpeg;base64,AAAA',
      image: null,
      error: null,
    });

    it('stores the progress and the frame (without its preview) while the task is processing', async () => {
      await processing('t1', 1);
      const frame = await transitions.recordProgress(db, step('t1', 12));
      expect(frame).toMatchObject({ seq: 3, progress: 12, step: 4, node: '31', preview: 'data:image/jpeg;base64,AAAA' });
      expect(await snapshot('t1')).toEqual({ ...frame, preview: null }); // previews are never stored
      expect((await task('t1')).progress).toBe(12);
    });

    it('is refused once the task ended, and before it started', async () => {
      await processing('t1', 1);
      await complete('t1', 0);
      await expectRefused('t1', undefined, () => transitions.recordProgress(db, step('t1', 50)));
      await processing('t2', 1);
      await transitions.endTask(db, { taskId: 't2', status: 'failed', error: 'x', progress: 0 });
      await expectRefused('t2', undefined, () => transitions.recordProgress(db, step('t2', 50)));
      await enqueue('t3');
      await expectRefused('t3', undefined, () => transitions.recordProgress(db, step('t3', 50)));
    });
  });

  describe('recoverTasks', () => {
    it("takes this instance's own tasks and lapsed or released claims, never another live instance's", async () => {
      for (const id of ['mine', 'lapsed', 'live', 'released', 'finished', 'waiting']) await enqueue(id);
      await claim('me', 10, leaseUntil()); // mine
      await claim('gone', 10, leaseUntil(-60_000)); // lapsed
      await claim('alive', 10, leaseUntil()); // live
      const released = (await claim('gone', 10))!.row;
      expect(await releaseClaim(db, released.id, { claimedBy: released.claimed_by, leaseExpiresAt: released.lease_expires_at })).toBe(true);
      await claim('me', 10); // finished
      await transitions.endTask(db, { taskId: 'finished', status: 'cancelled', error: null, progress: 0 });
      const live = await task('live');
      const waiting = await task('waiting');

      const lease = leaseUntil(120_000);
      const recovered = await transitions.recoverTasks(db, { instance: 'me', leaseUntil: lease });
      expect(recovered.map((t) => t.id)).toEqual(['mine', 'lapsed', 'released']); // oldest first
      for (const id of ['mine', 'lapsed', 'released']) expect(await task(id)).toMatchObject({ status: 'processing', claimed_by: 'me', lease_expires_at: lease });
      expect(await task('live')).toEqual(live);
      expect(await task('waiting')).toEqual(waiting);
      expect((await task('finished')).claimed_by).toBeNull();
    });
  });
});
