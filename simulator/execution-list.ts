/**
 * ComfyUI's ExecutionList (comfy_execution/graph.py): which node runs next. Output nodes are added
 * in order; `addNode` walks inputs depth-first with a stack (popping from the end), skipping cached
 * ancestors, and records pending nodes in insertion order. The next node is picked among the ready
 * ones (nothing pending blocks them) with the UX heuristic: an output node first, else a node that
 * directly blocks an output, else one two levels away, else the first ready node.
 */
import { PyFloat, type PyDict, type PyValue } from './py.js';

/** graph_utils.is_link: `[str, int | float]` (bool counts as int). */
export function isExecLink(v: unknown): v is [string, number | bigint | boolean | PyFloat] {
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string') return false;
  const s = v[1] as unknown;
  return typeof s === 'number' || typeof s === 'bigint' || typeof s === 'boolean' || s instanceof PyFloat;
}

/** What the execution list needs to know about the prompt graph. */
export interface GraphView {
  /** The node's inputs (prompt order). */
  inputs(id: string): PyDict;
  has(id: string): boolean;
  isOutput(id: string): boolean;
  isCached(id: string): boolean;
}

/** The pending nodes of one prompt and their blocking links. */
export class ExecutionList {
  private readonly pending = new Map<string, true>();
  private readonly blockCount = new Map<string, number>();
  private readonly blocking = new Map<string, Map<string, true>>();
  private staged: string | null = null;

  constructor(private readonly graph: GraphView) {}

  /** Adds a node and everything it needs that is not cached. */
  addNode(id: string): void {
    const stack = [id];
    const links: Array<[string, string]> = [];
    while (stack.length > 0) {
      const current = stack.pop() as string;
      if (this.pending.has(current)) continue;
      if (!this.graph.has(current)) throw new Error(`Node ${current} not found`);
      this.pending.set(current, true);
      this.blockCount.set(current, 0);
      this.blocking.set(current, new Map());
      for (const value of this.graph.inputs(current).values() as IterableIterator<PyValue>) {
        if (!isExecLink(value)) continue;
        const from = value[0];
        if (!this.graph.isCached(from)) stack.push(from);
        links.push([from, current]);
      }
    }
    for (const [from, to] of links) this.addStrongLink(from, to);
  }

  private addStrongLink(from: string, to: string): void {
    if (this.graph.isCached(from)) return;
    this.addNode(from);
    const blocked = this.blocking.get(from) as Map<string, true>;
    if (!blocked.has(to)) {
      blocked.set(to, true);
      this.blockCount.set(to, (this.blockCount.get(to) ?? 0) + 1);
    }
  }

  isEmpty(): boolean {
    return this.pending.size === 0;
  }

  /** The nodes nothing pending blocks, in insertion order. */
  readyNodes(): string[] {
    return [...this.pending.keys()].filter((id) => this.blockCount.get(id) === 0);
  }

  /** Picks the next node; null with a cycle (pending nodes but none ready). */
  stage(): string | null {
    const ready = this.readyNodes();
    if (ready.length === 0) return null;
    this.staged = this.pick(ready);
    return this.staged;
  }

  /** Some node of a dependency cycle, for the error report. */
  cycleNode(): string {
    return [...this.pending.keys()][0] ?? '';
  }

  private pick(ready: string[]): string {
    const isOutput = (id: string): boolean => this.graph.isOutput(id);
    for (const id of ready) if (isOutput(id)) return id;
    for (const id of ready) for (const b of this.blocking.get(id)?.keys() ?? []) if (isOutput(b)) return id;
    for (const id of ready) {
      for (const b of this.blocking.get(id)?.keys() ?? []) {
        for (const b2 of this.blocking.get(b)?.keys() ?? []) if (isOutput(b2)) return id;
      }
    }
    return ready[0] as string;
  }

  /** Marks the staged node done, unblocking what it blocked. */
  complete(): void {
    const id = this.staged;
    if (id === null) return;
    this.pending.delete(id);
    for (const b of this.blocking.get(id)?.keys() ?? []) this.blockCount.set(b, (this.blockCount.get(b) ?? 1) - 1);
    this.blocking.delete(id);
    this.staged = null;
  }
}
