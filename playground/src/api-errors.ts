/**
 * Where an API error belongs on the page: next to the field it names. Typed results of `generate`
 * name their field (ValidationError.field, uploads on the reference image, limits on the button);
 * refused keys belong to the API key field; anything else is shown by the action that failed.
 */
import { KontextError, type GenerateResult } from '@kontext-gateway/sdk';

/** A form field an error can point at ('form' is the Generate button). */
export type FieldName = 'referenceImage' | 'description' | 'count' | 'size' | 'steps' | 'guidance' | 'seed' | 'apiKey' | 'form';

/** Messages per field. */
export type FieldErrors = Partial<Record<FieldName, string>>;

const FORM_FIELDS = new Set<string>(['referenceImage', 'description', 'count', 'size', 'steps', 'guidance', 'seed']);

/** The field a refused generate belongs to. */
export function errorOfResult(result: Exclude<GenerateResult, { __typename: 'GenerateSuccess' }>): FieldErrors {
  switch (result.__typename) {
    case 'ValidationError':
      return { [FORM_FIELDS.has(result.field) ? (result.field as FieldName) : 'form']: result.message };
    case 'UploadRejectedError':
      return { referenceImage: result.message };
    case 'QuotaExceededError':
      return { form: `${result.message} (try again in ${result.retryAfterSeconds} s)` };
  }
}

/** The field a thrown error belongs to: a refused key, a body too large, or the form. */
export function errorOfThrown(err: unknown): FieldErrors {
  const message = err instanceof Error ? err.message : String(err);
  if (isAuthError(err)) return { apiKey: authMessage(err as KontextError) };
  if (err instanceof KontextError && err.status === 413) return { referenceImage: message };
  return { form: message };
}

/** True when the service refused the key (missing, wrong, revoked, or without the scope). */
export function isAuthError(err: unknown): boolean {
  if (!(err instanceof KontextError)) return false;
  if (err.status === 401 || err.status === 403) return true;
  const codes = err.errors.map((e) => (e.extensions as { code?: unknown } | undefined)?.code);
  return codes.includes('UNAUTHENTICATED') || codes.includes('FORBIDDEN') || err.closeCode === 4401 || err.closeCode === 4403;
}

function authMessage(err: KontextError): string {
  const forbidden = err.status === 403 || err.errors.some((e) => (e.extensions as { code?: unknown } | undefined)?.code === 'FORBIDDEN') || err.closeCode === 4403;
  return forbidden ? `This key may not do that: ${err.message}` : 'The service needs a valid API key (Authorization: Bearer kx_…).';
}
