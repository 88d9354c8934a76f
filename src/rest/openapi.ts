/**
 * The OpenAPI 3.1 description of the REST routes (served at /openapi.json, rendered at /docs).
 * Limits and defaults come from the same constants the routes enforce, so the document cannot
 * drift from the behaviour.
 */
import { loadConfig } from '../config.js';
import { FORMAT_INFO, OUTPUT_FORMATS } from '../images/output-formats.js';
import { VARIANT_LIMITS } from '../images/variant-query.js';
import { DEFAULTS, LIMITS } from '../tasks/generate-params.js';
import { MAX_WEBHOOK_URL } from '../webhooks/target-check.js';

// The settings' defaults, from the one place that defines them.
const DEFAULT_CONFIG = loadConfig({});

const detailString = { type: 'object', properties: { detail: { type: 'string' } }, required: ['detail'] } as const;
const detailList = {
  type: 'object',
  properties: {
    detail: {
      type: 'array',
      items: {
        type: 'object',
        properties: { loc: { type: 'array', items: { type: ['string', 'integer'] } }, msg: { type: 'string' }, type: { type: 'string' } },
        required: ['loc', 'msg', 'type'],
      },
    },
  },
  required: ['detail'],
} as const;
const taskId = { name: 'task_id', in: 'path', required: true, schema: { type: 'string' }, description: 'The id returned by POST /generate-image.' } as const;
const json = (schema: unknown, description: string) => ({ description, content: { 'application/json': { schema } } });

/** Either header carries the key; neither is needed while no key exists (open mode). */
const keySecurity = [{ bearerKey: [] }, { headerKey: [] }];
const retryAfter = { description: 'Seconds until the request may succeed.', schema: { type: 'integer', minimum: 1 } } as const;
const unauthorized = {
  ...json(detailString, 'No API key, or a wrong or revoked one (once a key exists).'),
  headers: { 'WWW-Authenticate': { description: '`Bearer realm="kontext"`.', schema: { type: 'string' } } },
};
const forbidden = (scope: string) => json(detailString, `The API key lacks the \`${scope}\` scope.`);
/** Who may call an operation once keys exist: a key in either header, holding `scope`. */
const needsKey = (scope: 'generate' | 'read') => ({
  security: keySecurity,
  'x-required-scope': scope,
});

/** The document; `version` is the service's. */
export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Kontext Gateway REST API',
      version,
      description:
        'The routes of the FastAPI service Kontext Gateway replaces, unchanged for legacy callers. ' +
        'New clients should prefer the GraphQL API at /graphql (live progress over graphql-ws or SSE). ' +
        'Once an API key exists (`kontext keys create`), every route except /health, /ready, /docs and /openapi.json needs one, ' +
        'as `Authorization: Bearer <key>` or `X-API-Key: <key>`; a key sees only its own tasks.',
    },
    paths: {
      '/generate-image': {
        post: {
          summary: 'Start a generation task from a reference image and an instruction',
          ...needsKey('generate'),
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  required: ['referenceImage', 'description'],
                  properties: {
                    referenceImage: {
                      type: 'string',
                      format: 'binary',
                      description: `PNG, JPEG or WebP, at most MAX_FILE_SIZE bytes (${DEFAULT_CONFIG.maxFileSize} by default) and MAX_IMAGE_PIXELS pixels, width x height (${DEFAULT_CONFIG.maxImagePixels} by default), read from the header before the image is decoded.`,
                    },
                    description: { type: 'string', minLength: LIMITS.description.min, maxLength: LIMITS.description.max, description: 'The edit instruction.' },
                    count: { type: 'integer', minimum: LIMITS.count.min, maximum: LIMITS.count.max, default: DEFAULTS.count },
                    size: {
                      type: 'string',
                      default: DEFAULTS.size,
                      description: `"auto" (the preset closest to the reference's aspect ratio) or WIDTHxHEIGHT, both multiples of ${LIMITS.side.multipleOf} from ${LIMITS.side.min} to ${LIMITS.side.max}.`,
                    },
                    steps: { type: 'integer', minimum: LIMITS.steps.min, maximum: LIMITS.steps.max, default: DEFAULTS.steps },
                    guidance: { type: 'number', minimum: LIMITS.guidance.min, maximum: LIMITS.guidance.max, default: DEFAULTS.guidance },
                    seed: { type: 'integer', minimum: LIMITS.seed.min, maximum: LIMITS.seed.max, description: 'Base seed; image i uses seed + i. Random when omitted.' },
                    idempotencyKey: { type: 'string', maxLength: LIMITS.idempotencyKey.max, description: 'Also accepted as the Idempotency-Key header.' },
                    webhook: {
                      type: 'string',
                      format: 'uri',
                      maxLength: MAX_WEBHOOK_URL,
                      description:
                        'http(s) URL receiving signed events (Standard Webhooks); refused (422) when it resolves to a loopback, private, link-local or metadata address unless WEBHOOK_ALLOW_HOSTS lists it.',
                    },
                    webhook_events_filter: { type: 'string', description: 'Comma-separated: start, output, completed (default completed).' },
                  },
                },
              },
            },
          },
          responses: {
            '200': json({ $ref: '#/components/schemas/TaskStatus' }, 'The task, pending.'),
            '409': json(detailString, 'The idempotency key was used with different parameters.'),
            '413': json(detailString, 'The file or the body is too large.'),
            '415': json(detailString, 'The file is not a PNG, JPEG or WebP image.'),
            '422': json(detailList, 'A field is missing or outside its limits, or the image is empty, truncated or has more pixels than MAX_IMAGE_PIXELS (`loc` ["body", "referenceImage"], type `upload_too_many_pixels`).'),
            '401': unauthorized,
            '403': forbidden('generate'),
            '429': {
              ...json(detailString, "Over a limit of the key (max concurrent tasks, images per day, requests per minute) or the service's MAX_QUEUED_TASKS; nothing was stored."),
              headers: { 'Retry-After': retryAfter },
            },
          },
        },
      },
      '/api/task-status/{task_id}': {
        get: {
          summary: 'A task: status, progress and image URLs',
          ...needsKey('read'),
          parameters: [taskId],
          responses: {
            '200': json({ $ref: '#/components/schemas/TaskStatus' }, 'The task.'),
            '401': unauthorized,
            '403': forbidden('read'),
            '404': json(detailString, 'Task not found (also for a task of another key).'),
          },
        },
      },
      '/api/image/{task_id}': {
        get: {
          summary: 'The bytes of one finished image, or of a variant of it (ETag, long cache headers, Range requests)',
          description:
            'Without `format`, `width` and `quality`: the stored original (in OUTPUT_FORMAT, PNG by default). With any of them: a variant, made once with sharp on the first request and stored beside the original, then served like it (its own ETag, the same cache headers, Range, HEAD). ' +
            'A variant is never wider than the original and keeps its aspect ratio; a request that renders as the original (its format, no smaller width, no quality) gets the original. ' +
            'Once keys exist: an API key with the `read` scope that sees the task, or the `exp` and `sig` of the signed URL the API returned in `images` (for `<img>`, which cannot send a header). The signature covers the task and index, so `format`, `width` and `quality` may be added to a signed URL. Signed answers are `Cache-Control: private` for no longer than the URL works.',
          security: [...keySecurity, {}],
          'x-required-scope': 'read',
          parameters: [
            taskId,
            { name: 'index', in: 'query', schema: { type: 'integer', minimum: 0, maximum: 3, default: 0 } },
            {
              name: 'format',
              in: 'query',
              schema: { type: 'string', enum: [...OUTPUT_FORMATS] },
              description: "The variant's format. Default: the original's.",
            },
            {
              name: 'width',
              in: 'query',
              schema: { type: 'integer', minimum: VARIANT_LIMITS.width.min, maximum: VARIANT_LIMITS.width.max },
              description: "The variant's width in pixels; the height keeps the aspect ratio. Never enlarged: a width at or above the original's is the original's.",
            },
            {
              name: 'quality',
              in: 'query',
              schema: { type: 'integer', minimum: VARIANT_LIMITS.quality.min, maximum: VARIANT_LIMITS.quality.max },
              description: `Encoder quality. Default: JPEG ${FORMAT_INFO.jpeg.defaultQuality}, WebP ${FORMAT_INFO.webp.defaultQuality}, AVIF ${FORMAT_INFO.avif.defaultQuality}; PNG is lossless unless a quality is given (then a palette image).`,
            },
            { name: 'exp', in: 'query', schema: { type: 'integer' }, description: 'Expiry of a signed URL, Unix seconds (as returned in `images`).' },
            { name: 'sig', in: 'query', schema: { type: 'string' }, description: 'Signature of a signed URL: HMAC over task, index and exp (as returned in `images`).' },
          ],
          responses: {
            '200': { description: 'The image or its variant.', content: Object.fromEntries(OUTPUT_FORMATS.map((f) => [FORMAT_INFO[f].contentType, {}])) },
            '206': { description: 'A byte range of the image.' },
            '304': { description: 'Not modified (If-None-Match).' },
            '401': json(detailString, 'Neither an API key nor a signed URL, or a wrong or revoked key.'),
            '403': json(detailString, 'The signature is not valid or expired, or the key lacks the `read` scope.'),
            '404': json(detailString, 'No such task (or one of another key), or the image does not exist (yet).'),
            '422': json(
              detailList,
              `A query parameter is out of its limits, each listed with \`loc\` ["query", name]: \`index\` not a number from 0 to 3, \`format\` not one of ${OUTPUT_FORMATS.join(', ')} (type \`enum\`), \`width\` not a whole number from ${VARIANT_LIMITS.width.min} to ${VARIANT_LIMITS.width.max} or \`quality\` not one from ${VARIANT_LIMITS.quality.min} to ${VARIANT_LIMITS.quality.max} (type \`int_parsing\`, \`greater_than_equal\` or \`less_than_equal\`).`,
            ),
          },
        },
      },
      '/api/task/{task_id}/cancel': {
        post: {
          summary: 'Cancel a task; finished images are kept',
          ...needsKey('generate'),
          parameters: [taskId],
          responses: {
            '200': json({ $ref: '#/components/schemas/TaskStatus' }, 'The task as it ends up.'),
            '401': unauthorized,
            '403': forbidden('generate'),
            '404': json(detailString, 'Task not found (also for a task of another key).'),
          },
        },
      },
      '/health': {
        get: {
          summary: 'Service health: every ComfyUI worker, the database and the queue',
          description: 'Worker URLs, devices, queues and errors are shown only with HEALTH_DETAILS=true.',
          responses: { '200': json({ $ref: '#/components/schemas/Health' }, 'The service can accept work (status ok or degraded).'), '503': json({ $ref: '#/components/schemas/Health' }, 'The database is not usable.') },
        },
      },
      '/ready': {
        get: {
          summary: 'Readiness: 200 while at least one ComfyUI worker is reachable',
          responses: { '200': json({ type: 'object' }, 'Ready.'), '503': json(detailString, 'No ComfyUI worker is reachable.') },
        },
      },
    },
    components: {
      securitySchemes: {
        bearerKey: { type: 'http', scheme: 'bearer', description: 'An API key (`kx_...`, made with `kontext keys create`) as `Authorization: Bearer <key>`. Not needed while no key exists.' },
        headerKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'The same API key in the X-API-Key header.' },
      },
      schemas: {
        TaskStatus: {
          type: 'object',
          required: ['task_id', 'status', 'progress', 'description', 'images', 'result_path', 'created_at', 'updated_at'],
          properties: {
            task_id: { type: 'string' },
            status: { enum: ['pending', 'processing', 'completed', 'failed', 'cancelled'] },
            progress: { type: 'integer', minimum: 0, maximum: 100 },
            description: { type: 'string' },
            count: { type: 'integer' },
            size: { type: 'string' },
            steps: { type: 'integer' },
            guidance: { type: 'number' },
            seed: { type: 'integer' },
            images: {
              type: 'array',
              items: { type: 'string', format: 'uri' },
              description: `Absolute URLs of the finished images; once keys exist they are signed (\`exp\`, \`sig\`) and work without a key for IMAGE_URL_TTL_S seconds (${DEFAULT_CONFIG.imageUrlTtlS} by default) or a little more.`,
            },
            result_path: {
              type: 'array',
              items: { type: 'string' },
              description: 'Paths of the image files relative to the data folder (the old service reported absolute paths); prefer `images`.',
            },
            error_message: { type: ['string', 'null'] },
            queue_position: { type: ['integer', 'null'], description: '1 = next to start; null unless pending.' },
            created_at: { type: 'string', format: 'date-time' },
            updated_at: { type: 'string', format: 'date-time' },
          },
        },
        Health: {
          type: 'object',
          properties: {
            status: { enum: ['ok', 'degraded'], description: 'ok when the database and every worker are reachable and ready.' },
            comfyui: {
              type: 'array',
              items: {
                type: 'object',
                required: ['index', 'reachable', 'ready'],
                properties: {
                  index: { type: 'integer', description: 'Position in COMFYUI_URL.' },
                  reachable: { type: 'boolean', description: 'Its last health check answered.' },
                  ready: { type: 'boolean', description: 'It gets work: reachable and able to run the workflow.' },
                  url: { type: 'string', description: 'Only with HEALTH_DETAILS=true.' },
                  queue: { type: ['integer', 'null'], description: 'Only with HEALTH_DETAILS=true.' },
                  device: { type: ['string', 'null'], description: 'Only with HEALTH_DETAILS=true.' },
                  last_error: { type: ['string', 'null'], description: 'Only with HEALTH_DETAILS=true.' },
                },
              },
            },
            database: {
              type: 'object',
              properties: { ok: { type: 'boolean' }, error: { type: 'string', description: 'Only with HEALTH_DETAILS=true.' } },
            },
            queue: { type: 'object', properties: { pending: { type: 'integer' }, processing: { type: 'integer' } } },
            auth: { enum: ['open', 'keys', 'unknown'], description: 'open while no API key exists (no route needs one), keys from the first key on; unknown when the database does not answer.' },
            version: { type: 'string' },
            uptime_s: { type: 'integer' },
          },
        },
      },
    },
  };
}
