/**
 * Runs one prompt like ComfyUI's PromptExecutor (execution.py): execution_start, the cache check
 * and execution_cached, nodes in ExecutionList order with progress_state / executing / executed,
 * sampler progress and previews through the progress hook, interrupts checked before each node
 * and at every sampler step, and the error / interrupt reports (docs/comfyui-protocol.md §3).
 */
import { setImmediate as nextTick } from 'node:timers/promises';
import type { ObjectCache, OutputCache } from './cache.js';
import { ExecutionList, isExecLink } from './execution-list.js';
import { getInputInfo, NODE_CLASSES, type ClassContext, type NodeClass, type NodeResult, type NodeRuntime } from './node-classes.js';
import type { QueueItem } from './prompt-queue.js';
import { PyException, PyFloat, type PyDict, type PyValue, inputsOf, isDict, pyStr } from './py.js';
import { isSimValue, simStr } from './values.js';

/** Where the executor's messages go (ComfyUI's PromptServer.send_sync). */
export interface MessageSink {
  /** Queues a JSON message; `sid` null broadcasts, a string targets that client id. */
  sendSync(type: string, data: unknown, sid: PyValue): void;
  /** Queues a binary preview for `sid` (type 1, or type 4 with `metadata`). */
  sendPreview(jpeg: Buffer, sid: PyValue, metadata: PyDict | null): void;
  /** True when a message for `sid` would reach a socket. */
  hasRecipient(sid: PyValue): boolean;
  /** True when the socket registered under `sid` negotiated supports_preview_metadata. */
  supportsMetadata(sid: PyValue): boolean;
}

/** Timing and behaviour knobs (see SimulatorOptions for defaults). */
export interface ExecutorOptions {
  stepMs: number;
  loadMs: number;
  failOnText: string | undefined;
  previewMethod: 'none' | 'auto';
  previewSize: number;
  resultImages: 'derived' | 'photo';
}

/** What the history entry of a finished prompt is made of. */
export interface ExecutionOutcome {
  success: boolean;
  messages: Array<[string, PyDict]>;
  outputs: PyDict;
  meta: PyDict;
}

class Interrupted extends Error {}

const SAMPLER_CLASSES = new Set(['KSampler']);

/** The frames ComfyUI's traceback shows for a node failing inside its function. */
function traceback(cls: NodeClass): string[] {
  const fn = cls.functionName.split('.').pop() ?? 'execute';
  const file = cls.pythonModule === 'nodes' ? 'nodes.py' : `${cls.pythonModule.replace(/\./g, '/')}.py`;
  return [
    '  File "${COMFYUI_DIR}/execution.py", line 496, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n',
    '  File "${COMFYUI_DIR}/execution.py", line 315, in get_output_data\n    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, obj.FUNCTION, allow_interrupt=True, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n',
    '  File "${COMFYUI_DIR}/execution.py", line 289, in _async_map_node_over_list\n    await process_inputs(input_dict, i)\n',
    '  File "${COMFYUI_DIR}/execution.py", line 277, in process_inputs\n    result = f(**inputs)\n             ^^^^^^^^^^^\n',
    `  File "\${COMFYUI_DIR}/${file}", line 1, in ${fn}\n`,
  ];
}

/** execution.format_value: primitives as they are, anything else str()'d. */
function formatValue(v: unknown): PyValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean' || typeof v === 'string' || v instanceof PyFloat) return v;
  if (isSimValue(v)) return simStr(v);
  return pyStr(v);
}

/** progress_state bookkeeping (comfy_execution/progress.py) for one prompt. */
class ProgressState {
  private readonly nodes = new Map<string, { state: string; value: number | PyFloat; max: number | PyFloat }>();

  constructor(
    private readonly promptId: string,
    private readonly emit: (nodes: PyDict) => void,
  ) {}

  private entry(id: string): { state: string; value: number | PyFloat; max: number | PyFloat } {
    let e = this.nodes.get(id);
    if (!e) {
      e = { state: 'pending', value: 0, max: 1 };
      this.nodes.set(id, e);
    }
    return e;
  }

  start(id: string): void {
    const e = this.entry(id);
    e.state = 'running';
    e.value = new PyFloat(0);
    e.max = new PyFloat(1);
    this.send();
  }

  update(id: string, value: number, max: number): void {
    const e = this.entry(id);
    e.state = 'running';
    e.value = value;
    e.max = max;
    this.send();
  }

  finish(id: string): void {
    const e = this.entry(id);
    e.state = 'finished';
    e.value = e.max;
    this.send();
  }

  private send(): void {
    const nodes: PyDict = new Map();
    for (const [id, e] of this.nodes) {
      if (e.state === 'pending') continue;
      nodes.set(
        id,
        new Map<string, PyValue>([
          ['value', e.value],
          ['max', e.max],
          ['state', e.state],
          ['node_id', id],
          ['prompt_id', this.promptId],
          ['display_node_id', id],
          ['parent_node_id', null],
          ['real_node_id', id],
        ]),
      );
    }
    this.emit(nodes);
  }
}

/** Executes prompts one at a time; holds the interrupt flag and the running client_id. */
export class PromptExecutor {
  /** The interrupt flag (nodes.interrupt_processing). */
  interrupted = false;
  /** server.client_id: the running (or last) prompt's client_id; null when it had none. */
  clientId: PyValue = null;
  /** server.last_node_id: the last node announced with `executing` in the running prompt. */
  lastNodeId: string | null = null;

  constructor(
    private readonly sink: MessageSink,
    private readonly ctx: ClassContext,
    private readonly options: ExecutorOptions,
    private readonly outputCache: OutputCache,
    private readonly objectCache: ObjectCache,
    private readonly sleep: (ms: number) => Promise<number>,
  ) {}

  interrupt(): void {
    this.interrupted = true;
  }

  /** Runs a queue item to completion (success, error or interrupt). */
  async execute(item: QueueItem): Promise<ExecutionOutcome> {
    this.interrupted = false;
    const { prompt, promptId, extraData } = item;
    this.clientId = extraData.has('client_id') ? (extraData.get('client_id') ?? null) : null;
    const sid = this.clientId;
    const hasClient = sid !== null;
    const messages: Array<[string, PyDict]> = [];
    const addMessage = (event: string, data: PyDict, broadcast: boolean): void => {
      data.set('timestamp', Date.now());
      messages.push([event, data]);
      if (hasClient || broadcast) this.sink.sendSync(event, data, sid);
    };
    const pid = (): PyDict => new Map<string, PyValue>([['prompt_id', promptId]]);

    addMessage('execution_start', pid(), false);
    const progress = new ProgressState(promptId, (nodes) =>
      this.sink.sendSync('progress_state', new Map<string, PyValue>([['prompt_id', promptId], ['nodes', nodes]]), sid),
    );
    await this.outputCache.setPrompt(prompt, this.ctx);
    this.objectCache.setPrompt(prompt);
    const cachedNodes = [...prompt.keys()].filter((id) => this.outputCache.get(id) !== undefined);
    addMessage('execution_cached', new Map<string, PyValue>([['nodes', cachedNodes], ['prompt_id', promptId]]), false);

    const ui = new Map<string, { meta: PyDict; output: PyDict }>();
    const results = new Map<string, unknown[]>();
    const executed: string[] = [];
    const currentOutputs = [...prompt.keys()];
    const nodeOf = (id: string): PyDict => prompt.get(id) as PyDict;
    const classOf = (id: string): NodeClass => NODE_CLASSES.get(nodeOf(id).get('class_type') as string) as NodeClass;
    const list = new ExecutionList({
      inputs: (id) => inputsOf(nodeOf(id)),
      has: (id) => isDict(prompt.get(id)),
      isOutput: (id) => classOf(id).outputNode,
      isCached: (id) => this.outputCache.get(id) !== undefined,
    });

    let success = true;
    const fail = (data: PyDict, interrupted: boolean): void => {
      success = false;
      addMessage(interrupted ? 'execution_interrupted' : 'execution_error', data, interrupted);
    };
    const errorBase = (nodeId: string): PyDict =>
      new Map<string, PyValue>([
        ['prompt_id', promptId],
        ['node_id', nodeId],
        ['node_type', (nodeOf(nodeId)?.get('class_type') as PyValue) ?? null],
        ['executed', [...executed]],
      ]);

    try {
      for (const o of item.outputs) list.addNode(o);
    } catch (ex) {
      const data = errorBase(item.outputs[0] ?? '');
      data.set('exception_message', `${ex instanceof Error ? ex.message : String(ex)}\n`);
      data.set('exception_type', 'comfy_execution.graph.NodeNotFoundError');
      data.set('traceback', []);
      data.set('current_inputs', []);
      data.set('current_outputs', currentOutputs);
      fail(data, false);
    }

    while (success && !list.isEmpty()) {
      const id = list.stage();
      if (id === null) {
        const data = errorBase(list.cycleNode());
        data.set('exception_message', 'Dependency cycle detected');
        data.set('exception_type', 'graph.DependencyCycleError');
        data.set('traceback', []);
        data.set('current_inputs', []);
        data.set('current_outputs', currentOutputs);
        fail(data, false);
        break;
      }
      const node = nodeOf(id);
      const cls = classOf(id);
      const cached = this.outputCache.get(id);
      if (cached) {
        if (hasClient) {
          this.sink.sendSync('executed', executedData(id, cached.ui?.output ?? null, promptId), sid);
        }
        if (cached.ui) ui.set(id, cached.ui);
        progress.finish(id);
        results.set(id, cached.outputs);
        list.complete();
        continue;
      }

      let inputData: Map<string, unknown> | null = null;
      let result: NodeResult;
      try {
        progress.start(id);
        inputData = this.gatherInputs(node, cls, prompt, extraData, results);
        if (hasClient) {
          this.lastNodeId = id;
          this.sink.sendSync('executing', new Map<string, PyValue>([['node', id], ['display_node', id], ['prompt_id', promptId]]), sid);
        }
        const instance = this.objectCache.get(id, cls.name, () => cls.createInstance?.() ?? {});
        if (this.interrupted) throw new Interrupted();
        const types = cls.inputTypes(this.ctx);
        for (const name of inputData.keys()) {
          if (!getInputInfo(types, name)) throw new PyException('TypeError', `${cls.functionName}() got an unexpected keyword argument '${name}'`);
        }
        if (!SAMPLER_CLASSES.has(cls.name) && this.options.loadMs > 0) await this.sleep(this.options.loadMs);
        result = await cls.execute(inputData, this.runtime(id, prompt, extraData, instance, progress, promptId));
      } catch (ex) {
        if (ex instanceof Interrupted) {
          const data = new Map<string, PyValue>([
            ['prompt_id', promptId],
            ['node_id', id],
            ['node_type', cls.name],
            ['executed', [...executed]],
          ]);
          fail(data, true);
          break;
        }
        const e = ex instanceof PyException ? ex : new PyException('Exception', ex instanceof Error ? ex.message : String(ex));
        const data = errorBase(id);
        data.set('exception_message', `${e.message}\n`);
        data.set('exception_type', e.pyType);
        data.set('traceback', traceback(cls));
        const formatted: PyDict = new Map();
        if (inputData) for (const [k, v] of inputData) formatted.set(k, [formatValue(v)]);
        data.set('current_inputs', formatted);
        data.set('current_outputs', currentOutputs);
        fail(data, false);
        break;
      }
      let entry: { meta: PyDict; output: PyDict } | null = null;
      if (result.ui && result.ui.size > 0) {
        entry = {
          meta: new Map<string, PyValue>([['node_id', id], ['display_node', id], ['parent_node', null], ['real_node_id', id]]),
          output: result.ui,
        };
        ui.set(id, entry);
        if (hasClient) this.sink.sendSync('executed', executedData(id, result.ui, promptId), sid);
      }
      this.outputCache.set(id, { outputs: result.outputs, ui: entry });
      results.set(id, result.outputs);
      progress.finish(id);
      executed.push(id);
      list.complete();
      await nextTick(); // let HTTP requests (an interrupt) in between nodes
    }
    if (success) addMessage('execution_success', pid(), false);

    const outputs: PyDict = new Map();
    const meta: PyDict = new Map();
    for (const [id, u] of ui) {
      outputs.set(id, u.output);
      meta.set(id, u.meta);
    }
    this.lastNodeId = null;
    return { success, messages, outputs, meta };
  }

  /** get_input_data: links resolved to upstream outputs, known literals, hidden inputs. */
  private gatherInputs(node: PyDict, cls: NodeClass, prompt: PyDict, extraData: PyDict, results: Map<string, unknown[]>): Map<string, unknown> {
    const types = cls.inputTypes(this.ctx);
    const out = new Map<string, unknown>();
    for (const [name, value] of inputsOf(node)) {
      if (isExecLink(value)) {
        const upstream = results.get(value[0]) ?? this.outputCache.get(value[0])?.outputs;
        const slot = Number(value[1] instanceof PyFloat ? value[1].value : value[1] === true ? 1 : value[1] === false ? 0 : value[1]);
        const index = slot < 0 && upstream ? upstream.length + slot : slot;
        out.set(name, upstream && Number.isInteger(index) && index >= 0 && index < upstream.length ? upstream[index] : null);
      } else if (getInputInfo(types, name)) {
        out.set(name, value);
      }
    }
    for (const [name, kind] of types.hidden ?? []) {
      if (kind === 'PROMPT') out.set(name, prompt);
      if (kind === 'EXTRA_PNGINFO') out.set(name, extraData.get('extra_pnginfo') ?? null);
    }
    return out;
  }

  private runtime(
    id: string,
    prompt: PyDict,
    extraData: PyDict,
    instance: Record<string, unknown>,
    progress: ProgressState,
    promptId: string,
  ): NodeRuntime {
    const sid = this.clientId;
    return {
      nodeId: id,
      folders: this.ctx.folders,
      prompt,
      extraPngInfo: extraData.get('extra_pnginfo') ?? null,
      instance,
      stepMs: this.options.stepMs,
      loadMs: this.options.loadMs,
      failOnText: this.options.failOnText,
      previewSize: this.options.previewSize,
      resultImages: this.options.resultImages,
      sleep: this.sleep,
      wantsPreview: () => this.options.previewMethod !== 'none' && this.sink.hasRecipient(sid),
      progress: (value, max, preview) => {
        if (this.interrupted) throw new Interrupted();
        progress.update(id, value, max);
        const metadata = preview !== null && this.sink.supportsMetadata(sid);
        if (preview !== null && metadata) {
          this.sink.sendPreview(
            preview,
            sid,
            new Map<string, PyValue>([
              ['node_id', id],
              ['prompt_id', promptId],
              ['display_node_id', id],
              ['parent_node_id', null],
              ['real_node_id', id],
            ]),
          );
        }
        this.sink.sendSync('progress', new Map<string, PyValue>([['value', value], ['max', max], ['prompt_id', promptId], ['node', id]]), sid);
        if (preview !== null && !metadata) this.sink.sendPreview(preview, sid, null);
      },
    };
  }
}

function executedData(id: string, output: PyDict | null, promptId: string): PyDict {
  return new Map<string, PyValue>([
    ['node', id],
    ['display_node', id],
    ['output', output],
    ['prompt_id', promptId],
  ]);
}
