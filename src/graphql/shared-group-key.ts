/**
 * Which subscribers may share an execution: those whose result for the same event is the same. That
 * is the operation (document, operation name, variables) and everything of the caller a resolver
 * reads: its key id (ownership, and whether image URLs are signed: only for a key), whether it sees
 * all tasks, and its scopes. The rest of the context (service, PUBLIC_URL, signer) is the server's,
 * and the cache that uses these keys belongs to one server.
 */
import { print, type DocumentNode, type ExecutionArgs } from 'graphql';
import type { Caller } from '../auth/caller.js';

/** Printed documents: Yoga's parser cache hands out the same DocumentNode for the same text. */
const printed = new WeakMap<DocumentNode, string>();

/** The caller's part of a group key: what of it can change a result. */
export function callerKey(caller: Caller): string {
  return `${caller.keyId ?? ''}\u0000${caller.seesAll ? 1 : 0}\u0000${[...caller.scopes].sort().join(',')}`;
}

/**
 * The group key of a subscription, or undefined when it must not be shared (no authenticated
 * caller in its context, or variables that do not serialise).
 */
export function sharedGroupKey(args: ExecutionArgs): string | undefined {
  const caller = (args.contextValue as { caller?: Caller } | undefined)?.caller;
  if (!caller) return undefined;
  let document = printed.get(args.document);
  if (document === undefined) {
    document = print(args.document);
    printed.set(args.document, document);
  }
  let variables: string;
  try {
    variables = JSON.stringify(args.variableValues ?? {});
  } catch {
    return undefined; // a cycle or a BigInt: not worth sharing
  }
  // Fields joined by NUL: none of them can contain one unescaped (JSON and printed GraphQL escape it).
  return intern([document, args.operationName ?? '', variables, callerKey(caller)].join('\u0000'));
}

/** Keys handed out: every subscriber holds its key for its life, one copy serves a group. */
const interned = new Map<string, string>();

/** The first copy of `key` (a bounded table: past 10 000 keys it starts over). */
function intern(key: string): string {
  const known = interned.get(key);
  if (known !== undefined) return known;
  if (interned.size >= 10_000) interned.clear();
  interned.set(key, key);
  return key;
}
