/**
 * The parts of API-key authentication below the interfaces: the key format and its hash, the
 * Authenticator (open until the first key, cached lookups, revocation seen once the cache expires,
 * last use recorded coarsely), and signed image URLs.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashApiKey, KEY_PREFIX, newApiKey, presentedKey, sameHash } from '../src/auth/api-key.js';
import { Authenticator } from '../src/auth/authenticator.js';
import { canSee, OPEN_CALLER } from '../src/auth/caller.js';
import { createApiKey } from '../src/auth/create-api-key.js';
import { loadSigningSecret, UrlSigner } from '../src/auth/url-signer.js';
import { revokeApiKey } from '../src/db/api-keys.js';
import { createLogger } from '../src/log.js';
import { forEachDialect } from './helpers/databases.js';
import { startStack, until } from './helpers/stack.js';

describe('API key format', () => {
  it('is the prefix and 43 base64url characters (32 random bytes), hashed with SHA-256', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const { key, hash, prefix } = newApiKey();
      expect(key).toMatch(new RegExp(`^${KEY_PREFIX}[A-Za-z0-9_-]{43}$`));
      expect(Buffer.from(key.slice(KEY_PREFIX.length), 'base64url')).toHaveLength(32);
      expect(hash).toBe(createHash('sha256').update(key).digest('hex'));
      expect(key.startsWith(prefix)).toBe(true);
      expect(prefix.length).toBeLessThan(key.length / 2);
      seen.add(key);
    }
    expect(seen.size).toBe(50);
  });

  it('reads Bearer and X-API-Key, and tells an unusable header from none', () => {
    expect(presentedKey('Bearer kx_abc')).toBe('kx_abc');
    expect(presentedKey('bearer   kx_abc ')).toBe('kx_abc');
    expect(presentedKey(undefined, 'kx_abc')).toBe('kx_abc');
    expect(presentedKey('Basic dXNlcjpwYXNz')).toBe('');
    expect(presentedKey(`Bearer ${'a'.repeat(300)}`)).toBe('');
    expect(presentedKey(undefined, undefined)).toBeUndefined();
    expect(sameHash(hashApiKey('a'), hashApiKey('a'))).toBe(true);
    expect(sameHash(hashApiKey('a'), hashApiKey('b'))).toBe(false);
    expect(sameHash('', '')).toBe(false);
  });
});

describe('signed image URLs', () => {
  const signer = new UrlSigner(Buffer.alloc(32, 7), 3600);
  const query = (q: string) => new URLSearchParams(q);

  it('accepts its own signature for that task and index until it expires, nothing else', () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    const q = query(signer.sign('task-1', 2, now));
    const [exp, sig] = [q.get('exp'), q.get('sig')];
    expect(Number(exp) * 1000 - now).toBeGreaterThanOrEqual(3600_000);
    expect(signer.check('task-1', 2, exp, sig, now)).toBe('valid');
    expect(signer.check('task-1', 1, exp, sig, now)).toBe('invalid');
    expect(signer.check('task-2', 2, exp, sig, now)).toBe('invalid');
    expect(signer.check('task-1', 2, String(Number(exp) + 1), sig, now)).toBe('invalid');
    expect(signer.check('task-1', 2, exp, `${sig!.slice(0, -1)}${sig!.endsWith('A') ? 'B' : 'A'}`, now)).toBe('invalid');
    expect(signer.check('task-1', 2, exp, null, now)).toBe('invalid');
    expect(signer.check('task-1', 2, exp, sig, Number(exp) * 1000 + 1000)).toBe('expired');
    expect(new UrlSigner(Buffer.alloc(32, 8), 3600).check('task-1', 2, exp, sig, now)).toBe('invalid');
  });

  it('hands out one URL per image for minutes at a time, so browsers can cache it', () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    // Just past a step boundary: the next 4 minutes give the same URL.
    expect(signer.sign('t', 0, now + 1000)).toBe(signer.sign('t', 0, now + 240_000));
    expect(() => new UrlSigner(Buffer.alloc(16), 60)).toThrow(/32 bytes/);
  });
});

forEachDialect('Authenticator', (ctx) => {
  it('is open while no key exists, then requires one; the mode never goes back', async () => {
    const auth = new Authenticator({ db: ctx.db, cacheMs: 50 });
    expect(await auth.mode()).toBe('open');
    expect(await auth.authenticate(undefined)).toEqual({ ok: true, caller: OPEN_CALLER });
    expect(await auth.authenticate('kx_whatever')).toEqual({ ok: true, caller: OPEN_CALLER });
    const { key, row } = await createApiKey(ctx.db, { name: 'first', scopes: ['read'], maxConcurrent: 2, priority: 'high' });
    await until('keys mode', async () => (await auth.mode()) === 'keys', 5000);
    expect(await auth.authenticate(undefined)).toMatchObject({ ok: false, failure: 'missing' });
    expect(await auth.authenticate('')).toMatchObject({ ok: false, failure: 'invalid' });
    expect(await auth.authenticate(`${key}x`)).toMatchObject({ ok: false, failure: 'invalid' });
    const ok = await auth.authenticate(key);
    expect(ok).toMatchObject({ ok: true, caller: { keyId: row.id, name: 'first', seesAll: false, limits: { maxConcurrent: 2 }, priority: 'high' } });
    if (!ok.ok) throw new Error('refused');
    expect([...ok.caller.scopes]).toEqual(['read']);
    expect(Authenticator.lacks(ok.caller, 'generate')).toMatch(/'generate' scope/);
    await revokeApiKey(ctx.db, row.id, new Date().toISOString());
    expect(await auth.mode()).toBe('keys');
  });

  it('takes a key made a moment ago at once, while the cached "open" has not expired yet', async () => {
    const auth = new Authenticator({ db: ctx.db, cacheMs: 3_600_000 });
    expect(await auth.mode()).toBe('open');
    const { key, row } = await createApiKey(ctx.db, { name: 'new' });
    expect(await auth.authenticate(key)).toMatchObject({ ok: true, caller: { keyId: row.id } });
    expect(await auth.mode()).toBe('keys');
    expect(await auth.authenticate(undefined)).toMatchObject({ ok: false, failure: 'missing' });
  });

  it('sees a revoked key once its cache entry expires, and reads the database once per key per cacheMs', async () => {
    let queries = 0;
    const db = await ctx.database.open({ onQuery: (q) => void (/api_keys/.test(q.query.sql) && queries++) });
    const auth = new Authenticator({ db, cacheMs: 300, touchEveryMs: 3_600_000 });
    const { key, row } = await createApiKey(db, { name: 'k' });
    await auth.mode();
    queries = 0;
    for (let i = 0; i < 100; i++) expect((await auth.authenticate(key)).ok).toBe(true);
    expect(queries).toBeLessThanOrEqual(2); // the lookup, and the first last-use write
    await revokeApiKey(db, row.id, new Date().toISOString());
    await until('revocation seen', async () => (await auth.authenticate(key)).ok === false, 5000);
    expect(await auth.authenticate(key)).toMatchObject({ ok: false, failure: 'revoked' });
  });

  it('tells from its caches alone what authenticate would, and nothing it has not read', async () => {
    const auth = new Authenticator({ db: ctx.db, cacheMs: 3_600_000, touchEveryMs: 3_600_000 });
    expect(auth.known(undefined)).toBeUndefined(); // the mode not read yet
    expect(await auth.mode()).toBe('open');
    expect(auth.known(undefined)).toEqual({ ok: true, caller: OPEN_CALLER });
    // A key in open mode is looked up (it may end open mode): never decided from the caches.
    const { key, row } = await createApiKey(ctx.db, { name: 'known', scopes: ['read'] });
    expect(auth.known(key)).toBeUndefined();
    const ok = await auth.authenticate(key);
    expect(auth.known(key)).toEqual(ok);
    expect(auth.known(key)).toMatchObject({ ok: true, caller: { keyId: row.id } });
    expect(auth.known(undefined)).toMatchObject({ ok: false, failure: 'missing' });
    expect(auth.known('')).toMatchObject({ ok: false, failure: 'invalid' });
    expect(auth.known(`${key}x`)).toBeUndefined(); // not looked up yet
    expect(await auth.authenticate(`${key}x`)).toMatchObject({ ok: false, failure: 'invalid' });
    expect(auth.known(`${key}x`)).toMatchObject({ ok: false, failure: 'invalid' });
  });

  it('records last use coarsely, never failing the request', async () => {
    const errors: unknown[] = [];
    const auth = new Authenticator({ db: ctx.db, touchEveryMs: 3_600_000, onTouchError: (e) => errors.push(e) });
    const { key, row } = await createApiKey(ctx.db, { name: 'used' });
    expect(row.last_used_at).toBeNull();
    await auth.authenticate(key);
    await until('last use recorded', async () => {
      const r = await ctx.db.selectFrom('api_keys').select('last_used_at').where('id', '=', row.id).executeTakeFirstOrThrow();
      return r.last_used_at !== null;
    });
    expect(errors).toEqual([]);
  });

  it('an admin key sees every task; other keys their own; tasks made while open only admins', async () => {
    const auth = new Authenticator({ db: ctx.db });
    const admin = await createApiKey(ctx.db, { name: 'ops', scopes: ['admin'] });
    const user = await createApiKey(ctx.db, { name: 'user' });
    const a = await auth.authenticate(admin.key);
    const u = await auth.authenticate(user.key);
    if (!a.ok || !u.ok) throw new Error('refused');
    expect([...a.caller.scopes].sort()).toEqual(['admin', 'generate', 'read']);
    expect(canSee(a.caller, null)).toBe(true);
    expect(canSee(a.caller, user.row.id)).toBe(true);
    expect(canSee(u.caller, user.row.id)).toBe(true);
    expect(canSee(u.caller, admin.row.id)).toBe(false);
    expect(canSee(u.caller, null)).toBe(false);
  });

  it('keeps one signing secret for every replica, unless URL_SIGNING_SECRET sets it', async () => {
    const other = await ctx.database.open();
    const [one, two] = await Promise.all([loadSigningSecret(ctx.db, undefined), loadSigningSecret(other, undefined)]);
    expect(one.equals(two)).toBe(true);
    expect(one.length).toBeGreaterThanOrEqual(32);
    expect((await loadSigningSecret(ctx.db, 'x'.repeat(40))).toString()).toBe('x'.repeat(40));
  });
});

describe('the open-service warning', () => {
  it('warns at start when no key exists and the service listens beyond loopback; not on loopback, not once a key exists', async () => {
    const warnings = (lines: string[]) => lines.filter((l) => /no API key exists/.test(l));
    const run = async (host: string, withKey: boolean) => {
      const lines: string[] = [];
      const log = createLogger({ json: true, write: (l) => lines.push(l) });
      const stack = await startStack({ config: { host }, app: { log } });
      try {
        if (!withKey) return warnings(lines);
        await createApiKey(stack.app.db, { name: 'closes it' });
        await stack.app.close();
        lines.length = 0;
        await stack.restart();
        return warnings(lines);
      } finally {
        await stack.close();
      }
    };
    const beyond = await run('0.0.0.0', false);
    expect(beyond).toHaveLength(1);
    expect(beyond[0]).toMatch(/kontext keys create/);
    expect(await run('127.0.0.1', false)).toEqual([]);
    expect(await run('0.0.0.0', true)).toEqual([]);
  });
});
