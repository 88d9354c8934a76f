/**
 * The static files of `/docs`: Swagger UI's bundle, stylesheet and icon from the installed
 * `swagger-ui-dist` (never a CDN: GPU boxes are often offline), plus our own start script and
 * stylesheet. Each is served under `/docs/assets/` with a content-hashed name, cached for a year,
 * and compressed once per encoding (brotli or gzip, as the client accepts). Nothing is read until
 * the first docs request, so a service that nobody browses never holds the 1.8 MB bundle.
 */
import { encodedBody, IMMUTABLE_CACHE, sendStaticFile, type Encoding } from '../http/static-files.js';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendDetail } from './respond.js';

/** URL path the assets live under. */
export const DOCS_ASSETS_PATH = '/docs/assets';

/** The hashed URLs the page links. */
export interface DocsAssetUrls {
  js: string;
  init: string;
  css: string;
  ownCss: string;
  icon: string;
}


interface Asset {
  type: string;
  body: Buffer;
  etag: string;
  /** Compressed bodies, made on first demand and kept. */
  encoded: Map<Encoding, Promise<Buffer>>;
}

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';


/**
 * Starts Swagger UI on the service's own document. An external file, not an inline script, so the
 * page's Content-Security-Policy can forbid inline scripts. `validatorUrl: null`: no badge fetched
 * from validator.swagger.io. BaseLayout: no top bar whose URL box would load other documents.
 * Swagger UI fills every form field of "Try it out" with a sample (\`string\`, a maximum, an
 * example.com URL), which would send an idempotency key, a seed or a webhook the user never typed:
 * optional fields without a default start empty instead (an empty field is not sent).
 */
const INIT_SCRIPT = `(function () {
  function blankOptionalFields(doc) {
    Object.values(doc.paths || {}).forEach(function (methods) {
      Object.values(methods).forEach(function (op) {
        var content = (op && op.requestBody && op.requestBody.content) || {};
        Object.keys(content).forEach(function (type) {
          if (type !== 'multipart/form-data' && type !== 'application/x-www-form-urlencoded') return;
          var schema = content[type].schema || {};
          var required = schema.required || [];
          Object.keys(schema.properties || {}).forEach(function (name) {
            var p = schema.properties[name];
            var sampled = 'default' in p || 'example' in p || 'examples' in p || 'const' in p || p.format === 'binary';
            if (required.indexOf(name) < 0 && !sampled) p.examples = [''];
          });
        });
      });
    });
    return doc;
  }
  function start(spec) {
    window.ui = SwaggerUIBundle({
      spec: spec,
      dom_id: '#swagger-ui',
      validatorUrl: null,
      deepLinking: true,
      layout: 'BaseLayout',
      presets: [SwaggerUIBundle.presets.apis],
      displayRequestDuration: true,
      persistAuthorization: false,
      tryItOutEnabled: false
    });
  }
  fetch('/openapi.json', { headers: { accept: 'application/json' } })
    .then(function (res) {
      if (!res.ok) throw new Error('GET /openapi.json answered ' + res.status);
      return res.json();
    })
    .then(function (doc) { start(blankOptionalFields(doc)); })
    .catch(function (err) {
      document.getElementById('swagger-ui').textContent = 'Could not load the API description: ' + err.message;
    });
})();
`;

/** The page's own rules: the background Swagger's standalone page has, and the no-script list. */
const OWN_CSS = `html{box-sizing:border-box;overflow-y:scroll}*,*:before,*:after{box-sizing:inherit}
body{margin:0;background:#fafafa}
.static-docs{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
.static-docs code{background:#f3f3f3;padding:0 .25em;border-radius:3px}.static-docs table{border-collapse:collapse;width:100%}
.static-docs td,.static-docs th{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}.static-docs section{margin:2rem 0}
.static-docs .m{font-size:.8em;padding:.1em .4em;border-radius:3px;color:#fff;background:#555}.static-docs .get{background:#2a7}.static-docs .post{background:#27c}
.docs-links{font:14px/1.5 sans-serif;max-width:1460px;margin:0 auto;padding:.75rem 20px 0;color:#3b4151}
`;

/** Serves the docs assets; `urls()` loads them on first use. */
export class DocsAssets {
  private loaded: Promise<{ urls: DocsAssetUrls; assets: Map<string, Asset> }> | undefined;

  /** The hashed URLs of the page's assets (reads them on the first call). */
  async urls(): Promise<DocsAssetUrls> {
    return (await this.load()).urls;
  }

  /** Answers GET/HEAD `/docs/assets/<name>`: 200 (compressed if accepted), 304, or 404. */
  async serve(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const asset = (await this.load()).assets.get(name);
    req.resume();
    if (!asset) return sendDetail(res, 404, 'Not Found');
    await sendStaticFile(req, res, {
      type: asset.type,
      etag: asset.etag,
      body: (encoding) => encodedBody(asset, encoding),
      // Images are compressed already; text is worth it (the bundle goes from 1.8 MB to about 0.4).
      compressible: !asset.type.startsWith('image/'),
    }, IMMUTABLE_CACHE);
  }

  private load() {
    // A failed read (a broken install) is not kept: the next request tries again and says why.
    this.loaded ??= loadAssets().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }
}

async function loadAssets(): Promise<{ urls: DocsAssetUrls; assets: Map<string, Asset> }> {
  const dir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const [bundle, css, icon] = await Promise.all(['swagger-ui-bundle.js', 'swagger-ui.css', 'favicon-32x32.png'].map((f) => readFile(join(dir, f))));
  const assets = new Map<string, Asset>();
  const add = (stem: string, ext: string, type: string, body: Buffer): string => {
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
    const name = `${stem}.${hash}.${ext}`;
    assets.set(name, { type, body, etag: `"${hash}"`, encoded: new Map() });
    return `${DOCS_ASSETS_PATH}/${name}`;
  };
  return {
    assets,
    urls: {
      js: add('swagger-ui-bundle', 'js', JS, bundle!),
      init: add('docs-init', 'js', JS, Buffer.from(INIT_SCRIPT)),
      css: add('swagger-ui', 'css', CSS, css!),
      ownCss: add('docs', 'css', CSS, Buffer.from(OWN_CSS)),
      icon: add('favicon-32x32', 'png', 'image/png', icon!),
    },
  };
}

