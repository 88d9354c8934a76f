/**
 * Shareable graphql-ws subscriptions, handled beside graphql-ws's per-operation machinery (ws.ts
 * hands every other message to graphql-ws). Subscribers that send the same document, operation name
 * and variables on connections of the same caller (shared-group-key.ts's callerKey) form a group:
 * the document is parsed and validated, and Yoga's envelope and context made, once per group. Each
 * subscriber is then one small record (its socket, its id; ws-direct-operation.ts), entered in
 * graphql-ws's own table of the connection's operations, so graphql-ws's duplicate-id close (4409),
 * `complete` and close handling and the per-socket limit (ws.ts's onSubscribe) see it as theirs.
 *
 * Whatever a group cannot answer alike for all (a document that fails to parse or validate, an
 * operation that is not a subscription, an odd message) goes to graphql-ws as before, so its errors
 * are answered per operation exactly as they were. The subscribe resolver still runs per subscriber
 * (scopes, ownership, its own snapshot, NOT_FOUND/FORBIDDEN answered as graphql-ws answers them).
 */
import { getOperationAST, type DocumentNode, type ExecutionArgs } from 'graphql';
import type { Caller } from '../auth/caller.js';
import { callerKey } from './shared-group-key.js';
import { DirectOperation, type OperationTable } from './ws-direct-operation.js';
import type { GraphQLServer } from './yoga.js';

/** What a group shares: the arguments of every member's subscribe, and Yoga's enveloped subscribe. */
interface GroupArgs {
  args: ExecutionArgs;
  /** Yoga's enveloped subscribe (its plugins: masking, shared execution), for what is not written directly. */
  subscribe: (args: ExecutionArgs) => unknown;
}

interface Group {
  key: string;
  /** The shared arguments, or undefined when the operation is not shareable (graphql-ws answers it). */
  ready: Promise<GroupArgs | undefined>;
  members: number;
}

/** A `subscribe` message as graphql-ws validates it, narrowed to what a group needs. */
interface SubscribeMessage {
  id: string;
  payload: { query: string; operationName?: string | null; variables?: Record<string, unknown> | null };
}

/** graphql-ws's state of one connection that this module reads and writes. */
export interface ConnectionState {
  acknowledged: boolean;
  subscriptions: OperationTable;
}

/** The groups of one server; see the file comment. */
export class SharedSubscriptions {
  readonly #groups = new Map<string, Group>();

  /** `maxPerSocket`: a subscribe beyond it goes to graphql-ws, whose onSubscribe answers the limit error. */
  constructor(
    private readonly yoga: GraphQLServer,
    private readonly maxPerSocket: number,
  ) {}

  /** Groups alive (members subscribed or subscribing). */
  get size(): number {
    return this.#groups.size;
  }

  /**
   * Takes `data` (a message of an acknowledged connection of `caller`) when it subscribes to a
   * shareable operation; false when graphql-ws must handle it (`delegate` is called later instead
   * when that turns out only after the group's validation). An unexpected failure goes to `fail`
   * (ws.ts closes with 4500, as for graphql-ws's own).
   */
  handle(
    ctx: ConnectionState,
    socket: DirectOperation['socket'],
    caller: Caller | undefined,
    data: string,
    delegate: () => void,
    fail: (err: unknown) => void,
  ): boolean {
    if (!caller || !ctx.acknowledged || !data.includes('"subscribe"')) return false;
    const message = subscribeMessage(data);
    if (!message) return false;
    const { id, payload } = message;
    // graphql-ws closes with 4409 for a duplicate; the limit error is ws.ts's onSubscribe's.
    if (id in ctx.subscriptions || Object.keys(ctx.subscriptions).length >= this.maxPerSocket) return false;
    let variables: string;
    try {
      variables = JSON.stringify(payload.variables ?? {});
    } catch {
      return false;
    }
    const key = [payload.query, payload.operationName ?? '', variables, callerKey(caller)].join('\u0000');
    let group = this.#groups.get(key);
    if (!group) this.#groups.set(key, (group = { key, ready: this.#prepare(caller, message), members: 0 }));
    group.members++;
    // Entered now, as graphql-ws enters an operation before its first await: the next message sees it.
    const operation = new DirectOperation(socket, id);
    ctx.subscriptions[id] = operation;
    this.#run(ctx, operation, group, delegate, fail).catch(fail);
    return true;
  }

  /**
   * Waits for the group, then starts the operation; resolves once it is subscribed (its frame,
   * holding `delegate` and the message, ends then). The group is left when the operation ends.
   */
  async #run(ctx: ConnectionState, operation: DirectOperation, group: Group, delegate: () => void, fail: (err: unknown) => void): Promise<void> {
    let shared: GroupArgs | undefined;
    try {
      shared = await group.ready;
    } catch (err) {
      this.#leave(group);
      throw err;
    }
    if (!shared) {
      this.#leave(group);
      if (ctx.subscriptions[operation.id] === operation) delete ctx.subscriptions[operation.id];
      return delegate();
    }
    // The group's arguments are shared by every member as they are (the sink is the operation itself, not in the context).
    await operation.start(ctx, shared.args, shared.subscribe, (error) => {
      this.#leave(group);
      if (error !== undefined) fail(error);
    });
  }

  #leave(group: Group): void {
    if (--group.members === 0 && this.#groups.get(group.key) === group) this.#groups.delete(group.key);
  }

  /** Parses, validates and builds the context once for a group; undefined when graphql-ws must answer. */
  async #prepare(caller: Caller, { payload }: SubscribeMessage): Promise<GroupArgs | undefined> {
    const { schema, parse, validate, contextFactory, subscribe } = this.yoga.getEnveloped({ caller, params: payload });
    let document: DocumentNode;
    try {
      document = parse(payload.query);
      // graphql-armor's rules throw from validate rather than report.
      if (validate(schema, document).length > 0) return undefined;
    } catch {
      return undefined;
    }
    const operationName = payload.operationName ?? null;
    if (getOperationAST(document, operationName)?.operation !== 'subscription') return undefined;
    const contextValue = (await contextFactory()) as object;
    return { args: { schema, document, operationName, variableValues: payload.variables ?? null, contextValue }, subscribe: subscribe as GroupArgs['subscribe'] };
  }
}

/** `data` as a well-formed subscribe message (graphql-ws's validateMessage rules), or undefined. */
function subscribeMessage(data: string): SubscribeMessage | undefined {
  let m: unknown;
  try {
    m = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null) return undefined;
  const { type, id, payload } = m as { type?: unknown; id?: unknown; payload?: unknown };
  if (type !== 'subscribe' || typeof id !== 'string' || id === '' || typeof payload !== 'object' || payload === null) return undefined;
  const { query, operationName, variables, extensions } = payload as Record<string, unknown>;
  if (typeof query !== 'string') return undefined;
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') return undefined;
  if (variables !== undefined && variables !== null && (typeof variables !== 'object' || Array.isArray(variables))) return undefined;
  if (extensions !== undefined && extensions !== null && (typeof extensions !== 'object' || Array.isArray(extensions))) return undefined;
  return m as SubscribeMessage;
}
