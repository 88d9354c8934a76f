/**
 * Signed image URLs: a browser cannot put a key on an `<img>` request, so the image URLs the API
 * returns carry `exp` (Unix seconds) and `sig`, an HMAC-SHA256 over task id, image index and expiry.
 * Anyone holding the URL may fetch that one image until it expires, as with S3's presigned URLs.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/database.js';
import { settingOrCreate } from '../db/settings.js';

/** The outcome of checking a signature. */
export type SignatureCheck = 'valid' | 'expired' | 'invalid';

/** Signatures kept by `sign`: the same image signed again within one expiry step costs no HMAC. */
const KEPT_SIGNATURES = 10_000;

/** Signs and checks image URLs; see the module comment. */
export class UrlSigner {
  /** `task\nindex\nexp` -> sig, oldest first (a page of 50 tasks signs ~125 URLs per request). */
  private readonly kept = new Map<string, string>();

  /**
   * @param secret at least 32 bytes; every replica must use the same one.
   * @param ttlS how long a URL works after it was made, in seconds.
   */
  constructor(
    private readonly secret: Buffer,
    readonly ttlS: number,
  ) {
    if (secret.length < 32) throw new Error('the URL signing secret must be at least 32 bytes');
  }

  /**
   * The query (`exp=...&sig=...`) that makes the URL of image `index` of `taskId` work for at least
   * the ttl. The expiry is rounded up to a step of 5 minutes (less for a shorter ttl), so the URL of
   * one image stays the same for that long and browsers can cache it.
   */
  sign(taskId: string, index: number, nowMs = Date.now()): string {
    const step = Math.min(300, this.ttlS);
    const exp = Math.ceil((Math.floor(nowMs / 1000) + this.ttlS) / step) * step;
    const key = `${taskId}\n${index}\n${exp}`;
    let sig = this.kept.get(key);
    if (sig === undefined) {
      sig = this.mac(taskId, index, exp);
      if (this.kept.size >= KEPT_SIGNATURES) this.kept.delete(this.kept.keys().next().value!);
      this.kept.set(key, sig);
    }
    return `exp=${exp}&sig=${sig}`;
  }

  /** Checks the `exp` and `sig` of a request for image `index` of `taskId`. */
  check(taskId: string, index: number, exp: string | null, sig: string | null, nowMs = Date.now()): SignatureCheck {
    if (!exp || !sig || !/^\d{1,12}$/.test(exp) || !/^[A-Za-z0-9_-]{43}$/.test(sig)) return 'invalid';
    const expected = Buffer.from(this.mac(taskId, index, Number(exp)));
    const given = Buffer.from(sig);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'invalid';
    return Number(exp) * 1000 < nowMs ? 'expired' : 'valid';
  }

  private mac(taskId: string, index: number, exp: number): string {
    return createHmac('sha256', this.secret).update(`${taskId}\n${index}\n${exp}`).digest('base64url');
  }
}

/**
 * The signing secret: URL_SIGNING_SECRET when set (any string of 32 characters or more), otherwise
 * one made at random once and kept in the database, which every replica shares.
 */
export async function loadSigningSecret(db: Db, configured: string | undefined): Promise<Buffer> {
  if (configured) return Buffer.from(configured, 'utf8');
  return Buffer.from(await settingOrCreate(db, 'url_signing_secret', randomBytes(32).toString('base64url')), 'utf8');
}
