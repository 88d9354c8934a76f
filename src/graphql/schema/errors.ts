/**
 * Errors clients are expected to handle come back as data: an `Error` interface and one object type
 * per error class. Each field lists the classes it returns (`errors: { types }`); anything else is
 * thrown and masked by Yoga.
 */
import { ValidationError } from '../../tasks/generate-params.js';
import { QuotaExceededError } from '../../tasks/quota-exceeded-error.js';
import { UploadRejectedError } from '../../uploads/upload-rejected-error.js';
import { builder } from '../builder.js';

/** `interface Error { message }`, implemented by every error type returned as data. */
export const ErrorInterface = builder.interfaceType(Error, {
  name: 'Error',
  description: 'A failure the client is expected to handle; `message` is for humans.',
  fields: (t) => ({
    message: t.exposeString('message'),
  }),
});

/** `ValidationError { message field }`, from generate-params' ValidationError. */
export const ValidationErrorType = builder.objectType(ValidationError, {
  name: 'ValidationError',
  description: 'An input value outside its limits; the message names the allowed range.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ValidationError,
  fields: (t) => ({
    field: t.exposeString('field', { description: 'The input field, e.g. `steps`.' }),
  }),
});

/** `UploadRejectedError { message reason }`, from the upload sink's UploadRejectedError. */
export const UploadRejectedErrorType = builder.objectType(UploadRejectedError, {
  name: 'UploadRejectedError',
  description: 'The reference image was refused; nothing of it was kept.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof UploadRejectedError,
  fields: (t) => ({
    reason: t.exposeString('reason', {
      description: 'One of EMPTY, TOO_LARGE, UNSUPPORTED_TYPE, INCOMPLETE, CORRUPT, TOO_MANY_PIXELS; stable, meant for `switch`.',
    }),
  }),
});

/** `QuotaLimit`: which limit refused a request (QuotaExceededError's `limit`, in UPPERCASE). */
export const QuotaLimitEnum = builder.enumType('QuotaLimit', {
  description: 'The limit that refused a request.',
  values: {
    MAX_CONCURRENT: { value: 'max_concurrent', description: "The key's pending plus processing tasks." },
    IMAGES_PER_DAY: { value: 'images_per_day', description: "The key's images in the last 24 hours." },
    RATE: { value: 'rate', description: "The key's generate requests per minute." },
    MAX_QUEUED_TASKS: { value: 'max_queued_tasks', description: "The service's ceiling on queued tasks (MAX_QUEUED_TASKS), for every key." },
  } as const,
});

/** `QuotaExceededError { message limit retryAfterSeconds }`, from the task service's QuotaExceededError. */
export const QuotaExceededErrorType = builder.objectType(QuotaExceededError, {
  name: 'QuotaExceededError',
  description: 'A limit refused the request; nothing of it was kept. Try again after `retryAfterSeconds`.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof QuotaExceededError,
  fields: (t) => ({
    limit: t.expose('limit', { type: QuotaLimitEnum }),
    retryAfterSeconds: t.exposeInt('retryAfterSeconds', { description: 'When trying again may succeed, in whole seconds (at least 1).' }),
  }),
});
