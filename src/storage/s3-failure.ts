/**
 * What an S3 error means for us: an absent object, a request to retry or not, and a one-line reason
 * for `check()` that a person can act on (which bucket, which endpoint, which variable to set).
 */

interface S3ErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  errors?: unknown[];
}

/** Whether `err` says the object is not there (GetObject: NoSuchKey; HeadObject: a bare 404 NotFound). */
export function isS3Absent(err: unknown): boolean {
  const e = err as S3ErrorShape;
  return e.name === 'NoSuchKey' || e.name === 'NotFound';
}

/** Whether S3 refused the request itself (4xx): sending it again would fail the same way. */
export function isS3ClientError(err: unknown): boolean {
  const status = (err as S3ErrorShape).$metadata?.httpStatusCode;
  return status !== undefined && status >= 400 && status < 500;
}

/** Context of a failed `check()`. */
export interface S3FailureContext {
  bucket: string;
  /** The custom endpoint, when one is set. */
  endpoint: string | undefined;
  /** The time `check()` allowed, in ms. */
  timeoutMs: number;
}

/** A short reason for a failed HeadBucket. */
export function describeS3Failure(err: unknown, ctx: S3FailureContext): string {
  const e = err as S3ErrorShape;
  const where = ctx.endpoint ?? 'S3';
  const status = e.$metadata?.httpStatusCode;
  if (e.name === 'NotFound' || e.name === 'NoSuchBucket' || status === 404) return `the bucket "${ctx.bucket}" does not exist at ${where}`;
  if (e.name === 'Forbidden' || e.name === 'AccessDenied' || status === 403) {
    return `access to the bucket "${ctx.bucket}" at ${where} is denied (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)`;
  }
  if (e.name === 'CredentialsProviderError') return 'no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)';
  if (/region is missing/i.test(e.message ?? '')) return 'no AWS region set (set AWS_REGION)';
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return `${where} did not answer within ${ctx.timeoutMs / 1000} s`;
  const code = e.code ?? firstCode(e.errors);
  if (code) return `cannot reach ${where} (${code})`;
  return `${where} refused the bucket "${ctx.bucket}" (${e.name ?? 'error'}${status ? ` ${status}` : ''}: ${firstLine(e.message)})`;
}

/** Node's AggregateError from a failed connect carries the codes of each address tried. */
function firstCode(errors: unknown[] | undefined): string | undefined {
  return (errors?.[0] as { code?: string } | undefined)?.code;
}

function firstLine(message: string | undefined): string {
  return (message ?? 'no message').split('\n')[0]!.slice(0, 200);
}
