/**
 * One delivery attempt: POST the signed body with undici, 10 s at most, redirects not followed,
 * only the start of the answer kept. A task's own target is checked again first (what its host
 * resolves to now: DNS rebinding) and the connection goes to exactly the address that was checked.
 * WEBHOOK_URL is the operator's and is not checked.
 */
import type { LookupFunction } from 'node:net';
import { Agent, request } from 'undici';
import { allowedAddresses, hostOf, WebhookTargetError, type ResolvedAddress, type TargetPolicy } from './target-check.js';

/** How an attempt ended: `delivered` (2xx), `gone` (410: stop), `refused` (the target failed the check), `failed` (anything else). */
export type AttemptOutcome = 'delivered' | 'gone' | 'refused' | 'failed';

/** The outcome of one attempt. */
export interface AttemptResult {
  outcome: AttemptOutcome;
  /** The HTTP status, when there was an answer. */
  status: number | null;
  /** Why it failed, or the start of the receiver's answer. */
  detail: string | null;
}

/** Options of {@link WebhookSender}. */
export interface SenderOptions {
  policy: TargetPolicy;
  /** Limit of one attempt, from connecting to the end of the answer, in ms. @default 10_000 */
  timeoutMs?: number;
  /** Characters of the answer kept. @default 200 */
  excerptChars?: number;
  /** The User-Agent header. @default 'kontext-gateway' */
  userAgent?: string;
}

/** Connection pools kept per (host, checked address); the oldest goes beyond this many. */
const MAX_POOLS = 64;

/** Sends webhook attempts; see the module comment. Call close() at the end. */
export class WebhookSender {
  private readonly timeoutMs: number;
  private readonly excerptChars: number;
  private readonly plain: Agent;
  /** One pool per host and checked address: a kept-alive connection always goes where a check allowed. */
  private readonly pinned = new Map<string, Agent>();

  constructor(private readonly options: SenderOptions) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.excerptChars = options.excerptChars ?? 200;
    this.plain = new Agent({ connect: { timeout: this.timeoutMs } });
  }

  /** Sends `body` with `headers` to `url`; `checked`: a task's own target (checked now, connection pinned). */
  async send(url: string, body: string, headers: Record<string, string>, checked: boolean): Promise<AttemptResult> {
    let dispatcher = this.plain;
    if (checked) {
      try {
        const host = hostOf(new URL(url));
        const addresses = await allowedAddresses(host, this.options.policy);
        dispatcher = this.pinnedAgent(host, addresses[0]!);
      } catch (err) {
        if (err instanceof WebhookTargetError) return { outcome: 'refused', status: null, detail: err.message };
        return { outcome: 'failed', status: null, detail: describe(err) };
      }
    }
    try {
      const res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': this.options.userAgent ?? 'kontext-gateway', ...headers },
        body,
        dispatcher,
        signal: AbortSignal.timeout(this.timeoutMs),
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      const excerpt = await this.readExcerpt(res.body);
      const status = res.statusCode;
      const outcome: AttemptOutcome = status >= 200 && status < 300 ? 'delivered' : status === 410 ? 'gone' : 'failed';
      const where = status >= 300 && status < 400 && typeof res.headers.location === 'string' ? ` (redirect to ${res.headers.location.slice(0, 100)} not followed)` : '';
      return { outcome, status, detail: outcome === 'delivered' ? excerpt || null : `HTTP ${status}${where}${excerpt ? `: ${excerpt}` : ''}` };
    } catch (err) {
      return { outcome: 'failed', status: null, detail: describe(err) };
    }
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    const agents = [this.plain, ...this.pinned.values()];
    this.pinned.clear();
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
  }

  /** A pool whose connections resolve `host` to `address` alone (it was just checked); TLS still verifies `host`. */
  private pinnedAgent(host: string, address: ResolvedAddress): Agent {
    const key = `${host}\n${address.address}`;
    let agent = this.pinned.get(key);
    if (agent) {
      // Most recently used last, so the oldest is the first to go.
      this.pinned.delete(key);
      this.pinned.set(key, agent);
      return agent;
    }
    const lookup: LookupFunction = (_hostname, options, callback) => {
      if (options.all) (callback as unknown as (err: null, all: ResolvedAddress[]) => void)(null, [address]);
      else callback(null, address.address, address.family);
    };
    agent = new Agent({ connect: { timeout: this.timeoutMs, lookup } });
    this.pinned.set(key, agent);
    if (this.pinned.size > MAX_POOLS) {
      const [oldestKey, oldest] = this.pinned.entries().next().value as [string, Agent];
      this.pinned.delete(oldestKey);
      void oldest.close().catch(() => undefined);
    }
    return agent;
  }

  /** The first characters of the answer; the rest is not read (the connection closes instead). */
  private async readExcerpt(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
    let text = '';
    let bytes = 0;
    for await (const chunk of body) {
      bytes += chunk.length;
      if (text.length < this.excerptChars) text += chunk.toString('utf8');
      if (bytes > 4096) {
        body.destroy();
        break;
      }
    }
    return text.slice(0, this.excerptChars).replace(/\s+/g, ' ').trim();
  }
}

/** A network error on one line, with its code. */
function describe(err: unknown): string {
  const e = err as { message?: string; code?: string; cause?: { message?: string; code?: string } };
  const cause = e.cause?.code ?? e.cause?.message;
  if ((err as Error)?.name === 'TimeoutError') return 'no answer within the timeout';
  return [e.code ?? e.message ?? String(err), cause].filter(Boolean).join(': ').slice(0, 300);
}
