/**
 * The SSRF check of a task's webhook target, when the task is created and again before every
 * delivery (a name may resolve elsewhere by then: DNS rebinding). The resolver is injectable, so
 * tests can change what a name resolves to.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { blockedClass } from './address-policy.js';

/** One resolved address. */
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to its addresses (never called for IP literals). */
export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

/** The system resolver (getaddrinfo, as a connection would use). */
export const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

/** A refused target; `message` says why (it names the URL's host, never the whole URL). */
export class WebhookTargetError extends Error {
  override readonly name = 'WebhookTargetError';
}

/** What the check needs. */
export interface TargetPolicy {
  /** WEBHOOK_ALLOW_HOSTS, lower-cased: host names or IPs allowed although they resolve to a refused address. */
  allowHosts: readonly string[];
  /** @default systemResolver */
  resolve?: Resolver;
}

/** Longest accepted webhook URL. */
export const MAX_WEBHOOK_URL = 2048;

/** The URL's host as a resolver or an allow-list names it: lower-case, IPv6 without brackets. */
export function hostOf(url: URL): string {
  return url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
}

/** Parses and checks the form of a webhook URL (http or https, a host); throws WebhookTargetError. */
export function parseWebhookUrl(raw: string): URL {
  if (raw.length > MAX_WEBHOOK_URL) throw new WebhookTargetError(`webhook must be a URL of at most ${MAX_WEBHOOK_URL} characters`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookTargetError('webhook must be an absolute http or https URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new WebhookTargetError(`webhook must be an http or https URL, not ${url.protocol.slice(0, -1)}`);
  if (!url.hostname) throw new WebhookTargetError('webhook must name a host');
  return url;
}

/**
 * The addresses the target may be reached at: those `host` resolves to, all allowed. Throws
 * WebhookTargetError for a name that does not resolve, or any refused address (one bad address
 * is enough: a connection could pick it) unless the host or that address is in `allowHosts`.
 */
export async function allowedAddresses(host: string, policy: TargetPolicy): Promise<ResolvedAddress[]> {
  const family = isIP(host);
  let addresses: ResolvedAddress[];
  if (family !== 0) addresses = [{ address: host, family: family === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await (policy.resolve ?? systemResolver)(host);
    } catch (err) {
      throw new WebhookTargetError(`webhook host ${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    if (addresses.length === 0) throw new WebhookTargetError(`webhook host ${host} does not resolve`);
  }
  if (policy.allowHosts.includes(host)) return addresses;
  for (const { address } of addresses) {
    const cls = blockedClass(address);
    if (cls && !policy.allowHosts.includes(address.toLowerCase())) {
      throw new WebhookTargetError(`webhook host ${host} resolves to ${address}, a ${cls} address; list it in WEBHOOK_ALLOW_HOSTS to allow it`);
    }
  }
  return addresses;
}

/** Checks a task's webhook URL at creation: its form, then where it resolves. Returns the URL as stored. */
export async function checkWebhookTarget(raw: string, policy: TargetPolicy): Promise<string> {
  const url = parseWebhookUrl(raw);
  await allowedAddresses(hostOf(url), policy);
  return url.toString();
}
