/**
 * API keys on GraphQL over HTTP (POST and GET, SSE included): the key a request presents
 * (`Authorization: Bearer <key>` or `X-API-Key`) is checked once, before the body is parsed. A
 * missing, wrong or revoked key (once any key exists) gets HTTP 401 with a GraphQL error whose
 * `extensions.code` is UNAUTHENTICATED and `WWW-Authenticate: Bearer`. The caller goes into the
 * server context, which is Yoga's initial context, so the context factory hands it to resolvers.
 *
 * The GraphiQL page, its assets, Yoga's health check and CORS preflights are answered by plugins
 * before this one and stay public; every other request under /graphql needs the key. Scopes are checked per field (scopes.ts), not here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Plugin } from 'graphql-yoga';
import { presentedKey } from '../auth/api-key.js';
import type { Authenticator } from '../auth/authenticator.js';
import { drainBody } from '../http/drain-body.js';
import type { AuthenticatedContext } from './context.js';

/** The challenge of a 401: RFC 6750's scheme, with the realm REST uses. */
export const WWW_AUTHENTICATE = 'Bearer realm="kontext"';

/** Options of {@link useApiKeys}. */
export interface ApiKeysOptions {
  /** Decides who a request is (everyone, while no key exists). */
  auth: Authenticator;
  /** Most bytes of a refused request's body read and thrown away before the 401 (an upload's worth). @default 1 MiB */
  maxDrainBytes?: number;
}

/** The plugin; put it after the GraphiQL assets plugin and before any plugin that reads the body. */
export function useApiKeys(options: ApiKeysOptions): Plugin {
  return {
    async onRequest({ request, serverContext, endResponse, fetchAPI }) {
      // Every request that gets here, whatever its path: Yoga also executes at `/graphql/`.
      const headers = request.headers;
      const result = await options.auth.authenticate(presentedKey(headers.get('authorization'), headers.get('x-api-key')));
      if (result.ok) {
        // Per request: the Node adapter makes a fresh server context for each one.
        (serverContext as AuthenticatedContext).caller = result.caller;
        return;
      }
      // A refused upload is thrown away unparsed, so a client still sending it sees the 401; a body
      // larger than any accepted one is not read: the answer comes at once and the connection closes.
      const { req, res } = serverContext as { req?: IncomingMessage; res?: ServerResponse };
      if (req && res && !(await drainBody(req, options.maxDrainBytes ?? 1024 * 1024))) res.shouldKeepAlive = false;
      const body = { errors: [{ message: result.message, extensions: { code: 'UNAUTHENTICATED' } }] };
      endResponse(
        new fetchAPI.Response(JSON.stringify(body), {
          status: 401,
          headers: { 'content-type': 'application/json; charset=utf-8', 'www-authenticate': WWW_AUTHENTICATE },
        }),
      );
    },
  };
}
