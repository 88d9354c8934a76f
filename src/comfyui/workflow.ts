/**
 * Workflows: an API-format ComfyUI prompt plus a binding that says which node inputs receive the
 * request's parameters. Loaded and checked once at start; `bindWorkflow` then makes one prompt per
 * image. A user brings their own exported workflow by writing a binding for it (env `WORKFLOW`).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { PACKAGE_ROOT } from '../package-root.js';
import { isLink, type ApiPrompt, type Link } from './protocol.js';

/** The request parameters a binding can place into a prompt. */
export const BINDABLE = ['description', 'seed', 'steps', 'guidance', 'width', 'height', 'referenceImage', 'filenamePrefix'] as const;
export type Bindable = (typeof BINDABLE)[number];

const TargetSchema = z.object({ node: z.string().min(1), input: z.string().min(1) });
// Unknown keys are dropped, not refused: bindings written for earlier versions carry a
// `samplerNode` (steps are counted from whichever node reports progress) and must still load.
const BindingSchema = z.object({
  /** The API-format prompt, relative to the binding file. */
  prompt: z.string().min(1),
  /** The output node whose images are the result (a SaveImage). */
  outputNode: z.string().min(1),
  inputs: z.object(
    Object.fromEntries(BINDABLE.map((k) => [k, z.array(TargetSchema).min(1)])) as Record<Bindable, z.ZodArray<typeof TargetSchema>>,
  ),
  /** For `size: "auto"`: re-point this input at this link (the reference's own latent), dropping the explicit-size node. */
  autoSize: z.object({ node: z.string(), input: z.string(), link: z.tuple([z.string(), z.number().int().min(0)]) }).optional(),
});
export type Binding = z.infer<typeof BindingSchema>;
export type BindingTarget = z.infer<typeof TargetSchema>;

/** A checked workflow, ready to bind. */
export interface Workflow {
  /** A short name for logs and the database: the binding file's base name. */
  name: string;
  prompt: ApiPrompt;
  binding: Binding;
}

/** The values for one image. `size` either fixes the output size or keeps the workflow's own choice. */
export interface BindParams {
  description: string;
  seed: number;
  steps: number;
  guidance: number;
  size: { width: number; height: number } | 'auto';
  referenceImage: string;
  filenamePrefix: string;
}

/** A workflow or binding that cannot be used; `problems` has one line each. */
export class WorkflowError extends Error {
  override readonly name = 'WorkflowError';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`workflow ${source}: ${problems.join('; ')}`);
  }
}

/** The built-in Flux Kontext dev workflow's binding file. */
export const DEFAULT_WORKFLOW = join(PACKAGE_ROOT, 'workflows', 'flux-kontext-dev.binding.json');

/**
 * Loads and checks a workflow. `path` is a binding file, or an API prompt with a
 * `<name>.binding.json` beside it. @default DEFAULT_WORKFLOW
 */
export async function loadWorkflow(path: string = DEFAULT_WORKFLOW): Promise<Workflow> {
  const bindingPath = path.endsWith('.binding.json') ? path : path.replace(/\.json$/, '') + '.binding.json';
  const bindingRaw = await readJson(bindingPath);
  const parsed = BindingSchema.safeParse(bindingRaw);
  if (!parsed.success) {
    throw new WorkflowError(bindingPath, parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`));
  }
  const promptPath = resolve(dirname(bindingPath), parsed.data.prompt);
  const prompt = await readJson(promptPath);
  const name = bindingPath.replace(/^.*[\\/]/, '').replace(/\.binding\.json$/, '');
  return checkWorkflow(name, prompt, parsed.data, promptPath);
}

/** Checks a prompt and binding against each other; throws WorkflowError listing every problem. */
export function checkWorkflow(name: string, raw: unknown, binding: Binding, source = name): Workflow {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new WorkflowError(source, ['the prompt is not a JSON object']);
  if ('nodes' in raw && 'links' in raw) {
    throw new WorkflowError(source, ['this is a UI-format workflow; in ComfyUI use "Export (API)" and point the binding at that file']);
  }
  const problems: string[] = [];
  const prompt = raw as ApiPrompt;
  for (const [id, node] of Object.entries(prompt)) {
    if (typeof node !== 'object' || node === null || typeof node.class_type !== 'string') {
      problems.push(`node ${id} has no class_type`);
      continue;
    }
    if (typeof node.inputs !== 'object' || node.inputs === null) {
      problems.push(`node ${id} (${node.class_type}) has no inputs object`);
      continue;
    }
    for (const [input, value] of Object.entries(node.inputs)) {
      if (isLink(value) && !(value[0] in prompt)) problems.push(`node ${id} (${node.class_type}) input ${input} links to missing node ${value[0]}`);
    }
  }
  const nodeOf = (id: string) => (Object.hasOwn(prompt, id) ? prompt[id] : undefined);
  if (!nodeOf(binding.outputNode)) problems.push(`outputNode ${binding.outputNode} is not a node of the prompt`);
  for (const param of BINDABLE) {
    for (const t of binding.inputs[param]) {
      const node = nodeOf(t.node);
      if (!node) problems.push(`inputs.${param}: node ${t.node} is not in the prompt`);
      else if (!node.inputs || !(t.input in node.inputs)) problems.push(`inputs.${param}: node ${t.node} (${node.class_type}) has no input ${t.input}`);
      else if (isLink(node.inputs[t.input])) problems.push(`inputs.${param}: node ${t.node} input ${t.input} is a link, not a value`);
    }
  }
  if (binding.autoSize) {
    const { node, input, link } = binding.autoSize;
    const target = nodeOf(node);
    if (!target || !target.inputs || !(input in target.inputs)) problems.push(`autoSize: node ${node} has no input ${input}`);
    if (!nodeOf(link[0])) problems.push(`autoSize: link source ${link[0]} is not in the prompt`);
  }
  if (problems.length) throw new WorkflowError(source, problems);
  return { name, prompt, binding };
}

/** Makes the prompt for one image: a copy of the workflow with the parameters in place. */
export function bindWorkflow(workflow: Workflow, params: BindParams): ApiPrompt {
  const prompt = structuredClone(workflow.prompt);
  const { inputs, autoSize } = workflow.binding;
  const set = (param: Bindable, value: string | number) => {
    for (const t of inputs[param]) prompt[t.node]!.inputs[t.input] = value;
  };
  set('description', params.description);
  set('seed', params.seed);
  set('steps', params.steps);
  set('guidance', params.guidance);
  set('referenceImage', params.referenceImage);
  set('filenamePrefix', params.filenamePrefix);
  if (params.size === 'auto') {
    if (autoSize) prompt[autoSize.node]!.inputs[autoSize.input] = [...autoSize.link] as Link;
  } else {
    set('width', params.size.width);
    set('height', params.size.height);
  }
  return pruneUnreachable(prompt, workflow.binding.outputNode);
}

/**
 * Drops nodes the output does not depend on: the explicit-size latent under `size: "auto"`, and any
 * other output node (a PreviewImage) that would make ComfyUI's partial-validation trap possible.
 */
function pruneUnreachable(prompt: ApiPrompt, outputNode: string): ApiPrompt {
  const keep = new Set<string>();
  const stack = [outputNode];
  while (stack.length) {
    const id = stack.pop()!;
    if (keep.has(id) || !prompt[id]) continue;
    keep.add(id);
    for (const value of Object.values(prompt[id].inputs)) if (isLink(value)) stack.push(value[0]);
  }
  return Object.fromEntries(Object.entries(prompt).filter(([id]) => keep.has(id)));
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new WorkflowError(path, [`cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`]);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new WorkflowError(path, [`not valid JSON: ${(err as Error).message}`]);
  }
}
