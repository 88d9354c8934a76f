/**
 * Why an upload was refused. The GraphQL mutation returns it as data and the REST route maps it to
 * a status code, so `reason` is stable and meant for `switch`; the message is for humans and names
 * the limit or the defect.
 */

/**
 * - `EMPTY`: no bytes at all.
 * - `TOO_LARGE`: more bytes than the size limit (ours, or the multipart parser's).
 * - `UNSUPPORTED_TYPE`: the bytes are not a PNG, JPEG or WebP image, whatever the name or declared type.
 * - `INCOMPLETE`: the upload stopped early (disconnect, body cap) or the file is cut short.
 * - `CORRUPT`: a complete file whose header cannot be read, or that is not the format its first bytes claim.
 * - `TOO_MANY_PIXELS`: the dimensions are outside the limits (too many pixels, a side too long or too short).
 */
export type UploadRejectReason = 'EMPTY' | 'TOO_LARGE' | 'UNSUPPORTED_TYPE' | 'INCOMPLETE' | 'CORRUPT' | 'TOO_MANY_PIXELS';

/** A refused upload; nothing of it was kept. */
export class UploadRejectedError extends Error {
  override readonly name = 'UploadRejectedError';
  constructor(
    readonly reason: UploadRejectReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
