/** `GenerateInput`, `Mutation.generate` and `Mutation.cancelTask`. */
import type { Readable } from 'node:stream';
import type { FileUpload } from 'graphql-upload-minimal';
import { DEFAULTS, LIMITS, parseGenerateParams, ValidationError } from '../../tasks/generate-params.js';
import { QuotaExceededError } from '../../tasks/quota-exceeded-error.js';
import { IdempotencyConflictError, type TaskService } from '../../tasks/task-service.js';
import type { StoredUpload } from '../../uploads/upload-sink.js';
import { UploadRejectedError } from '../../uploads/upload-rejected-error.js';
import { builder } from '../builder.js';
import { requireScope, withScope } from '../scopes.js';
// The error types the union lists are registered there.
import './errors.js';
import { Task, taskFromView } from './task.js';

const { count, steps, guidance, description, side } = LIMITS;

/** `WebhookEvent`: what a task's webhook is sent (the body's `type` is `task.` and the lower-case name). */
export const WebhookEventEnum = builder.enumType('WebhookEvent', {
  description: 'An event a task sends to its webhook.',
  values: {
    START: { value: 'start', description: 'Processing began (`task.start`).' },
    OUTPUT: { value: 'output', description: 'An image is ready (`task.output`).' },
    COMPLETED: { value: 'completed', description: 'The task ended: completed, failed or cancelled (`task.completed`).' },
  } as const,
});

/** `GenerateInput`: the defaults and limits are generate-params' DEFAULTS and LIMITS. */
export const GenerateInput = builder.inputType('GenerateInput', {
  fields: (t) => ({
    referenceImage: t.field({ type: 'Upload', required: true, description: 'A PNG, JPEG or WebP image (GraphQL multipart request).' }),
    description: t.string({ required: true, description: `What to change, ${description.min}-${description.max} characters.` }),
    count: t.int({ defaultValue: DEFAULTS.count, description: `Images to make, ${count.min}-${count.max}.` }),
    size: t.string({
      defaultValue: DEFAULTS.size,
      description: `\`auto\` (Kontext picks from the reference) or \`WxH\`, both sides multiples of ${side.multipleOf} in ${side.min}-${side.max}.`,
    }),
    steps: t.int({ defaultValue: DEFAULTS.steps, description: `Sampler steps, ${steps.min}-${steps.max}.` }),
    guidance: t.float({ defaultValue: DEFAULTS.guidance, description: `Flux guidance, ${guidance.min}-${guidance.max}.` }),
    seed: t.field({ type: 'Seed', description: 'Base seed (image i uses seed + i); random when omitted.' }),
    idempotencyKey: t.string({ description: 'Sending the same key with the same request again returns the same task.' }),
    webhook: t.string({
      description:
        'An http(s) URL that receives signed POSTs (Standard Webhooks) as the task moves on. Refused when its host resolves to a loopback, private, link-local or metadata address, unless WEBHOOK_ALLOW_HOSTS lists it.',
    }),
    webhookEvents: t.field({ type: [WebhookEventEnum], description: 'The events `webhook` receives. Default: `[COMPLETED]`.' }),
  }),
});

builder.mutationFields((t) => ({
  generate: t.field({
    type: Task,
    description:
      'Uploads a reference image and queues a task. Limits, quotas and upload problems come back as errors in the union. Needs the `generate` scope.',
    args: { input: t.arg({ type: GenerateInput, required: true }) },
    errors: {
      types: [ValidationError, UploadRejectedError, QuotaExceededError],
      union: { name: 'GenerateResult' },
      result: { name: 'GenerateSuccess' },
      dataField: { name: 'task' },
    },
    resolve: async (_root, { input }, ctx) => {
      let params;
      try {
        requireScope(ctx, 'generate');
        const { referenceImage: _file, ...fields } = input;
        params = parseGenerateParams(fields);
        // Before the upload is read: a request over a limit costs no upload (createTask checks again).
        await ctx.service.checkLimits(ctx.caller, params.count);
      } catch (err) {
        // Unread, the file would stall the multipart parser and with it the request.
        void drainUpload(input.referenceImage);
        throw err;
      }
      const stored = await storeReference(ctx.service, input.referenceImage);
      try {
        return taskFromView(await ctx.service.createTask(params, stored, ctx.caller));
      } catch (err) {
        await ctx.service.discardUpload(stored).catch(() => undefined);
        if (err instanceof IdempotencyConflictError) throw new ValidationError('idempotencyKey', err.message);
        throw err;
      }
    },
  }),
  cancelTask: t.field({
    type: Task,
    nullable: true,
    description:
      "Cancels a task (finished images are kept); a finished task is returned unchanged, an unknown id (or another key's task) gives null. Needs the `generate` scope.",
    args: { id: t.arg.id({ required: true }) },
    resolve: withScope('generate', async (_root, { id }, ctx) => {
      const view = await ctx.service.cancelTask(id, ctx.caller);
      return view ? taskFromView(view) : null;
    }),
  }),
}));

/** Streams the upload into storage; every failure of the upload itself becomes an UploadRejectedError. */
async function storeReference(service: TaskService, upload: Promise<FileUpload>): Promise<StoredUpload> {
  let stream: Readable;
  try {
    stream = (await upload).createReadStream();
  } catch (err) {
    throw rejectionOf(err);
  }
  return service.storeReference(stream);
}

/**
 * graphql-upload-minimal rejects with an HttpError: 413 when busboy cut the file at its limit
 * before we read it, 400 for a missing file, 499 for a disconnect.
 */
function rejectionOf(err: unknown): UploadRejectedError {
  const status = (err as { status?: unknown }).status;
  const message = err instanceof Error ? err.message : String(err);
  if (status === 413) return new UploadRejectedError('TOO_LARGE', message, { cause: err });
  if (status === 400 && /missing/i.test(message)) return new UploadRejectedError('EMPTY', 'No file was sent for referenceImage', { cause: err });
  return new UploadRejectedError('INCOMPLETE', `Upload did not complete: ${message}`, { cause: err });
}

async function drainUpload(upload: Promise<FileUpload>): Promise<void> {
  try {
    const stream = (await upload).createReadStream();
    stream.on('error', () => undefined);
    stream.resume();
  } catch {
    // Nothing to drain: the upload failed or never came.
  }
}
