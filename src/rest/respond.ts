/** Writing JSON replies in the FastAPI style the legacy callers expect. */
import type { ServerResponse } from 'node:http';

/** Sends `body` as JSON with the given status and `headers` besides its type and length (@default none). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Readonly<Record<string, string>>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Sends FastAPI's error shape, `{"detail": ...}`. */
export function sendDetail(res: ServerResponse, status: number, detail: unknown): void {
  sendJson(res, status, { detail });
}

/** One entry of FastAPI's 422 `detail` list. */
export interface FieldError {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** Sends FastAPI's validation error shape: 422 `{"detail": [{"loc", "msg", "type"}]}`. */
export function sendFieldErrors(res: ServerResponse, errors: FieldError[]): void {
  sendJson(res, 422, { detail: errors });
}
