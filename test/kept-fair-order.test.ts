import { beforeEach, expect, it } from 'vitest';
import { insertApiKey } from '../src/db/api-keys.js';
import { insertImages } from '../src/db/images.js';
import { claimNextPending, findTask, insertTask, pendingTaskIds, queuePosition } from '../src/db/tasks.js';
import type { KeyPriority } from '../src/db/types.js';
import { transitions } from '../src/tasks/transitions/index.js';
import { forEachDialect } from './helpers/databases.js';

forEachDialect('the kept fair order', (ctx) => {
  let clock = 0;
  const at = () => new Date(Date.UTC(2026, 0, 1) + ++clock * 1000).toISOString();
  beforeEach(async () => {
    const keys: [string, KeyPriority][] = [
      ['k-high', 'high'],
      ['k-a', 'normal'],
      ['k-b', 'normal'],
      ['k-low', 'low'],
    ];
    for (const [id, priority] of keys) {
      await insertApiKey(ctx.db, { id, name: id, prefix: id, hash: `hash-${id}`, scopes: 'generate', max_concurrent: null, images_per_day: null, rate_per_minute: null, priority, created_at: at(), last_used_at: null, revoked_at: null });
    }
  });

  let n = 0;
  const enqueue = async (owner: string | null): Promise<string> => {
    const id = `t${String(++n).padStart(4, '0')}`;
    const now = at();
    await insertTask(ctx.db, { id, description: id, status: 'pending', created_at: now, updated_at: now, owner_key_id: owner });
    await insertImages(ctx.db, [{ task_id: id, idx: 0, seed: 0, prompt_id: `p-${id}`, status: 'pending' }]);
    return id;
  };
  const claim = () =>
    ctx.db.transaction().execute((trx) => claimNextPending(trx, { instance: 'here', now: at(), leaseUntil: at(), maxProcessing: 1000 }));

  /** Every pending task's position from the kept order equals its index in the order read afresh. */
  const expectSamePositions = async () => {
    const full = await pendingTaskIds(ctx.db, 'fair', { fresh: false });
    const fresh = await pendingTaskIds(ctx.db, 'fair', { fresh: true });
    expect(full).toEqual(fresh);
    for (const [i, id] of fresh.entries()) {
      const row = (await findTask(ctx.db, id))!;
      expect(await queuePosition(ctx.db, row)).toBe(i);
    }
    return fresh;
  };

  it('gives the positions of a full read after each enqueue, claim and cancel, and claims take its head', async () => {
    const owners = ['k-a', 'k-b', null, 'k-low', 'k-high', 'k-a', 'k-a', 'k-b', null, 'k-low'];
    for (const owner of owners) {
      await enqueue(owner);
      await expectSamePositions();
    }
    for (let round = 0; round < 4; round++) {
      const order = await expectSamePositions();
      const claimed = await claim();
      // The claim orders only each owner's oldest task: the same head as the whole order.
      expect(claimed?.id).toBe(order[0]);
      const after = await expectSamePositions();
      expect(after).not.toContain(claimed!.id);
      await transitions.cancelPendingTask(ctx.db, after.at(-1)!);
      expect(await expectSamePositions()).not.toContain(after.at(-1));
      await enqueue(owners[round]!);
    }
    await expectSamePositions();
  });
});
