/**
 * Checks a workflow against what a real ComfyUI has installed (`GET /object_info`): every node class
 * exists, every required input is given, and every model file or other list value is one the server
 * offers. Run when a worker is first reached, so a missing model is reported at start with its name,
 * not as an obscure validation error on the first task.
 */
import { isLink, type ObjectInfo } from './protocol.js';
import type { Workflow } from './workflow.js';

/** Returns one readable line per problem; empty when the workflow can run on that server. */
export function checkAgainstObjectInfo(workflow: Workflow, info: ObjectInfo): string[] {
  const problems: string[] = [];
  // Inputs we fill per request are not checked against the server's lists (the upload name is new).
  const bound = new Set(Object.values(workflow.binding.inputs).flat().map((t) => `${t.node}.${t.input}`));
  for (const [id, node] of Object.entries(workflow.prompt)) {
    const def = info[node.class_type];
    if (!def) {
      problems.push(`node ${id}: node class ${node.class_type} is not installed (a missing custom node, or an older ComfyUI)`);
      continue;
    }
    const required = def.input.required ?? {};
    const optional = def.input.optional ?? {};
    for (const name of Object.keys(required)) {
      if (!(name in node.inputs)) problems.push(`node ${id} (${node.class_type}): required input ${name} is missing`);
    }
    for (const [name, value] of Object.entries(node.inputs)) {
      if (isLink(value) || bound.has(`${id}.${name}`)) continue;
      const options = comboOptions(required[name] ?? optional[name]);
      if (options && !options.includes(value as string)) {
        const shown = options.length > 10 ? `${options.slice(0, 10).join(', ')}, … (${options.length} in all)` : options.join(', ');
        problems.push(
          `node ${id} (${node.class_type}) input ${name}: '${String(value)}' is not available on this ComfyUI` +
            (looksLikeModel(value) ? ' (model file not installed)' : '') +
            `; it offers: ${shown || 'nothing'}`,
        );
      }
    }
  }
  return problems;
}

/** The allowed values of a combo input, in either form ComfyUI uses; undefined for other inputs. */
function comboOptions(spec: unknown[] | undefined): unknown[] | undefined {
  if (!spec) return undefined;
  const [type, opts] = spec;
  if (Array.isArray(type)) return type; // v1: [[...options], {...}]
  if (type === 'COMBO' && typeof opts === 'object' && opts !== null && Array.isArray((opts as { options?: unknown }).options)) {
    return (opts as { options: unknown[] }).options; // v3: ["COMBO", {options: [...]}]
  }
  return undefined;
}

function looksLikeModel(value: unknown): boolean {
  return typeof value === 'string' && /\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$/i.test(value);
}
