/**
 * Results that skipped Yoga's envelope (a directly written subscription) go back through it once
 * one is not a shared result: the envelope's hooks run on it (an unexpected error is masked), the
 * rest follow in order, and an error thrown by the raw stream is masked too.
 */
import { GraphQLError, parse, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { OPEN_CALLER } from '../src/auth/caller.js';
import { envelopeOf, throughEnvelope } from '../src/graphql/enveloped-results.js';
import { createGraphQLServer } from '../src/graphql/yoga.js';
import { startStack } from './helpers/stack.js';

const unexpected = (): ExecutionResult => ({ data: null, errors: [new GraphQLError('secret detail', { originalError: new Error('secret detail') })] });

async function* raw(items: (ExecutionResult | Error)[]): AsyncGenerator<ExecutionResult, void, void> {
  for (const item of items) {
    if (item instanceof Error) throw item;
    yield item;
  }
}

describe('results handed back through the envelope', () => {
  it('masks what Yoga masks, keeps the order, and masks an error the raw stream throws', async () => {
    const stack = await startStack();
    try {
      const { service, auth, signer } = stack.app;
      const yoga = createGraphQLServer({ service, auth, signer, maxFileSize: 1 << 20, publicUrl: undefined, corsOrigins: [] });
      const { schema, subscribe, contextFactory } = yoga.getEnveloped({ caller: OPEN_CALLER });
      const args = { schema, document: parse('subscription { taskProgress(taskId: "t") { seq } }'), contextValue: await contextFactory() };
      const envelope = envelopeOf(subscribe, args);

      const rest = raw([{ data: { taskProgress: { seq: 2 } } }, new Error('internal failure')]);
      const results = await throughEnvelope(envelope, { value: unexpected() }, rest);
      const first = await results.next();
      expect(first.value?.errors?.[0]?.message).toBe('Unexpected error.');
      expect((await results.next()).value).toEqual({ data: { taskProgress: { seq: 2 } } });
      await expect(results.next()).rejects.toThrow('Unexpected error.');

      const failed = await throughEnvelope(envelope, { error: new Error('internal failure') }, raw([]));
      await expect(failed.next()).rejects.toThrow('Unexpected error.');
    } finally {
      await stack.close();
    }
  });
});
