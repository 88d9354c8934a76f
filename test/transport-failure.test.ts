/**
 * The one classification of network failures: what counts as a transport failure, which failed
 * requests may still have reached ComfyUI (a `POST /prompt` that must not run twice), and which
 * are a stale kept-alive connection. Raw errors are made as Node and undici make them.
 */
import { connect } from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import {
  ComfyBadReplyError,
  ComfyHttpError,
  ComfyQueueTimeoutError,
  ComfyTimeoutError,
  ComfyUnreachableError,
} from '../src/comfyui/errors.js';
import { isStaleConnection, isTransportFailure, mayHaveArrived, transportCode } from '../src/comfyui/transport-failure.js';
import { closedPort } from './helpers/ports.js';

const URL = 'http://127.0.0.1:8188';
const unreachable = (code: string) => new ComfyUnreachableError(URL, code, 'POST /prompt');
const systemError = (code: string) => Object.assign(new Error(`connect ${code}`), { code });

describe('isTransportFailure', () => {
  it('is true for a real refused connection, from net and from undici (code inside cause)', async () => {
    const port = await closedPort();
    const socket = connect(port, '127.0.0.1');
    const [netError] = (await once(socket, 'error')) as [Error];
    expect(isTransportFailure(netError)).toBe(true);
    expect(transportCode(netError)).toBe('ECONNREFUSED');

    const undiciError = await request(`http://127.0.0.1:${port}/`).catch((e: unknown) => e);
    expect(isTransportFailure(undiciError)).toBe(true);
    expect(transportCode(undiciError)).toBe('ECONNREFUSED');
  });

  it('looks into AggregateError members (a host with several addresses) and nested causes', () => {
    const aggregate = new AggregateError([new Error('no code'), systemError('EHOSTUNREACH')], 'all failed');
    expect(isTransportFailure(aggregate)).toBe(true);
    expect(isTransportFailure(new Error('fetch failed', { cause: new Error('outer', { cause: systemError('ECONNRESET') }) }))).toBe(true);
  });

  it('is true for ComfyUnreachableError, whatever its reason', () => {
    expect(isTransportFailure(unreachable('ECONNREFUSED'))).toBe(true);
    expect(isTransportFailure(unreachable('connection closed before the first status message'))).toBe(true);
  });

  it('is false for answers, timeouts, local failures and non-errors', () => {
    expect(isTransportFailure(new ComfyHttpError(URL, 'GET /queue', 500, 'boom'))).toBe(false);
    expect(isTransportFailure(new ComfyBadReplyError(URL, 'GET /queue', 'not JSON'))).toBe(false);
    expect(isTransportFailure(new ComfyTimeoutError(URL, 'GET /queue', 1_000))).toBe(false);
    // A ComfyError's own `code` is a kind, never read as a system code; nor is its cause.
    expect(isTransportFailure(new ComfyTimeoutError(URL, 'GET /queue', 1_000, { cause: systemError('ECONNRESET') }))).toBe(false);
    expect(isTransportFailure(systemError('ENOSPC'))).toBe(false); // a full disk while downloading is ours
    expect(isTransportFailure(systemError('UND_ERR_HEADERS_TIMEOUT'))).toBe(false);
    expect(isTransportFailure(new Error('plain'))).toBe(false);
    expect(isTransportFailure('ECONNREFUSED')).toBe(false);
    expect(isTransportFailure(undefined)).toBe(false);
  });
});

describe('mayHaveArrived', () => {
  it('is false when no connection carried the request', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED']) {
      expect(mayHaveArrived(unreachable(code)), code).toBe(false);
    }
  });

  it('is true when the connection broke after sending, or the reply did not come in time', () => {
    for (const code of ['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'ETIMEDOUT']) expect(mayHaveArrived(unreachable(code)), code).toBe(true);
    expect(mayHaveArrived(new ComfyTimeoutError(URL, 'POST /prompt', 30_000))).toBe(true);
    expect(mayHaveArrived(unreachable('socket hang up'))).toBe(true); // unknown: assume the worst
  });

  it('is false for failures that are answers', () => {
    expect(mayHaveArrived(new ComfyHttpError(URL, 'POST /prompt', 500, ''))).toBe(false);
    expect(mayHaveArrived(new ComfyBadReplyError(URL, 'POST /prompt', 'not JSON'))).toBe(false);
  });
});

describe('isStaleConnection', () => {
  it('is true only for a connection the server closed under us', () => {
    for (const code of ['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']) {
      expect(isStaleConnection(unreachable(code)), code).toBe(true);
      expect(isStaleConnection(systemError(code)), code).toBe(true);
    }
    expect(isStaleConnection(unreachable('ECONNREFUSED'))).toBe(false);
    expect(isStaleConnection(new ComfyQueueTimeoutError(URL, 'p', 1_000, true))).toBe(false);
  });
});
