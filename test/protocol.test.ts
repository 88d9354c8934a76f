/**
 * Unit tests of the wire formats: parsing of WebSocket messages and HTTP replies as ComfyUI 0.3.64
 * sends them (shapes copied from the captured transcripts), binary preview frames, and the
 * readable messages of validation errors.
 */
import { describe, expect, it } from 'vitest';
import { ComfyExecutionError, ComfyValidationError } from '../src/comfyui/errors.js';
import {
  BinaryEvent,
  decodeBinaryFrame,
  encodePreviewFrame,
  encodePreviewFrameWithMetadata,
  HistoryEntrySchema,
  isLink,
  ObjectInfoSchema,
  parseWsMessage,
  PromptAcceptedSchema,
  PromptRejectedSchema,
  QueueSchema,
  type PreviewMetadata,
  WsMessageSchema,
} from '../src/comfyui/protocol.js';

const PID = '13db95ca-0435-4ce2-959b-4528f886242b';

describe('parseWsMessage', () => {
  it('parses the connect status with sid and the broadcast status without', () => {
    const first = parseWsMessage(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'c1' } }));
    expect(first).toEqual({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'c1' } });
    const later = parseWsMessage('{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}}');
    expect(later.type === 'status' && later.data.sid).toBe(undefined);
  });

  it('parses executing with a node, the end marker and the reconnect replay without prompt_id', () => {
    const node = parseWsMessage(JSON.stringify({ type: 'executing', data: { node: '31', display_node: '31', prompt_id: PID } }));
    expect(node).toMatchObject({ type: 'executing', data: { node: '31', prompt_id: PID } });
    const end = parseWsMessage(JSON.stringify({ type: 'executing', data: { node: null, prompt_id: PID } }));
    expect(end).toMatchObject({ type: 'executing', data: { node: null, prompt_id: PID } });
    const replay = parseWsMessage('{"type":"executing","data":{"node":"31"}}');
    expect(replay.type === 'executing' && replay.data.prompt_id).toBe(undefined);
  });

  it('tolerates progress_state mixing floats and ints', () => {
    const msg = parseWsMessage(
      JSON.stringify({
        type: 'progress_state',
        data: {
          prompt_id: PID,
          nodes: {
            '39': { value: 1.0, max: 1.0, state: 'finished', node_id: '39', prompt_id: PID, display_node_id: '39', parent_node_id: null, real_node_id: '39' },
            '31': { value: 5, max: 20, state: 'running', node_id: '31', prompt_id: PID, display_node_id: '31', parent_node_id: null, real_node_id: '31' },
          },
        },
      }),
    );
    expect(msg.type === 'progress_state' && msg.data.nodes['31']).toMatchObject({ value: 5, max: 20, state: 'running' });
  });

  it('checks the per-step messages (progress, progress_state) by hand exactly as their schemas do', () => {
    const samples: unknown[] = [
      { value: 3, max: 12, prompt_id: PID, node: '31' },
      { value: 3.5, max: 12, prompt_id: null, node: null },
      { value: 3, max: 12 },
      { value: '3', max: 12, prompt_id: PID },
      { value: 3, max: null, prompt_id: PID },
      { value: 3, max: 12, prompt_id: 7 },
      { value: 3, max: 12, node: 31 },
      { prompt_id: PID, nodes: { '31': { value: 5, max: 20, state: 'running' } } },
      { prompt_id: PID, nodes: {} },
      { prompt_id: PID, nodes: [] },
      { prompt_id: PID, nodes: null },
      { prompt_id: null, nodes: {} },
      { nodes: {} },
      null,
      'x',
    ];
    for (const type of ['progress', 'progress_state']) {
      for (const data of samples) {
        const raw = { type, data };
        const schema = WsMessageSchema.safeParse(raw);
        if (schema.success) expect(parseWsMessage(JSON.stringify(raw)), JSON.stringify(raw)).toEqual(schema.data);
        else expect(() => parseWsMessage(JSON.stringify(raw)), JSON.stringify(raw)).toThrow();
      }
    }
  });

  it('parses progress, executed (with and without UI output) and the execution_* messages', () => {
    expect(parseWsMessage(JSON.stringify({ type: 'progress', data: { value: 3, max: 12, prompt_id: PID, node: '31' } }))).toMatchObject({
      type: 'progress',
      data: { value: 3, max: 12 },
    });
    const executed = parseWsMessage(
      JSON.stringify({
        type: 'executed',
        data: { node: '136', display_node: '136', output: { images: [{ filename: 'ComfyUI_00001_.png', subfolder: '', type: 'output' }] }, prompt_id: PID },
      }),
    );
    expect(executed.type === 'executed' && executed.data.output?.images?.[0]?.filename).toBe('ComfyUI_00001_.png');
    const noUi = parseWsMessage(JSON.stringify({ type: 'executed', data: { node: '9', output: null, prompt_id: PID } }));
    expect(noUi.type === 'executed' && noUi.data.output).toBe(null);

    const error = parseWsMessage(
      JSON.stringify({
        type: 'execution_error',
        data: {
          prompt_id: PID,
          node_id: '31',
          node_type: 'KSampler',
          executed: ['177', '6'],
          exception_message: 'simulated sampler failure at step 6/12\n',
          exception_type: 'RuntimeError',
          traceback: ['  File "execution.py", line 496\n'],
          current_inputs: { seed: [1] },
          current_outputs: ['8'],
          timestamp: 1795876448571,
        },
      }),
    );
    expect(error).toMatchObject({ type: 'execution_error', data: { node_id: '31', exception_type: 'RuntimeError' } });
    const interrupted = parseWsMessage(
      JSON.stringify({ type: 'execution_interrupted', data: { prompt_id: PID, node_id: '31', node_type: 'KSampler', executed: [], timestamp: 1 } }),
    );
    expect(interrupted.type).toBe('execution_interrupted');
    expect(parseWsMessage(JSON.stringify({ type: 'execution_cached', data: { nodes: ['6', '8'], prompt_id: PID, timestamp: 1 } }))).toMatchObject({
      data: { nodes: ['6', '8'] },
    });
  });

  it('returns unknown types as unknown instead of failing', () => {
    expect(parseWsMessage('{"type":"logs","data":{"entries":[]}}')).toEqual({ type: 'unknown', original: 'logs' });
    expect(parseWsMessage('{"type":"display_component","data":{}}')).toEqual({ type: 'unknown', original: 'display_component' });
  });

  it('throws on frames that are not {type, data} JSON or a known type with a bad shape', () => {
    expect(() => parseWsMessage('not json')).toThrow();
    expect(() => parseWsMessage('[1,2]')).toThrow();
    expect(() => parseWsMessage('null')).toThrow();
    expect(() => parseWsMessage('{"type":"progress","data":{"value":"x"}}')).toThrow();
  });
});

describe('binary frames', () => {
  const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]);

  it('round-trips a type-1 preview (JPEG and PNG)', () => {
    expect(decodeBinaryFrame(encodePreviewFrame(jpeg, 'image/jpeg'))).toEqual({ event: 1, mime: 'image/jpeg', image: jpeg });
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
    expect(decodeBinaryFrame(encodePreviewFrame(png, 'image/png'))).toEqual({ event: 1, mime: 'image/png', image: png });
  });

  it('round-trips a type-4 preview with its metadata', () => {
    const metadata: PreviewMetadata = {
      node_id: '31',
      prompt_id: PID,
      display_node_id: '31',
      parent_node_id: null,
      real_node_id: '31',
      image_type: 'image/jpeg',
    };
    const frame = decodeBinaryFrame(encodePreviewFrameWithMetadata(jpeg, metadata));
    expect(frame).toEqual({ event: 4, metadata, mime: 'image/jpeg', image: jpeg });
  });

  it('decodes the layout byte by byte (big-endian event and format)', () => {
    const raw = Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0, 0, 2]), jpeg]);
    expect(decodeBinaryFrame(raw)).toMatchObject({ event: 1, mime: 'image/png' });
  });

  it('decodes a type-3 text frame', () => {
    const node = Buffer.from('42', 'utf8');
    const head = Buffer.alloc(8);
    head.writeUInt32BE(BinaryEvent.Text, 0);
    head.writeUInt32BE(node.length, 4);
    expect(decodeBinaryFrame(Buffer.concat([head, node, Buffer.from('héllo', 'utf8')]))).toEqual({ event: 3, nodeId: '42', text: 'héllo' });
  });

  it('reports unknown events without failing', () => {
    const head = Buffer.alloc(6);
    head.writeUInt32BE(99, 0);
    expect(decodeBinaryFrame(head)).toEqual({ event: 99, unknown: true });
  });

  it('throws on truncated or inconsistent frames', () => {
    expect(() => decodeBinaryFrame(Buffer.from([0, 0]))).toThrow(/too short/);
    expect(() => decodeBinaryFrame(Buffer.from([0, 0, 0, 1]))).toThrow(/format/);
    expect(() => decodeBinaryFrame(Buffer.from([0, 0, 0, 1, 0, 0, 0, 7]))).toThrow(/unknown image format/);
    expect(() => decodeBinaryFrame(Buffer.from([0, 0, 0, 4, 0, 0, 1, 0, 123]))).toThrow(/overruns/);
    const badJson = Buffer.concat([Buffer.from([0, 0, 0, 4, 0, 0, 0, 3]), Buffer.from('{x}')]);
    expect(() => decodeBinaryFrame(badJson)).toThrow();
    const noPrompt = Buffer.from(JSON.stringify({ node_id: '31' }));
    const head = Buffer.alloc(8);
    head.writeUInt32BE(4, 0);
    head.writeUInt32BE(noPrompt.length, 4);
    expect(() => decodeBinaryFrame(Buffer.concat([head, noPrompt]))).toThrow(/prompt_id/);
  });
});

describe('HTTP reply schemas', () => {
  it('parses a POST /prompt 200 with an int or a float number', () => {
    expect(PromptAcceptedSchema.parse({ prompt_id: PID, number: 12, node_errors: {} })).toEqual({ prompt_id: PID, number: 12, node_errors: {} });
    expect(PromptAcceptedSchema.parse({ prompt_id: PID, number: 3.0 }).node_errors).toEqual({});
  });

  it('parses a 400 with node_errors and one without (no_prompt)', () => {
    const rejected = PromptRejectedSchema.parse(VALUE_NOT_IN_LIST);
    expect(rejected.node_errors['37']?.class_type).toBe('UNETLoader');
    const noPrompt = PromptRejectedSchema.parse({
      error: { type: 'no_prompt', message: 'No prompt provided', details: 'No prompt provided', extra_info: {} },
      node_errors: {},
    });
    expect(noPrompt.error.type).toBe('no_prompt');
  });

  it('parses history entries of success, error and interrupt', () => {
    const success = HistoryEntrySchema.parse({
      prompt: [0, PID, { '31': { class_type: 'KSampler', inputs: {} } }, { client_id: 'c' }, ['136']],
      outputs: { '136': { images: [{ filename: 'ComfyUI_00001_.png', subfolder: '', type: 'output' }] } },
      status: {
        status_str: 'success',
        completed: true,
        messages: [
          ['execution_start', { prompt_id: PID, timestamp: 1 }],
          ['execution_cached', { nodes: [], prompt_id: PID, timestamp: 2 }],
          ['execution_success', { prompt_id: PID, timestamp: 3 }],
        ],
      },
      meta: { '136': { node_id: '136', display_node: '136', parent_node: null, real_node_id: '136' } },
    });
    expect(success.outputs['136']?.images?.[0]?.filename).toBe('ComfyUI_00001_.png');
    const interrupted = HistoryEntrySchema.parse({
      prompt: [5, PID, {}, {}, ['136']],
      outputs: {},
      status: {
        status_str: 'error',
        completed: false,
        messages: [['execution_interrupted', { prompt_id: PID, node_id: '31', node_type: 'KSampler', executed: [], timestamp: 4 }]],
      },
      meta: {},
    });
    expect(interrupted.status?.messages.at(-1)?.[0]).toBe('execution_interrupted');
  });

  it('parses a queue with float numbers and extra item fields', () => {
    const queue = QueueSchema.parse({
      queue_running: [[7, 'a', { '6': {} }, { client_id: 'c1' }, ['136']]],
      queue_pending: [
        [9.0, 'c', {}, {}, ['136']],
        [8, 'b', {}, {}, ['136'], { extra: true }],
      ],
    });
    expect(queue.queue_pending.map((item) => item[1])).toEqual(['c', 'b']);
  });

  it('accepts both combo forms in object_info', () => {
    const info = ObjectInfoSchema.parse({
      UNETLoader: {
        input: { required: { unet_name: [['flux1-dev-kontext_fp8_scaled.safetensors']], weight_dtype: [['default', 'fp8_e4m3fn']] } },
        output: ['MODEL'],
        name: 'UNETLoader',
        display_name: 'Load Diffusion Model',
        output_node: false,
      },
      FluxGuidance: {
        input: { required: { conditioning: ['CONDITIONING'], guidance: ['FLOAT', { default: 3.5 }] } },
        output: ['CONDITIONING'],
        name: 'FluxGuidance',
        display_name: null,
        output_node: false,
      },
    });
    expect(Object.keys(info)).toEqual(['UNETLoader', 'FluxGuidance']);
  });
});

describe('isLink', () => {
  it('tells links from literals', () => {
    expect(isLink(['31', 0])).toBe(true);
    expect(isLink([31, 0])).toBe(false);
    expect(isLink(['31', 0, 1])).toBe(false);
    expect(isLink('31')).toBe(false);
    expect(isLink({ __value__: [1, 2] })).toBe(false);
  });
});

describe('error messages', () => {
  it('names node id, class and input of each validation problem', () => {
    const { error, node_errors } = PromptRejectedSchema.parse(VALUE_NOT_IN_LIST);
    const err = new ComfyValidationError('http://127.0.0.1:8188', PID, error.type, node_errors, error);
    expect(err.code).toBe('VALIDATION');
    expect(err.worker).toBe('http://127.0.0.1:8188');
    expect(err.problems).toEqual([
      {
        nodeId: '37',
        classType: 'UNETLoader',
        inputName: 'unet_name',
        type: 'value_not_in_list',
        message: 'Value not in list',
        details: "unet_name: 'x.safetensors' not in ['flux1-dev-kontext_fp8_scaled.safetensors']",
      },
    ]);
    expect(err.message).toContain(
      "node 37 (UNETLoader) input unet_name: Value not in list: unet_name: 'x.safetensors' not in ['flux1-dev-kontext_fp8_scaled.safetensors']",
    );
    expect(err.message).toContain('http://127.0.0.1:8188');
  });

  it('falls back to the top-level error when there are no node errors', () => {
    const err = new ComfyValidationError('http://h:1', PID, 'invalid_prompt', {}, {
      message: 'Cannot execute because a node is missing the class_type property.',
      details: "Node ID '#1'",
    });
    expect(err.problems).toHaveLength(1);
    expect(err.message).toContain("missing the class_type property.: Node ID '#1'");
  });

  it('describes an execution error with node, type and exception', () => {
    const err = new ComfyExecutionError('http://h:1', PID, '31', 'KSampler', 'RuntimeError', 'boom at step 6/12\n');
    expect(err.message).toBe(`ComfyUI at http://h:1: prompt ${PID} failed in node 31 (KSampler): RuntimeError: boom at step 6/12`);
  });
});

const VALUE_NOT_IN_LIST = {
  error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '', extra_info: {} },
  node_errors: {
    '37': {
      errors: [
        {
          type: 'value_not_in_list',
          message: 'Value not in list',
          details: "unet_name: 'x.safetensors' not in ['flux1-dev-kontext_fp8_scaled.safetensors']",
          extra_info: { input_name: 'unet_name', input_config: [['flux1-dev-kontext_fp8_scaled.safetensors'], {}], received_value: 'x.safetensors' },
        },
      ],
      dependent_outputs: ['136'],
      class_type: 'UNETLoader',
    },
  },
};
