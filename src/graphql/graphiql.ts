/**
 * GraphiQL without the 9 MB page: @graphql-yoga/render-graphiql inlines its bundle, styles, Monaco
 * workers and icon into every HTML answer. Here the HTML is a few KB and the same assets (from that
 * installed package, never a CDN: GPU boxes are often offline) are static files with content-hashed
 * names, cached for a year, compressed once per encoding (brotli or gzip, as the client accepts).
 * The bundle is loaded on the first GraphiQL request, so a service that nobody browses never holds it.
 */
import { chooseEncoding, encodedBody, etagMatches, IMMUTABLE_CACHE, type Encoding } from '../http/static-files.js';
import { createHash } from 'node:crypto';
import type { GraphiQLOptions, Plugin } from 'graphql-yoga';

/** Options of {@link createGraphiQL}. */
export interface GraphiQLAssetsOptions {
  /** URL path the assets are served under, e.g. `/graphql/graphiql`. */
  basePath: string;
}

/** Yoga's `renderGraphiQL` and the plugin serving the assets it links. */
export interface GraphiQL {
  /** Renders the small HTML page (Yoga's `renderGraphiQL` option). */
  render(options: GraphiQLOptions): Promise<string>;
  /** Serves GET/HEAD `<basePath>/<name>` (put it before plugins that parse requests). */
  plugin: Plugin;
}

/** One static file. */
interface Asset {
  type: string;
  body: Buffer;
  etag: string;
  /** Compressed bodies, made on first demand and kept. */
  encoded: Map<Encoding, Promise<Buffer>>;
}


/** The content-hashed asset names the page links. */
interface AssetNames {
  js: string;
  css: string;
  favicon: string;
  workers: { editorWorkerService: string; json: string; graphql: string };
}

const JS = 'text/javascript; charset=utf-8';


/** GraphiQL's page and assets under `options.basePath`. */
export function createGraphiQL(options: GraphiQLAssetsOptions): GraphiQL {
  const base = options.basePath.replace(/\/+$/, '');
  let loaded: Promise<{ names: AssetNames; assets: Map<string, Asset> }> | undefined;
  const load = () => (loaded ??= loadAssets());

  return {
    render: async (graphiqlOptions) => renderPage(base, (await load()).names, graphiqlOptions),
    plugin: {
      onRequest({ request, url, endResponse, fetchAPI }) {
        if (!url.pathname.startsWith(`${base}/`)) return;
        if (request.method !== 'GET' && request.method !== 'HEAD') {
          endResponse(new fetchAPI.Response(null, { status: 405, headers: { allow: 'GET, HEAD' } }));
          return;
        }
        const name = url.pathname.slice(base.length + 1);
        return load().then(async ({ assets }) => {
          const asset = assets.get(name);
          if (!asset) {
            endResponse(new fetchAPI.Response('Not Found', { status: 404, headers: { 'content-type': 'text/plain' } }));
            return;
          }
          const headers: Record<string, string> = { 'content-type': asset.type, 'cache-control': IMMUTABLE_CACHE, etag: asset.etag, vary: 'Accept-Encoding' };
          if (etagMatches(request.headers.get('if-none-match'), asset.etag)) {
            endResponse(new fetchAPI.Response(null, { status: 304, headers }));
            return;
          }
          const encoding = chooseEncoding(request.headers.get('accept-encoding'));
          // Node's Buffers from Buffer.from and zlib are plain ArrayBuffers; lib.dom's BodyInit wants that spelled out.
          const body = await encodedBody(asset, encoding);
          if (encoding) headers['content-encoding'] = encoding;
          headers['content-length'] = String(body.length);
          endResponse(new fetchAPI.Response(request.method === 'HEAD' ? null : (body as Uint8Array<ArrayBuffer>), { status: 200, headers }));
        });
      },
    },
  };
}

/** The installed bundle's parts as hashed static files. */
async function loadAssets(): Promise<{ names: AssetNames; assets: Map<string, Asset> }> {
  const bundle = await import('@graphql-yoga/render-graphiql/graphiql');
  const assets = new Map<string, Asset>();
  const add = (stem: string, ext: string, type: string, body: Buffer): string => {
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
    const name = `${stem}.${hash}.${ext}`;
    assets.set(name, { type, body, etag: `"${hash}"`, encoded: new Map() });
    return name;
  };
  const icon = /^data:([^;,]+);base64,(.*)$/s.exec(bundle.favicon);
  return {
    assets,
    names: {
      js: add('graphiql', 'js', JS, Buffer.from(bundle.js)),
      css: add('graphiql', 'css', 'text/css; charset=utf-8', Buffer.from(bundle.css)),
      favicon: icon ? add('favicon', 'ico', icon[1]!, Buffer.from(icon[2]!, 'base64')) : '',
      workers: {
        editorWorkerService: add('editor.worker', 'js', JS, Buffer.from(bundle.editorWorkerService)),
        json: add('json.worker', 'js', JS, Buffer.from(bundle.jsonWorker)),
        graphql: add('graphql.worker', 'js', JS, Buffer.from(bundle.graphqlWorker)),
      },
    },
  };
}

/** The page: what render-graphiql's template does, with links instead of inlined assets. */
function renderPage(base: string, names: AssetNames, options: GraphiQLOptions): string {
  const url = (name: string) => `${base}/${name}`;
  const workers = {
    editorWorkerService: url(names.workers.editorWorkerService),
    json: url(names.workers.json),
    graphql: url(names.workers.graphql),
  };
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${escapeHtml(options.title ?? 'GraphiQL')}</title>
    ${names.favicon ? `<link rel="icon" href="${url(names.favicon)}" />` : ''}
    <link rel="stylesheet" href="${url(names.css)}" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run this app.</noscript>
    <div id="root"></div>
    <script>
      // Set before the bundle runs: Monaco reads it when it loads.
      (() => {
        const workers = ${scriptJson(workers)};
        self['MonacoEnvironment'] = { globalAPI: false, getWorkerUrl: (moduleId, label) => workers[label] };
      })();
    </script>
    <script src="${url(names.js)}"></script>
    <script>
      YogaGraphiQL.renderYogaGraphiQL(window.document.querySelector('#root'), ${scriptJson(options)});
    </script>
  </body>
</html>
`;
}

/** JSON safe inside a <script> element (no `</script>`, no `<!--`). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
