/**
 * ComfyUI wire protocol: the JSON shapes of its HTTP replies and WebSocket messages, and the
 * layout of its binary preview frames, as ComfyUI 0.3.64 sends them (docs/comfyui-protocol.md).
 *
 * Shared by the client (which parses untrusted replies with the zod schemas here) and the
 * simulator in simulator/ (which builds the same shapes; it imports nothing else from src/).
 * Nothing in this file does I/O.
 */
import { z } from 'zod';

/** A link to another node's output: `["<node id>", <output slot>]`. */
export type Link = [string, number];

/** One node of an API-format prompt. */
export interface PromptNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: { title?: string };
}

/** An API-format prompt: node id (a string) to node. */
export type ApiPrompt = Record<string, PromptNode>;

/** True when an input value is a link rather than a literal (ComfyUI treats any list as a link). */
export function isLink(value: unknown): value is Link {
  return Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'number';
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/** One error object of a node in `node_errors` (docs/comfyui-protocol.md §6.2). */
export const NodeErrorItemSchema = z.object({
  type: z.string(),
  message: z.string(),
  details: z.string().optional().default(''),
  extra_info: z.record(z.string(), z.unknown()).optional().default({}),
});

export const NodeErrorsSchema = z.record(
  z.string(),
  z.object({
    errors: z.array(NodeErrorItemSchema),
    dependent_outputs: z.array(z.string()).optional().default([]),
    class_type: z.string().optional().default(''),
  }),
);
/** `node_errors` of a `/prompt` reply: node id to its errors. */
export type NodeErrors = z.infer<typeof NodeErrorsSchema>;

/** 200 reply of `POST /prompt`. `number` is an int, or a float when the client chose it. */
export const PromptAcceptedSchema = z.object({
  prompt_id: z.string(),
  number: z.number(),
  node_errors: NodeErrorsSchema.optional().default({}),
});
export type PromptAccepted = z.infer<typeof PromptAcceptedSchema>;

/** 400 reply of `POST /prompt`. */
export const PromptRejectedSchema = z.object({
  error: z.object({
    type: z.string(),
    message: z.string(),
    details: z.string().optional().default(''),
    extra_info: z.record(z.string(), z.unknown()).optional().default({}),
  }),
  node_errors: NodeErrorsSchema.optional().default({}),
});

/** A file reference in a node's UI output or a history entry. */
export const FileRefSchema = z.object({
  filename: z.string(),
  subfolder: z.string().optional().default(''),
  type: z.string().optional().default('output'),
});
export type FileRef = z.infer<typeof FileRefSchema>;

/** A node's UI output (`executed.output`, `history.outputs[node]`); only `images` matters to us. */
export const NodeOutputSchema = z
  .object({ images: z.array(FileRefSchema).optional() })
  .catchall(z.unknown());

/** A queue item: `[number, prompt_id, prompt, extra_data, outputs_to_execute]`. */
export const QueueItemSchema = z
  .tuple([z.number(), z.string(), z.record(z.string(), z.unknown()), z.record(z.string(), z.unknown()), z.array(z.string())])
  .rest(z.unknown());
export type QueueItem = z.infer<typeof QueueItemSchema>;

/** Reply of `GET /queue`. `queue_pending` is in heap order, not run order. */
export const QueueSchema = z.object({
  queue_running: z.array(QueueItemSchema),
  queue_pending: z.array(QueueItemSchema),
});
export type Queue = z.infer<typeof QueueSchema>;

/** `[event type, data]` pairs recorded in a history entry's status. */
export const StatusMessageSchema = z.tuple([z.string(), z.record(z.string(), z.unknown())]);

/** One entry of `GET /history/{id}`. */
export const HistoryEntrySchema = z.object({
  prompt: z.array(z.unknown()),
  outputs: z.record(z.string(), NodeOutputSchema).optional().default({}),
  status: z
    .object({
      status_str: z.string(),
      completed: z.boolean(),
      messages: z.array(StatusMessageSchema).optional().default([]),
    })
    .optional(),
  meta: z.record(z.string(), z.unknown()).optional().default({}),
});
export type HistoryEntry = z.infer<typeof HistoryEntrySchema>;

/** Reply of `POST /upload/image`. */
export const UploadedSchema = z.object({
  name: z.string(),
  subfolder: z.string().optional().default(''),
  type: z.string().optional().default('input'),
});
export type Uploaded = z.infer<typeof UploadedSchema>;

/** Reply of `GET /system_stats`. */
export const SystemStatsSchema = z.object({
  system: z
    .object({
      os: z.string().optional(),
      comfyui_version: z.string().optional(),
      ram_total: z.number().optional(),
      ram_free: z.number().optional(),
    })
    .catchall(z.unknown()),
  devices: z.array(
    z
      .object({
        name: z.string(),
        type: z.string(),
        vram_total: z.number().optional(),
        vram_free: z.number().optional(),
      })
      .catchall(z.unknown()),
  ),
});
export type SystemStats = z.infer<typeof SystemStatsSchema>;

/** One node class of `GET /object_info`; input specs are `[type]` or `[type, options]`. */
export const NodeInfoSchema = z
  .object({
    input: z.object({
      required: z.record(z.string(), z.array(z.unknown())).optional(),
      optional: z.record(z.string(), z.array(z.unknown())).optional(),
      hidden: z.record(z.string(), z.unknown()).optional(),
    }),
    output: z.array(z.unknown()).optional().default([]),
    output_node: z.boolean().optional().default(false),
    name: z.string(),
  })
  .catchall(z.unknown());
export const ObjectInfoSchema = z.record(z.string(), NodeInfoSchema);
export type ObjectInfo = z.infer<typeof ObjectInfoSchema>;

// ---------------------------------------------------------------------------------------------
// WebSocket JSON messages (docs/comfyui-protocol.md §3.2). Unknown types are kept as `unknown`, never an error.
// ---------------------------------------------------------------------------------------------

const promptId = z.string();

export const WsMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('status'),
    data: z.object({
      status: z.object({ exec_info: z.object({ queue_remaining: z.number() }) }),
      sid: z.string().optional(),
    }),
  }),
  z.object({ type: z.literal('execution_start'), data: z.object({ prompt_id: promptId, timestamp: z.number().optional() }) }),
  z.object({
    type: z.literal('execution_cached'),
    data: z.object({ nodes: z.array(z.string()), prompt_id: promptId, timestamp: z.number().optional() }),
  }),
  z.object({
    type: z.literal('executing'),
    // The reconnect replay has neither prompt_id nor display_node.
    data: z.object({ node: z.string().nullable(), display_node: z.string().optional(), prompt_id: promptId.optional() }),
  }),
  z.object({
    type: z.literal('progress'),
    data: z.object({ value: z.number(), max: z.number(), prompt_id: promptId.nullable().optional(), node: z.string().nullable().optional() }),
  }),
  z.object({
    type: z.literal('progress_state'),
    // Every node's state, sent before each step's `progress`: nothing here reads the nodes, and
    // checking each one's shape took ~80 µs of every step frame's way to the subscribers.
    data: z.object({ prompt_id: promptId, nodes: z.record(z.string(), z.unknown()) }),
  }),
  z.object({
    type: z.literal('executed'),
    data: z.object({
      node: z.string(),
      display_node: z.string().optional(),
      // null for a cached output node without UI output (docs/comfyui-protocol.md §3.2).
      output: NodeOutputSchema.nullish(),
      prompt_id: promptId,
    }),
  }),
  z.object({ type: z.literal('execution_success'), data: z.object({ prompt_id: promptId, timestamp: z.number().optional() }) }),
  z.object({
    type: z.literal('execution_error'),
    data: z
      .object({
        prompt_id: promptId,
        node_id: z.string(),
        node_type: z.string(),
        executed: z.array(z.string()).optional().default([]),
        exception_message: z.string(),
        exception_type: z.string(),
        traceback: z.array(z.string()).optional().default([]),
        timestamp: z.number().optional(),
      })
      .catchall(z.unknown()),
  }),
  z.object({
    type: z.literal('execution_interrupted'),
    data: z.object({
      prompt_id: promptId,
      node_id: z.string(),
      node_type: z.string(),
      executed: z.array(z.string()).optional().default([]),
      timestamp: z.number().optional(),
    }),
  }),
  z.object({
    type: z.literal('feature_flags'),
    data: z.object({ supports_preview_metadata: z.boolean().optional(), max_upload_size: z.number().optional() }).catchall(z.unknown()),
  }),
]);

/** Every JSON message of docs/comfyui-protocol.md (§3.2) that a client acts on. */
export type WsMessage = z.infer<typeof WsMessageSchema>;

/** A text frame that is JSON of the `{type, data}` shape but not one we know (logs, custom nodes). */
export interface UnknownWsMessage {
  type: 'unknown';
  original: string;
}

/**
 * Parses one text frame. Frames of an unknown `type` (custom nodes send their own) come back as
 * `unknown`; a frame that is not `{type, data}` JSON, or a known type with a bad shape, throws.
 */
export function parseWsMessage(text: string): WsMessage | UnknownWsMessage {
  const raw: unknown = JSON.parse(text);
  if (typeof raw !== 'object' || raw === null || typeof (raw as { type?: unknown }).type !== 'string') {
    throw new Error('WebSocket message is not {type, data}');
  }
  const type = (raw as { type: string }).type;
  if (!KNOWN_TYPES.has(type)) return { type: 'unknown', original: type };
  return stepMessage(raw as { type: string; data?: unknown }) ?? WsMessageSchema.parse(raw);
}

type StepMessage = Extract<WsMessage, { type: 'progress' | 'progress_state' }>;

/**
 * The two messages of every sampler step, checked by hand: through zod they took ~0.2 ms on each
 * step's way from ComfyUI to the subscribers (measured in the service with a step every 100 ms,
 * when little of zod's code is warm). Undefined when `raw` is neither or is malformed: zod then
 * answers, with its error for a malformed one. The checks are the schemas' above.
 */
function stepMessage(raw: { type: string; data?: unknown }): StepMessage | undefined {
  const data = raw.data;
  if (typeof data !== 'object' || data === null) return undefined;
  const d = data as Record<string, unknown>;
  const optionalString = (v: unknown) => v === undefined || v === null || typeof v === 'string';
  if (raw.type === 'progress') {
    if (typeof d['value'] !== 'number' || typeof d['max'] !== 'number' || !optionalString(d['prompt_id']) || !optionalString(d['node'])) return undefined;
    return raw as StepMessage;
  }
  if (raw.type === 'progress_state') {
    const nodes = d['nodes'];
    if (typeof d['prompt_id'] !== 'string' || typeof nodes !== 'object' || nodes === null || Array.isArray(nodes)) return undefined;
    return raw as StepMessage;
  }
  return undefined;
}

const KNOWN_TYPES = new Set<string>(WsMessageSchema.options.map((o) => o.shape.type.value));

// ---------------------------------------------------------------------------------------------
// Binary frames (docs/comfyui-protocol.md §4): a 4-byte big-endian event type, then the payload.
// ---------------------------------------------------------------------------------------------

/** Binary event types. */
export const BinaryEvent = {
  PreviewImage: 1,
  UnencodedPreviewImage: 2,
  Text: 3,
  PreviewImageWithMetadata: 4,
} as const;

/** Type-4 metadata. */
export interface PreviewMetadata {
  node_id: string;
  prompt_id: string;
  display_node_id?: string;
  parent_node_id?: string | null;
  real_node_id?: string;
  image_type: string;
}

/** A decoded binary frame. */
export type BinaryFrame =
  | { event: 1; mime: 'image/jpeg' | 'image/png'; image: Buffer }
  | { event: 3; nodeId: string; text: string }
  | { event: 4; metadata: PreviewMetadata; mime: string; image: Buffer }
  | { event: number; unknown: true };

/** Decodes a binary frame; throws on a truncated or malformed one. */
export function decodeBinaryFrame(buf: Buffer): BinaryFrame {
  if (buf.length < 4) throw new Error(`binary frame too short (${buf.length} bytes)`);
  const event = buf.readUInt32BE(0);
  if (event === BinaryEvent.PreviewImage) {
    if (buf.length < 8) throw new Error('preview frame without image format');
    const format = buf.readUInt32BE(4);
    if (format !== 1 && format !== 2) throw new Error(`preview frame with unknown image format ${format}`);
    return { event, mime: format === 1 ? 'image/jpeg' : 'image/png', image: buf.subarray(8) };
  }
  if (event === BinaryEvent.Text) {
    if (buf.length < 8) throw new Error('text frame without node id length');
    const len = buf.readUInt32BE(4);
    if (8 + len > buf.length) throw new Error('text frame node id overruns the frame');
    return { event, nodeId: buf.toString('utf8', 8, 8 + len), text: buf.toString('utf8', 8 + len) };
  }
  if (event === BinaryEvent.PreviewImageWithMetadata) {
    if (buf.length < 8) throw new Error('preview frame without metadata length');
    const len = buf.readUInt32BE(4);
    if (8 + len > buf.length) throw new Error('preview metadata overruns the frame');
    const metadata = JSON.parse(buf.toString('utf8', 8, 8 + len)) as PreviewMetadata;
    if (typeof metadata?.prompt_id !== 'string') throw new Error('preview metadata without prompt_id');
    return { event, metadata, mime: metadata.image_type ?? 'image/jpeg', image: buf.subarray(8 + len) };
  }
  return { event, unknown: true };
}

/** Encodes a type-1 preview frame (the simulator's side). */
export function encodePreviewFrame(image: Buffer, mime: 'image/jpeg' | 'image/png'): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(BinaryEvent.PreviewImage, 0);
  head.writeUInt32BE(mime === 'image/jpeg' ? 1 : 2, 4);
  return Buffer.concat([head, image]);
}

/** Encodes a type-4 preview frame with its metadata (the simulator's side). */
export function encodePreviewFrameWithMetadata(image: Buffer, metadata: PreviewMetadata): Buffer {
  const json = Buffer.from(JSON.stringify(metadata), 'utf8');
  const head = Buffer.alloc(8);
  head.writeUInt32BE(BinaryEvent.PreviewImageWithMetadata, 0);
  head.writeUInt32BE(json.length, 4);
  return Buffer.concat([head, json, image]);
}
