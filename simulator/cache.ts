/**
 * ComfyUI's classic output cache (docs/comfyui-protocol.md §7). A node's signature is its class, its IS_CHANGED
 * value, its literal inputs sorted by name, and for each link the ancestor's index in a canonical
 * ancestry order plus the output slot, followed by the ancestors' own signatures. Node ids do not
 * count. When a prompt starts, entries that none of its nodes map to are dropped, so only the
 * latest prompt's results survive.
 */
import { randomUUID } from 'node:crypto';
import { isExecLink } from './execution-list.js';
import type { ClassContext } from './node-classes.js';
import { NODE_CLASSES } from './node-classes.js';
import { PyFloat, type PyDict, type PyValue, inputsOf, isDict, pyNumeric } from './py.js';

/** A cached result: the node's outputs and its UI entry (`{meta, output}`) if it has one. */
export interface CacheEntry {
  outputs: unknown[];
  ui: { meta: PyDict; output: PyDict } | null;
}

/** Canonical text of a literal with Python's equality (1 == 1.0 == True; NaN never equal). */
function canon(v: PyValue): string {
  const n = pyNumeric(v);
  if (n !== null) {
    if (typeof n === 'number' && Number.isNaN(n)) return `nan:${randomUUID()}`;
    if (typeof n === 'bigint') return `n:${n}`;
    return Number.isInteger(n) ? `n:${BigInt(n)}` : `n:${n}`;
  }
  if (v === null) return 'N';
  if (typeof v === 'string') return `s:${JSON.stringify(v)}`;
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (isDict(v)) return `{${[...v].map(([k, x]) => `${JSON.stringify(k)}:${canon(x)}`).sort().join(',')}}`;
  if (v instanceof PyFloat) return `n:${v.value}`;
  return String(v);
}

/** The classic output cache: signature → result, keyed per prompt node. */
export class OutputCache {
  private entries = new Map<string, CacheEntry>();
  private keys = new Map<string, string>();

  /** Computes every node's signature for this prompt (IS_CHANGED included) and drops unused entries. */
  async setPrompt(prompt: PyDict, ctx: ClassContext): Promise<void> {
    const isChanged = new Map<string, string>();
    for (const [id, node] of prompt) {
      const n = node as PyDict;
      const cls = NODE_CLASSES.get(n.get('class_type') as string);
      if (!cls?.isChanged) continue;
      try {
        isChanged.set(id, await cls.isChanged(inputsOf(n), ctx));
      } catch {
        isChanged.set(id, `nan:${randomUUID()}`); // an IS_CHANGED that raises is NaN: never equal
      }
    }
    const immediate = (id: string, order: Map<string, number>): string => {
      const node = prompt.get(id);
      if (!isDict(node)) return `missing:${randomUUID()}`;
      const inputs = inputsOf(node);
      const parts = [JSON.stringify(node.get('class_type')), isChanged.get(id) ?? 'False'];
      for (const key of [...inputs.keys()].sort()) {
        const v = inputs.get(key) as PyValue;
        parts.push(isExecLink(v) ? `${JSON.stringify(key)}=A${order.get(v[0])}:${canon(v[1] as PyValue)}` : `${JSON.stringify(key)}=${canon(v)}`);
      }
      return `(${parts.join(';')})`;
    };
    this.keys = new Map();
    for (const id of prompt.keys()) {
      const ancestors: string[] = [];
      const order = new Map<string, number>();
      const walk = (nid: string): void => {
        const node = prompt.get(nid);
        if (!isDict(node)) return;
        const inputs = inputsOf(node);
        for (const key of [...inputs.keys()].sort()) {
          const v = inputs.get(key);
          if (!isExecLink(v) || order.has(v[0])) continue;
          ancestors.push(v[0]);
          order.set(v[0], ancestors.length - 1);
          walk(v[0]);
        }
      };
      walk(id);
      this.keys.set(id, [immediate(id, order), ...ancestors.map((a) => immediate(a, order))].join('|'));
    }
    const used = new Set(this.keys.values());
    for (const sig of [...this.entries.keys()]) if (!used.has(sig)) this.entries.delete(sig);
  }

  get(id: string): CacheEntry | undefined {
    const k = this.keys.get(id);
    return k === undefined ? undefined : this.entries.get(k);
  }

  set(id: string, entry: CacheEntry): void {
    const k = this.keys.get(id);
    if (k !== undefined) this.entries.set(k, entry);
  }

  clear(): void {
    this.entries.clear();
    this.keys.clear();
  }
}

/** Node instances per (id, class), kept while the id appears in consecutive prompts. */
export class ObjectCache {
  private objects = new Map<string, Record<string, unknown>>();

  setPrompt(prompt: PyDict): void {
    const used = new Set<string>();
    for (const [id, node] of prompt) used.add(`${id}\u0000${String((node as PyDict).get('class_type'))}`);
    for (const k of [...this.objects.keys()]) if (!used.has(k)) this.objects.delete(k);
  }

  get(id: string, classType: string, create: () => Record<string, unknown>): Record<string, unknown> {
    const k = `${id}\u0000${classType}`;
    let o = this.objects.get(k);
    if (!o) {
      o = create();
      this.objects.set(k, o);
    }
    return o;
  }

  clear(): void {
    this.objects.clear();
  }
}
