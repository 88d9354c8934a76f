/**
 * graphql-js quotes client input back in its error messages ("Variable "$x" got invalid value
 * "AAAA…"", "Expected value of type ID!, found "…""): a 1 MB value became a 1 MB error, on every
 * transport. This plugin shortens each quoted run of client text in GraphQL errors to a prefix and
 * its length, for validation, execution and subscription results alike.
 */
import { GraphQLError, type ExecutionResult } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';

/** Quoted text longer than this is shortened. */
export const MAX_QUOTED_CHARS = 64;

/** Keeps this much of a shortened quote. */
const KEPT_CHARS = 40;

/** Shortens every double-quoted run in `message` longer than {@link MAX_QUOTED_CHARS}. */
export function boundQuotedInput(message: string): string {
  return message.replace(/"((?:[^"\\]|\\.)*)"/g, (whole, inner: string) =>
    inner.length > MAX_QUOTED_CHARS ? `"${inner.slice(0, KEPT_CHARS)}…" (${inner.length} characters)` : whole,
  );
}

function boundError<E>(error: E): E {
  if (!(error instanceof GraphQLError)) return error;
  const message = boundQuotedInput(error.message);
  if (message === error.message) return error;
  return new GraphQLError(message, {
    nodes: error.nodes ?? null,
    source: error.source ?? null,
    positions: error.positions ?? null,
    path: error.path ?? null,
    originalError: error.originalError ?? null,
    extensions: error.extensions,
  }) as E;
}

function boundResult(result: ExecutionResult): ExecutionResult {
  return result.errors ? { ...result, errors: result.errors.map(boundError) } : result;
}

/** The plugin; register it once in Yoga (graphql-ws operations go through the same envelop). */
export function useBoundedErrorMessages(): Plugin {
  return {
    onValidate: () => ({ result, setResult }) => {
      if (result.length > 0) setResult(result.map(boundError));
    },
    onExecute: () => ({
      onExecuteDone: ({ result, setResult }) => {
        if (!isAsyncIterable(result)) setResult(boundResult(result));
      },
    }),
    onSubscribe: () => ({
      onSubscribeResult: ({ result, setResult }) => {
        // Errors before the stream starts (variables that do not coerce) come back as a plain result.
        if (!isAsyncIterable(result)) setResult(boundResult(result));
      },
    }),
  };
}
