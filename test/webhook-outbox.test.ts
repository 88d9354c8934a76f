/**
 * The webhook outbox in SQL on SQLite and PostgreSQL: claims take due rows once (two claimers at
 * once split them), a task's later event waits for its earlier one to the same target, leases
 * lapse; and the pure parts: the address policy and the backoff.
 */
import { describe, expect, it } from 'vitest';
import type { Db } from '../src/db/database.js';
import type { NewWebhook } from '../src/db/types.js';
import { claimDueWebhooks, finishWebhookAttempt, insertWebhooks, redeliverWebhook } from '../src/db/webhooks.js';
import { blockedClass } from '../src/webhooks/address-policy.js';
import { nextAttemptAt, retryDelayMs } from '../src/webhooks/backoff.js';
import { forEachDialect } from './helpers/databases.js';

const at = (second: number) => `2026-01-01T10:00:${String(second).padStart(2, '0')}.000Z`;

function row(id: string, task: string, ordinal: number, url = 'http://r.example/hook', due = 0): NewWebhook {
  return { id, task_id: task, ordinal, url, source: 'task', type: 'task.completed', payload: '{}', status: 'pending', next_attempt_at: at(due), retry_since: at(0), created_at: at(0) };
}

const claim = (db: Db, instance: string, second: number, limit = 100) =>
  claimDueWebhooks(db, { instance, now: at(second), leaseUntil: at(second + 30), limit }).then((rows) => rows.map((r) => r.id).sort());

forEachDialect('the webhook outbox in SQL', (ctx) => {
  it("claims due rows once; a task's later event to a target waits for the earlier one; other targets do not", async () => {
    const { db } = ctx;
    await insertWebhooks(db, [row('a1', 'a', 1), row('a2', 'a', 2), row('a2g', 'a', 2, 'http://global.example/'), row('b1', 'b', 1), row('c1', 'c', 1, undefined, 20)]);
    expect(await claim(db, 'one', 5)).toEqual(['a1', 'a2g', 'b1']);
    // Leased: nobody else takes them; a2 still waits behind a1.
    expect(await claim(db, 'two', 6)).toEqual([]);
    expect(await finishWebhookAttempt(db, 'a1', 'two', { status: 'delivered' })).toBe(false);
    expect(await finishWebhookAttempt(db, 'a1', 'one', { status: 'delivered', finished_at: at(7) })).toBe(true);
    expect(await claim(db, 'two', 8)).toEqual(['a2']);
    // Leases lapse (a dead replica): another takes those rows; c1 is due at second 20.
    expect(await claim(db, 'three', 40)).toEqual(['a2', 'a2g', 'b1', 'c1']);
    expect(await finishWebhookAttempt(db, 'a2', 'two', { status: 'delivered', finished_at: at(41) })).toBe(false);
    expect(await finishWebhookAttempt(db, 'a2', 'three', { status: 'delivered', finished_at: at(41) })).toBe(true);
    // Redelivered: due again at once.
    expect((await redeliverWebhook(db, 'a1', at(50)))?.status).toBe('pending');
    expect(await claim(db, 'four', 50)).toEqual(['a1']);
  });

  it('two claimers at once split the due rows, none taken twice', async () => {
    const { db } = ctx;
    await insertWebhooks(db, Array.from({ length: 60 }, (_, i) => row(`r${i}`, `t${i}`, 1)));
    const [x, y, z] = await Promise.all([claim(db, 'x', 5, 25), claim(db, 'y', 5, 25), claim(db, 'z', 5, 25)]);
    const all = [...x!, ...y!, ...z!];
    expect(new Set(all).size).toBe(all.length);
    expect(all.length).toBe(60);
  });
});

describe('webhook address policy and backoff', () => {
  it('refuses loopback, private, link-local, metadata and reserved addresses; public ones pass', () => {
    expect(blockedClass('127.0.0.1')).toBe('loopback');
    expect(blockedClass('10.0.0.1')).toBe('private');
    expect(blockedClass('172.20.1.1')).toBe('private');
    expect(blockedClass('192.168.0.10')).toBe('private');
    expect(blockedClass('100.64.0.1')).toBe('private');
    expect(blockedClass('169.254.169.254')).toBe('metadata');
    expect(blockedClass('169.254.10.1')).toBe('link-local');
    expect(blockedClass('0.0.0.0')).toBe('reserved');
    expect(blockedClass('::1')).toBe('loopback');
    expect(blockedClass('::ffff:7f00:1')).toBe('reserved');
    expect(blockedClass('fd00:ec2::254')).toBe('metadata');
    expect(blockedClass('fc00::1')).toBe('private');
    expect(blockedClass('fe80::1')).toBe('link-local');
    expect(blockedClass('93.184.216.34')).toBeUndefined();
    expect(blockedClass('2606:4700::1111')).toBeUndefined();
  });

  it('the first retry comes within 5 s, later ones up to twice as late each, with jitter, and none past the window', () => {
    for (const r of [0, 0.5, 0.999]) {
      expect(retryDelayMs(1, { random: () => r })).toBeLessThanOrEqual(5000);
      expect(retryDelayMs(1, { random: () => r })).toBeGreaterThanOrEqual(2500);
      expect(retryDelayMs(3, { random: () => r })).toBeLessThanOrEqual(20_000);
    }
    expect(retryDelayMs(40, { random: () => 0.999 })).toBeLessThanOrEqual(3_600_000);
    const since = new Date('2026-01-01T00:00:00Z');
    expect(nextAttemptAt(10, new Date('2026-01-01T23:59:00Z'), since, 24 * 3_600_000)).toBeUndefined();
    expect(nextAttemptAt(1, new Date('2026-01-01T01:00:00Z'), since, 24 * 3_600_000)).toBeInstanceOf(Date);
  });
});
