/**
 * Typed failures of the ComfyUI client layer. Every error names the ComfyUI server (`worker`, its
 * base URL) and says what happened, so a log line is enough to act on it. `code` is stable and
 * meant for `switch`; the message is for humans.
 *
 * Not every code is a failure: `INTERRUPTED` means the prompt was cancelled (by us or by someone
 * else), and `VANISHED` means ComfyUI lost the prompt (a restart, or a deleted queue entry), so the
 * caller may simply resubmit it with the same prompt_id.
 */
import type { NodeErrors } from './protocol.js';

export type ComfyErrorCode =
  | 'UNREACHABLE'
  | 'TIMEOUT'
  | 'HTTP'
  | 'BAD_REPLY'
  | 'VALIDATION'
  | 'EXECUTION'
  | 'INTERRUPTED'
  | 'VANISHED'
  | 'STOPPED';

/** Base class: `code` says what kind of failure, `worker` which ComfyUI server. */
export class ComfyError extends Error {
  override name = 'ComfyError';
  constructor(
    readonly code: ComfyErrorCode,
    readonly worker: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The server could not be reached at all: connection refused or reset, DNS failure, ... */
export class ComfyUnreachableError extends ComfyError {
  override name = 'ComfyUnreachableError';
  constructor(
    worker: string,
    /** The system error code (`ECONNREFUSED`, `ECONNRESET`, ...) or a short description. */
    readonly reason: string,
    /** What we were doing, e.g. `POST /prompt`. */
    readonly operation: string,
    options?: { cause?: unknown },
  ) {
    super('UNREACHABLE', worker, `ComfyUI at ${worker} is unreachable: ${reason} (${operation})`, options);
  }
}

/** An operation took longer than it was allowed to. */
export class ComfyTimeoutError extends ComfyError {
  override name = 'ComfyTimeoutError';
  constructor(
    worker: string,
    /** What we were waiting for, e.g. `GET /history/abc` or `prompt abc to finish`. */
    readonly operation: string,
    /** How long we waited, in milliseconds. */
    readonly waitedMs: number,
    options?: { cause?: unknown },
  ) {
    super('TIMEOUT', worker, `ComfyUI at ${worker}: timed out after ${waitedMs} ms waiting for ${operation}`, options);
  }
}

/**
 * A prompt ran longer than its own limit (`RunOptions.timeoutMs`, counted from its start, not from
 * its submission). The prompt may still run on ComfyUI: the caller decides whether to cancel it.
 * Tell it by its class (not by `operation`, which is for the message).
 */
export class ComfyRunTimeoutError extends ComfyTimeoutError {
  override name = 'ComfyRunTimeoutError';
  constructor(
    worker: string,
    readonly promptId: string,
    /** The limit of its run, in milliseconds. */
    limitMs: number,
  ) {
    super(worker, `prompt ${promptId} to finish`, limitMs);
    // The base message counts from the call; say what is measured here.
    this.message = `ComfyUI at ${worker}: prompt ${promptId} ran for more than ${seconds(limitMs)} s (its limit) without finishing`;
  }
}

/**
 * A prompt waited in ComfyUI's queue longer than `RunOptions.queueTimeoutMs` without starting.
 * `removed` tells whether the worker deleted it from that queue (it will then never run there, so
 * submitting it elsewhere is safe) or could not (the server did not answer: it may still run).
 */
export class ComfyQueueTimeoutError extends ComfyTimeoutError {
  override name = 'ComfyQueueTimeoutError';
  constructor(
    worker: string,
    readonly promptId: string,
    waitedMs: number,
    readonly removed: boolean,
  ) {
    super(worker, `prompt ${promptId} to start`, waitedMs);
    this.message =
      `prompt ${promptId} waited in the queue of ComfyUI at ${worker} for ${seconds(waitedMs)} s without starting; ` +
      (removed ? 'it was removed from that queue' : 'it could not be removed from that queue and may still run');
  }
}

/** An HTTP status we did not expect (anything but the documented answers). */
export class ComfyHttpError extends ComfyError {
  override name = 'ComfyHttpError';
  constructor(
    worker: string,
    readonly operation: string,
    readonly status: number,
    /** The start of the reply body (at most 500 characters). */
    readonly body: string,
  ) {
    super('HTTP', worker, `ComfyUI at ${worker} answered ${operation} with HTTP ${status}${body ? `: ${body}` : ''}`);
  }
}

/** A reply that is not what the protocol says (bad JSON, failed schema validation, missing data). */
export class ComfyBadReplyError extends ComfyError {
  override name = 'ComfyBadReplyError';
  constructor(
    worker: string,
    readonly operation: string,
    /** What is wrong with the reply. */
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super('BAD_REPLY', worker, `ComfyUI at ${worker} sent an unexpected reply to ${operation}: ${problem}`, options);
  }
}

/** One problem of a rejected prompt, flattened from `node_errors` (or from the top-level error). */
export interface ValidationProblem {
  /** Node id; `undefined` for a prompt-level error such as `no_prompt` or `invalid_prompt`. */
  nodeId: string | undefined;
  /** The node's class (`UNETLoader`); empty when unknown. */
  classType: string;
  /** The input concerned, from `extra_info.input_name`, when there is one. */
  inputName?: string;
  /** ComfyUI's error type, e.g. `value_not_in_list`, `required_input_missing`. */
  type: string;
  message: string;
  details: string;
}

/**
 * ComfyUI refused the prompt (HTTP 400), or accepted only some of its outputs (a 200 with
 * `node_errors`, docs/comfyui-protocol.md §6.3; the client then removed it from the queue).
 */
export class ComfyValidationError extends ComfyError {
  override name = 'ComfyValidationError';
  readonly problems: ValidationProblem[];
  constructor(
    worker: string,
    readonly promptId: string,
    /** `error.type` of the 400 reply (`prompt_outputs_failed_validation`, `invalid_prompt`, ...), or `partial_outputs_failed_validation` for a 200 with `node_errors`. */
    readonly errorType: string,
    readonly nodeErrors: NodeErrors,
    topLevel?: { message: string; details: string },
  ) {
    const problems = flattenNodeErrors(nodeErrors);
    // A prompt-level error (no_prompt, invalid_prompt, prompt_no_outputs) has no node errors.
    if (problems.length === 0 && topLevel) {
      problems.push({ nodeId: undefined, classType: '', type: errorType, message: topLevel.message, details: topLevel.details });
    }
    const summary = problems.length > 0 ? problems.map(describeProblem).join('; ') : errorType;
    super('VALIDATION', worker, `ComfyUI at ${worker} rejected prompt ${promptId}: ${summary}`);
    this.problems = problems;
  }
}

/** A node raised while the prompt ran (`execution_error`). */
export class ComfyExecutionError extends ComfyError {
  override name = 'ComfyExecutionError';
  constructor(
    worker: string,
    readonly promptId: string,
    readonly nodeId: string,
    readonly nodeType: string,
    /** Module-qualified exception class (`RuntimeError`, `torch.OutOfMemoryError`). */
    readonly exceptionType: string,
    readonly exceptionMessage: string,
    readonly traceback: string[] = [],
  ) {
    super(
      'EXECUTION',
      worker,
      `ComfyUI at ${worker}: prompt ${promptId} failed in node ${nodeId} (${nodeType}): ${exceptionType}: ${exceptionMessage.trim()}`,
    );
  }
}

/** The prompt was cancelled: interrupted while running, or deleted from the queue. Not a failure. */
export class ComfyInterruptedError extends ComfyError {
  override name = 'ComfyInterruptedError';
  constructor(
    worker: string,
    readonly promptId: string,
    /** The node that was running, when ComfyUI reported one. */
    readonly nodeId?: string,
    readonly nodeType?: string,
  ) {
    const where = nodeId ? ` in node ${nodeId}${nodeType ? ` (${nodeType})` : ''}` : '';
    super('INTERRUPTED', worker, `ComfyUI at ${worker}: prompt ${promptId} was cancelled${where}`);
  }
}

/** The prompt is neither in the history nor in the queue (ComfyUI restarted, or someone deleted it). */
export class ComfyPromptVanishedError extends ComfyError {
  override name = 'ComfyPromptVanishedError';
  constructor(
    worker: string,
    readonly promptId: string,
  ) {
    super(
      'VANISHED',
      worker,
      `ComfyUI at ${worker} has no trace of prompt ${promptId} (neither queued, running nor in history); it may be resubmitted`,
    );
  }
}

/**
 * The worker no longer waits for the prompt: it was stopped, or the prompt was released
 * (`ComfyWorker.release`). The prompt itself may still run on ComfyUI.
 */
export class ComfyWorkerStoppedError extends ComfyError {
  override name = 'ComfyWorkerStoppedError';
  constructor(
    worker: string,
    readonly promptId?: string,
    /** Why the prompt was released; absent when the worker was stopped. */
    readonly reason?: string,
  ) {
    super(
      'STOPPED',
      worker,
      reason
        ? `ComfyUI worker ${worker} stopped waiting for prompt ${promptId ?? '?'}: ${reason}`
        : `ComfyUI worker ${worker} was stopped${promptId ? ` while waiting for prompt ${promptId}` : ''}`,
    );
  }
}

function flattenNodeErrors(nodeErrors: NodeErrors): ValidationProblem[] {
  const problems: ValidationProblem[] = [];
  for (const [nodeId, node] of Object.entries(nodeErrors)) {
    for (const error of node.errors) {
      const inputName = error.extra_info['input_name'];
      problems.push({
        nodeId,
        classType: node.class_type,
        ...(typeof inputName === 'string' ? { inputName } : {}),
        type: error.type,
        message: error.message,
        details: error.details,
      });
    }
  }
  return problems;
}

/** `node 37 (UNETLoader) input unet_name: Value not in list: unet_name: 'x' not in [...]` */
function describeProblem(p: ValidationProblem): string {
  const where = p.nodeId === undefined ? '' : `node ${p.nodeId}${p.classType ? ` (${p.classType})` : ''}${p.inputName ? ` input ${p.inputName}` : ''}: `;
  return `${where}${p.message}${p.details ? `: ${p.details}` : ''}`;
}

/** Milliseconds as seconds for messages: whole seconds, or one decimal below 10 s. */
function seconds(ms: number): string {
  return ms >= 10_000 ? String(Math.round(ms / 1000)) : String(Math.round(ms / 100) / 10);
}
