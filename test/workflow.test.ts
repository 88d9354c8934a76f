import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAgainstObjectInfo } from '../src/comfyui/workflow-check.js';
import { DEFAULT_WORKFLOW, WorkflowError, bindWorkflow, loadWorkflow, type BindParams, type Workflow } from '../src/comfyui/workflow.js';
import type { ObjectInfo } from '../src/comfyui/protocol.js';
import { startStack } from './helpers/stack.js';

const params: BindParams = {
  description: 'make it night, keep the car',
  seed: 9007199254740991,
  steps: 12,
  guidance: 3.5,
  size: { width: 768, height: 1344 },
  referenceImage: 'ref-abc.png',
  filenamePrefix: 'kontext/t1_0',
};

describe('the built-in Flux Kontext workflow', () => {
  let workflow: Workflow;
  beforeAll(async () => {
    workflow = await loadWorkflow();
  });

  it('loads and names itself after the binding file', () => {
    expect(workflow.name).toBe('flux-kontext-dev');
    expect(workflow.binding.outputNode).toBe('136');
    expect(workflow.prompt['136']?.class_type).toBe('SaveImage');
  });

  it('puts every parameter into its node input', () => {
    const p = bindWorkflow(workflow, params);
    expect(p['6']?.inputs.text).toBe(params.description);
    expect(p['31']?.inputs.seed).toBe(params.seed);
    expect(p['31']?.inputs.steps).toBe(12);
    expect(p['35']?.inputs.guidance).toBe(3.5);
    expect(p['142']?.inputs.image).toBe('ref-abc.png');
    expect(p['136']?.inputs.filename_prefix).toBe('kontext/t1_0');
    expect(p['188']?.inputs).toMatchObject({ width: 768, height: 1344, batch_size: 1 });
    expect(p['31']?.inputs.latent_image).toEqual(['188', 0]);
  });

  it('keeps Kontext own size choice for size "auto" and drops the explicit-size node', () => {
    const p = bindWorkflow(workflow, { ...params, size: 'auto' });
    expect(p['31']?.inputs.latent_image).toEqual(['124', 0]);
    expect(p['188']).toBeUndefined();
    // The reference latent stays attached to the conditioning.
    expect(p['177']?.inputs.latent).toEqual(['124', 0]);
  });

  it('does not change the loaded workflow when binding', () => {
    bindWorkflow(workflow, params);
    expect(workflow.prompt['6']?.inputs.text).toBe('');
    expect(workflow.prompt['31']?.inputs.latent_image).toEqual(['188', 0]);
  });

  it('has only one output node, so ComfyUI cannot half-accept it', () => {
    const outputs = Object.values(bindWorkflow(workflow, params)).filter((n) => ['SaveImage', 'PreviewImage'].includes(n.class_type));
    expect(outputs).toHaveLength(1);
  });
});

describe('a user workflow', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kontext-wf-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function write(name: string, prompt: unknown, binding: unknown) {
    await writeFile(join(dir, `${name}.json`), JSON.stringify(prompt));
    await writeFile(join(dir, `${name}.binding.json`), JSON.stringify(binding));
    return join(dir, `${name}.json`);
  }
  const builtIn = async () => ({
    prompt: JSON.parse(await readFile(DEFAULT_WORKFLOW.replace('.binding.json', '.json'), 'utf8')) as Record<string, { inputs: Record<string, unknown> }>,
    binding: JSON.parse(await readFile(DEFAULT_WORKFLOW, 'utf8')) as Record<string, unknown> & { inputs: Record<string, unknown> },
  });

  it('is found from the prompt path through its sibling binding', async () => {
    const { prompt, binding } = await builtIn();
    const path = await write('mine', prompt, { ...binding, prompt: 'mine.json' });
    const wf = await loadWorkflow(path);
    expect(wf.name).toBe('mine');
  });

  it('still loads a binding written for an earlier version, ignoring its samplerNode', async () => {
    const { prompt, binding } = await builtIn();
    expect(binding).not.toHaveProperty('samplerNode'); // the shipped binding no longer has one
    // Once required and checked; now steps come from whichever node reports progress, so even a stale id is harmless.
    for (const samplerNode of ['31', '999']) {
      const wf = await loadWorkflow(await write(`old-${samplerNode}`, prompt, { ...binding, prompt: `old-${samplerNode}.json`, samplerNode }));
      expect(wf.binding).not.toHaveProperty('samplerNode');
      expect(bindWorkflow(wf, params)['31']?.inputs.steps).toBe(params.steps);
    }
  });

  it('is rejected with every problem named when the binding points at missing nodes and inputs', async () => {
    const { prompt, binding } = await builtIn();
    const bad = { ...binding, prompt: 'bad.json', outputNode: '999', inputs: { ...binding.inputs, steps: [{ node: '31', input: 'stepz' }] } };
    const err = await loadWorkflow(await write('bad', prompt, bad)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowError);
    const problems = (err as WorkflowError).problems;
    expect(problems).toContain('outputNode 999 is not a node of the prompt');
    expect(problems).toContain('inputs.steps: node 31 (KSampler) has no input stepz');
  });

  it('is rejected when a binding parameter is missing', async () => {
    const { prompt, binding } = await builtIn();
    const inputs = { ...binding.inputs };
    delete inputs.seed;
    const err = await loadWorkflow(await write('noseed', prompt, { ...binding, prompt: 'noseed.json', inputs })).catch((e: unknown) => e);
    expect((err as WorkflowError).problems.join('\n')).toMatch(/inputs\.seed/);
  });

  it('is rejected with advice when it is a UI-format export', async () => {
    const { binding } = await builtIn();
    const err = await loadWorkflow(await write('ui', { nodes: [], links: [] }, { ...binding, prompt: 'ui.json' })).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/Export \(API\)/);
  });

  it('is rejected when a link points at a node that does not exist', async () => {
    const { prompt, binding } = await builtIn();
    const broken = structuredClone(prompt);
    broken['8']!.inputs.vae = ['77', 0];
    const err = await loadWorkflow(await write('broken', broken, { ...binding, prompt: 'broken.json' })).catch((e: unknown) => e);
    expect((err as WorkflowError).problems).toContain('node 8 (VAEDecode) input vae links to missing node 77');
  });

  it('names a missing file', async () => {
    const err = await loadWorkflow(join(dir, 'nothing.binding.json')).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/nothing\.binding\.json: cannot read the file \(ENOENT\)/);
  });
});

describe('checking against object_info', () => {
  it('names a missing node class, a missing model file and a missing required input', async () => {
    const wf = await loadWorkflow();
    const info: ObjectInfo = {};
    for (const [id, node] of Object.entries(wf.prompt)) {
      if (id === '146') continue; // ImageStitch "not installed"
      info[node.class_type] = {
        name: node.class_type,
        output: [],
        output_node: false,
        input: { required: Object.fromEntries(Object.keys(node.inputs).map((k) => [k, ['*']])) },
      };
    }
    info.UNETLoader!.input.required!.unet_name = [['other-model.safetensors']];
    info.VAELoader!.input.required!.vae_name = ['COMBO', { options: ['ae.safetensors'] }];
    info.KSampler!.input.required!.extra_required = ['INT', {}];
    const problems = checkAgainstObjectInfo(wf, info);
    expect(problems).toEqual([
      "node 31 (KSampler): required input extra_required is missing",
      "node 37 (UNETLoader) input unet_name: 'flux1-dev-kontext_fp8_scaled.safetensors' is not available on this ComfyUI (model file not installed); it offers: other-model.safetensors",
      'node 146: node class ImageStitch is not installed (a missing custom node, or an older ComfyUI)',
    ]);
  });
});

describe('a worker that lacks a model', () => {
  it('is kept out of the pool, and /health names the missing file', async () => {
    const stack = await startStack({ sim: { models: { diffusion_models: ['some-other-model.safetensors'] } }, config: { healthDetails: true } });
    try {
      const health = (await (await fetch(`${stack.app.url}/health`)).json()) as { status: string; comfyui: { reachable: boolean; ready: boolean; last_error: string }[] };
      expect(health.status).toBe('degraded');
      // It answers its checks, but gets no work.
      expect(health.comfyui[0]!.reachable).toBe(true);
      expect(health.comfyui[0]!.ready).toBe(false);
      expect(health.comfyui[0]!.last_error).toContain(
        "node 37 (UNETLoader) input unet_name: 'flux1-dev-kontext_fp8_scaled.safetensors' is not available on this ComfyUI (model file not installed)",
      );
    } finally {
      await stack.close();
    }
  });
});
