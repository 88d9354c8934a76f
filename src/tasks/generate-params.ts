/**
 * The parameters of a generation request and their limits, checked in one place for GraphQL and
 * REST alike. A bad value gives a ValidationError naming the field and the allowed range.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isWebhookEvent, WEBHOOK_EVENTS, type WebhookEvent } from '../webhooks/events.js';
import { parseWebhookUrl, WebhookTargetError } from '../webhooks/target-check.js';

/** The limits, also shown in error messages and the API docs. */
export const LIMITS = {
  count: { min: 1, max: 4 },
  steps: { min: 1, max: 100 },
  guidance: { min: 0, max: 20 },
  description: { min: 1, max: 2000 },
  side: { min: 256, max: 2048, multipleOf: 16 },
  seed: { min: 0, max: Number.MAX_SAFE_INTEGER },
  idempotencyKey: { max: 200 },
} as const;

/** Validated request parameters. */
export interface GenerateParams {
  description: string;
  count: number;
  /** `WxH` or `auto`. */
  size: string;
  steps: number;
  guidance: number;
  /** Undefined: a random base seed is chosen (and stored). */
  seed: number | undefined;
  idempotencyKey: string | undefined;
  /** The task's own webhook target (its form checked here; where it resolves, by the service). @default none */
  webhook?: string | undefined;
  /** The events the task's webhook receives. @default `completed` only */
  webhookEvents?: WebhookEvent[] | undefined;
}

/** The defaults, as in the old service. */
export const DEFAULTS = { count: 1, size: '1024x1024', steps: 20, guidance: 2.5 } as const;

/** A parameter outside its limits. */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

const range = (field: string, { min, max }: { min: number; max: number }, integer: boolean) => {
  const msg = `${field} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`;
  const base = z.number({ error: msg }).min(min, msg).max(max, msg);
  return integer ? base.int(msg) : base;
};

const sizeMessage = `size must be "auto" or WIDTHxHEIGHT with both sides multiples of ${LIMITS.side.multipleOf} from ${LIMITS.side.min} to ${LIMITS.side.max}, e.g. "1024x1024"`;

const eventsMessage = `webhookEvents must list some of ${WEBHOOK_EVENTS.join(', ')}`;

/** A list of events, or (REST's `webhook_events_filter`) one comma-separated string; any case. */
const webhookEventsSchema = z.unknown().transform((value, ctx): WebhookEvent[] => {
  const items = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? value : undefined;
  const names = items?.map((v) => (typeof v === 'string' ? v.trim().toLowerCase() : '')).filter((v) => v !== '');
  const bad = names?.find((n) => !isWebhookEvent(n));
  if (!names || names.length === 0 || bad !== undefined) {
    ctx.addIssue({ code: 'custom', message: bad !== undefined ? `${eventsMessage}, not '${bad.slice(0, 40)}'` : eventsMessage });
    return z.NEVER;
  }
  return [...new Set(names.filter(isWebhookEvent))];
});

const webhookSchema = z
  .string({ error: 'webhook must be an http or https URL' })
  .trim()
  .transform((value, ctx) => {
    try {
      return parseWebhookUrl(value).toString();
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof WebhookTargetError ? err.message : String(err) });
      return z.NEVER;
    }
  });

const Schema = z.object({
  description: z
    .string({ error: 'description must be text' })
    .trim()
    .min(LIMITS.description.min, `description must be ${LIMITS.description.min} to ${LIMITS.description.max} characters`)
    .max(LIMITS.description.max, `description must be ${LIMITS.description.min} to ${LIMITS.description.max} characters`),
  count: range('count', LIMITS.count, true).default(DEFAULTS.count),
  size: z
    .string({ error: sizeMessage })
    .trim()
    .toLowerCase()
    .refine((s) => s === 'auto' || parseSize(s) !== undefined, sizeMessage)
    .default(DEFAULTS.size),
  steps: range('steps', LIMITS.steps, true).default(DEFAULTS.steps),
  guidance: range('guidance', LIMITS.guidance, false).default(DEFAULTS.guidance),
  seed: range('seed', LIMITS.seed, true).optional(),
  idempotencyKey: z
    .string()
    .trim()
    .min(1, 'idempotencyKey must not be empty')
    .max(LIMITS.idempotencyKey.max, `idempotencyKey must be at most ${LIMITS.idempotencyKey.max} characters`)
    .optional(),
  webhook: webhookSchema.optional(),
  webhookEvents: webhookEventsSchema.optional(),
});

/** Raw input: what GraphQL variables or REST form fields carry (nulls mean "not given"). */
export type RawGenerateParams = { [K in keyof GenerateParams]?: unknown };

/** Checks and normalizes request parameters; throws ValidationError for the first bad field. */
export function parseGenerateParams(raw: RawGenerateParams): GenerateParams {
  const r = checkGenerateParams(raw);
  if ('errors' in r) throw r.errors[0]!;
  return r.params;
}

/** Checks every parameter and reports every bad one (REST answers them all at once, as FastAPI does). */
export function checkGenerateParams(raw: RawGenerateParams): { params: GenerateParams } | { errors: ValidationError[] } {
  const cleaned = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== null && v !== undefined));
  const r = Schema.safeParse(cleaned);
  if (r.success) return { params: { ...r.data, seed: r.data.seed, idempotencyKey: r.data.idempotencyKey, webhook: r.data.webhook, webhookEvents: r.data.webhookEvents } };
  const errors = new Map<string, ValidationError>();
  for (const issue of r.error.issues) {
    const field = String(issue.path[0] ?? 'input');
    if (errors.has(field)) continue;
    errors.set(field, new ValidationError(field, issue.code === 'invalid_type' && !(field in cleaned) ? `${field} is required` : issue.message));
  }
  return { errors: [...errors.values()] };
}

/** `WxH` with both sides in range, or undefined. */
export function parseSize(size: string): { width: number; height: number } | undefined {
  const m = /^(\d{1,5})x(\d{1,5})$/.exec(size);
  if (!m) return undefined;
  const [width, height] = [Number(m[1]), Number(m[2])];
  const ok = (n: number) => n >= LIMITS.side.min && n <= LIMITS.side.max && n % LIMITS.side.multipleOf === 0;
  return ok(width) && ok(height) ? { width, height } : undefined;
}

/** A stable hash of what determines the result, to tell a replayed request from a conflicting one. */
export function paramsHash(params: GenerateParams, uploadSha256: string): string {
  const { description, count, size, steps, guidance, seed } = params;
  return createHash('sha256')
    .update(JSON.stringify({ description, count, size, steps, guidance, seed: seed ?? null, uploadSha256 }))
    .digest('hex');
}
