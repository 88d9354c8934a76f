/**
 * Decides who a request is, from the key it presents. Lookups are cached briefly (a key costs one
 * database read every `cacheMs` at most, not one per request); a key created or revoked by the CLI,
 * on this replica or another, is seen once its entry expires. While no key exists at all the service
 * is open, as the old one was.
 */
import type { Db } from '../db/database.js';
import { anyApiKey, findApiKeyByHash, touchApiKey } from '../db/api-keys.js';
import type { ApiKeyRow, KeyScope } from '../db/types.js';
import { hashApiKey, sameHash } from './api-key.js';
import { callerOfKey, OPEN_CALLER, type Caller } from './caller.js';

/** Whether keys are required (`keys`) or the service is open (`open`, no key exists). */
export type AuthMode = 'open' | 'keys';

/** Why a request was refused. */
export type AuthFailure = 'missing' | 'invalid' | 'revoked';

/** The outcome of {@link Authenticator.authenticate}. */
export type AuthResult = { ok: true; caller: Caller } | { ok: false; failure: AuthFailure; message: string };

/** Options of the Authenticator. */
export interface AuthenticatorOptions {
  db: Db;
  /** How long a lookup (a key, or whether any key exists) is trusted, in ms. @default 2000 */
  cacheMs?: number;
  /** Least time between two `last_used_at` writes for one key, in ms. @default 60000 */
  touchEveryMs?: number;
  /** Called when recording a key's last use fails (it never fails a request). @default ignore */
  onTouchError?: (err: unknown) => void;
}

/** Most cached lookups; beyond it the cache starts over (a flood of random keys cannot grow it). */
const MAX_ENTRIES = 10_000;

const MESSAGES: Record<AuthFailure, string> = {
  missing: 'An API key is required: send it as "Authorization: Bearer <key>" (or X-API-Key)',
  invalid: 'The API key is not valid',
  revoked: 'The API key was revoked',
};

/** Who a request is; see the module comment. */
export class Authenticator {
  private readonly cacheMs: number;
  private readonly touchEveryMs: number;
  private readonly keys = new Map<string, { row: ApiKeyRow | undefined; until: number }>();
  private readonly touched = new Map<string, number>();
  private modeCache: { mode: AuthMode; until: number } | undefined;

  constructor(private readonly options: AuthenticatorOptions) {
    this.cacheMs = options.cacheMs ?? 2000;
    this.touchEveryMs = options.touchEveryMs ?? 60_000;
  }

  /** `open` while no key exists in the database, `keys` from the first one on. */
  async mode(): Promise<AuthMode> {
    const now = Date.now();
    if (this.modeCache && this.modeCache.until > now) return this.modeCache.mode;
    const mode: AuthMode = (await anyApiKey(this.options.db)) ? 'keys' : 'open';
    // Once keys exist there is no way back to open (keys are revoked, never deleted): cache for good.
    this.modeCache = { mode, until: mode === 'keys' ? Infinity : now + this.cacheMs };
    return mode;
  }

  /**
   * The caller presenting `key` (see presentedKey: undefined when none was sent). While the service
   * is open everyone is {@link OPEN_CALLER}, whatever they send.
   */
  async authenticate(key: string | undefined): Promise<AuthResult> {
    const hash = key ? hashApiKey(key) : undefined;
    if ((await this.mode()) === 'open') {
      // A key made a moment ago (the cached "open" not yet expired) must not make an ownerless task:
      // a presented key that exists ends open mode at once.
      if (!hash || !(await this.lookup(hash))) return { ok: true, caller: OPEN_CALLER };
      this.modeCache = { mode: 'keys', until: Infinity };
    }
    if (key === undefined || !hash) return refuse(key === undefined ? 'missing' : 'invalid');
    return this.judge(await this.lookup(hash), hash);
  }

  /**
   * What {@link authenticate} resolves, when the caches tell it without reading the database;
   * undefined otherwise. Saves a REST request its promises (a few per request, every request).
   */
  known(key: string | undefined): AuthResult | undefined {
    const now = Date.now();
    const mode = this.modeCache && this.modeCache.until > now ? this.modeCache.mode : undefined;
    if (mode === undefined) return undefined;
    // A key presented in open mode is looked up: it may end open mode (see authenticate).
    if (mode === 'open') return key ? undefined : { ok: true, caller: OPEN_CALLER };
    const hash = key ? hashApiKey(key) : undefined;
    if (key === undefined || !hash) return refuse(key === undefined ? 'missing' : 'invalid');
    const cached = this.keys.get(hash);
    return cached && cached.until > now ? this.judge(cached.row, hash) : undefined;
  }

  /** The result for the key row found for `hash` (none: invalid). */
  private judge(row: ApiKeyRow | undefined, hash: string): AuthResult {
    if (!row || !sameHash(row.hash, hash)) return refuse('invalid');
    if (row.revoked_at) return refuse('revoked');
    this.touch(row.id);
    return { ok: true, caller: callerOfKey(row) };
  }

  /** Whether `caller` holds `scope`; the message names it when not. */
  static lacks(caller: Caller, scope: KeyScope): string | undefined {
    return caller.scopes.has(scope) ? undefined : `This API key lacks the '${scope}' scope`;
  }

  private async lookup(hash: string): Promise<ApiKeyRow | undefined> {
    const now = Date.now();
    const cached = this.keys.get(hash);
    if (cached && cached.until > now) return cached.row;
    const row = await findApiKeyByHash(this.options.db, hash);
    if (this.keys.size >= MAX_ENTRIES) this.keys.clear();
    this.keys.set(hash, { row, until: now + this.cacheMs });
    return row;
  }

  /** Records the key's use at most once per `touchEveryMs`, without waiting for the write. */
  private touch(id: string): void {
    const now = Date.now();
    if ((this.touched.get(id) ?? 0) + this.touchEveryMs > now) return;
    if (this.touched.size >= MAX_ENTRIES) this.touched.clear();
    this.touched.set(id, now);
    touchApiKey(this.options.db, id, new Date(now).toISOString()).catch((err: unknown) => this.options.onTouchError?.(err));
  }
}

function refuse(failure: AuthFailure): AuthResult {
  return { ok: false, failure, message: MESSAGES[failure] };
}
