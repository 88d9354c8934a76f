/** Progress, ETA, step timing and throttling: pure functions of a task's in-memory state, no servers. */
import { describe, expect, it } from 'vitest';
import type { TaskRow } from '../src/db/types.js';
import { activeTask, type ActiveTask, type RunningImage } from '../src/tasks/active-task.js';
import { etaSeconds, nodeFrameDue, recordStep, takePreview, taskProgress } from '../src/tasks/progress.js';
import type { PoolMember } from '../src/tasks/worker-pool.js';

function row(count: number, steps = 20): TaskRow {
  const at = '2026-01-01T00:00:00.000Z';
  return {
    id: 't1', description: 'x', status: 'processing', progress: 0, result_path: null, error_message: null, created_at: at, updated_at: at,
    count, size: 'auto', steps, guidance: 2.5, base_seed: 1, workflow: 'w', upload_sha256: null, started_at: at, finished_at: null,
    seq: 2, last_frame: null, idempotency_key: null, params_hash: null, claimed_by: 'me', lease_expires_at: null, cancel_requested_at: null,
  owner_key_id: null,
  webhook_url: null,
  webhook_events: null,
  };
}

// The progress functions never look at the server an image runs on.
const noMember = {} as PoolMember;
const image = (step: number, total: number, lastStepAt = 0): RunningImage => ({ member: noMember, promptId: 'p', step, total, node: null, lastStepAt });

/** A task of `count` images with the given images running (index -> state). */
function task(count: number, running: RunningImage[] = [], extra: Partial<ActiveTask> = {}, steps = 20): ActiveTask {
  const t = activeTask(row(count, steps), 0);
  running.forEach((r, i) => t.running.set(i, r));
  return Object.assign(t, extra);
}

describe('taskProgress', () => {
  it('counts finished images and the running images’ step fractions, rounded down', () => {
    expect(taskProgress(task(2), 0)).toBe(0);
    expect(taskProgress(task(2, [image(5, 10)]), 0)).toBe(25);
    expect(taskProgress(task(3, [image(1, 3)]), 0)).toBe(11); // 11.1
    expect(taskProgress(task(4, [image(10, 20), image(20, 20)]), 1)).toBe(62); // (1 + 0.5 + 1) / 4
    expect(taskProgress(task(2), 1)).toBe(50);
  });

  it('never reaches 100: that is for the transition that completes the task', () => {
    expect(taskProgress(task(1, [image(20, 20)]), 0)).toBe(99);
    expect(taskProgress(task(2, [image(20, 20)]), 1)).toBe(99);
    expect(taskProgress(task(2), 2)).toBe(99);
  });

  it('a running image counts at most whole, and nothing before its step count is known', () => {
    expect(taskProgress(task(2, [image(30, 20)]), 0)).toBe(50); // a step past the total
    expect(taskProgress(task(2, [image(3, 0)]), 0)).toBe(0);
  });
});

describe('etaSeconds', () => {
  it('is null before a step was timed', () => {
    expect(etaSeconds(task(2, [image(5, 20)]), 0)).toBeNull();
  });

  it('is the remaining steps (running and not started) times the step time', () => {
    // 15 steps left of the running image, 20 of the one not started, 100 ms each.
    expect(etaSeconds(task(2, [image(5, 20)], { stepMs: 100 }), 0)).toBe(3.5);
    // Finished images count for nothing: 10 left of the running one, 20 of the third.
    expect(etaSeconds(task(3, [image(10, 20)], { stepMs: 200 }), 1)).toBe(6);
    // Between two images (none running): the next image's steps.
    expect(etaSeconds(task(2, [], { stepMs: 50 }, 10), 1)).toBe(0.5);
    expect(etaSeconds(task(2, [], { stepMs: 50 }), 2)).toBe(0);
  });

  it('images running in parallel share the time', () => {
    const oneAtATime = etaSeconds(task(2, [image(5, 20)], { stepMs: 100 }), 0);
    const both = etaSeconds(task(2, [image(5, 20), image(5, 20)], { stepMs: 100 }), 0);
    expect(oneAtATime).toBe(3.5); // 15 + 20 steps, one after the other
    expect(both).toBe(1.5); // 15 + 15 steps, side by side
  });

  it('is rounded to tenths of a second', () => {
    expect(etaSeconds(task(1, [image(13, 20)], { stepMs: 123 }), 0)).toBe(0.9); // 861 ms
  });
});

describe('recordStep', () => {
  it('times steps from the second one on, smoothing the step time', () => {
    const t = task(1);
    const img = image(0, 0);
    recordStep(t, img, 1, 20, 1000);
    expect(img).toMatchObject({ step: 1, total: 20, lastStepAt: 1000 });
    expect(t.stepMs).toBeUndefined(); // one step says nothing about its duration
    recordStep(t, img, 3, 20, 1400); // two steps in 400 ms
    expect(t.stepMs).toBe(200);
    recordStep(t, img, 4, 20, 1500); // one in 100 ms: 200 * 0.7 + 100 * 0.3
    expect(t.stepMs).toBeCloseTo(170, 10);
    expect(img).toMatchObject({ step: 4, total: 20, lastStepAt: 1500 });
  });

  it('a step that does not advance (a repeat, or a new sampler starting over) is not timed', () => {
    const t = task(1, [], { stepMs: 170 });
    const img = image(4, 20, 1500);
    recordStep(t, img, 4, 20, 9000);
    expect(t.stepMs).toBe(170);
    recordStep(t, img, 1, 10, 9100);
    expect(t.stepMs).toBe(170);
    expect(img).toMatchObject({ step: 1, total: 10, lastStepAt: 9100 });
    recordStep(t, img, 2, 10, 9200); // timed again from the restart
    expect(t.stepMs).toBeCloseTo(170 * 0.7 + 100 * 0.3, 10);
  });

  it('images of one task share the step time', () => {
    const t = task(2);
    const a = image(1, 20, 1000);
    const b = image(0, 0);
    recordStep(t, a, 2, 20, 1300);
    expect(t.stepMs).toBe(300);
    recordStep(t, b, 1, 20, 1310);
    recordStep(t, b, 2, 20, 1410);
    expect(t.stepMs).toBeCloseTo(300 * 0.7 + 100 * 0.3, 10);
  });
});

describe('takePreview', () => {
  const fresh = (dataUrl: string) => ({ dataUrl, fresh: true });

  it('nothing without a preview, or when the latest one was sent', () => {
    const t = task(1);
    expect(takePreview(t, 1000, 250)).toBeNull();
    t.preview = fresh('data:a');
    expect(takePreview(t, 1000, 250)).toBe('data:a');
    expect(t.preview).toEqual({ dataUrl: 'data:a', fresh: false });
    expect(t.lastPreviewAt).toBe(1000);
    expect(takePreview(t, 5000, 250)).toBeNull(); // not new
  });

  it('a new preview within the interval waits, fresh, for a later frame', () => {
    const t = task(1, [], { preview: fresh('data:a'), lastPreviewAt: 1000 });
    expect(takePreview(t, 1249, 250)).toBeNull();
    expect(t.preview?.fresh).toBe(true);
    expect(t.lastPreviewAt).toBe(1000);
    t.preview = fresh('data:b'); // a newer one replaces it meanwhile
    expect(takePreview(t, 1250, 250)).toBe('data:b');
  });

  it('sends at most one preview per interval, the latest each time', () => {
    const t = task(1);
    const sent: [number, string | null][] = [];
    // A preview and a frame every 50 ms for one second.
    for (let at = 1000; at <= 2000; at += 50) {
      t.preview = fresh(`data:${at}`);
      const p = takePreview(t, at, 250);
      if (p) sent.push([at, p]);
    }
    expect(sent).toEqual([
      [1000, 'data:1000'],
      [1250, 'data:1250'],
      [1500, 'data:1500'],
      [1750, 'data:1750'],
      [2000, 'data:2000'],
    ]);
  });
});

describe('nodeFrameDue', () => {
  it('once the interval since the last frame has passed', () => {
    const t = task(1, [], { lastFrameAt: 1000 });
    expect(nodeFrameDue(t, 1000, 250)).toBe(false);
    expect(nodeFrameDue(t, 1249, 250)).toBe(false);
    expect(nodeFrameDue(t, 1250, 250)).toBe(true);
  });

  it('at once for a task that has written no frame yet', () => {
    expect(nodeFrameDue(task(1), Date.now(), 250)).toBe(true);
  });
});
