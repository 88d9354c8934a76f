/**
 * Builds the playground into `playground/dist/`: `index.html` (served at `/`, revalidated every time)
 * and content-hashed files under `assets/` (served at `/playground/assets/`, cached for a year). Every
 * text file is also written brotli- and gzip-compressed beside itself (`.br`, `.gz`), so the service
 * sends compressed bytes without compressing at run time (src/rest/playground.ts).
 *
 * `npm run dev:playground` serves it with hot reload on :5173 and forwards the API to KONTEXT_URL
 * (default http://127.0.0.1:9000, e.g. `npm run demo`).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';
import { defaultClientConditions, defineConfig, type Plugin, type ProxyOptions } from 'vite';

const COMPRESSIBLE = /\.(?:html|js|mjs|css|svg|json|txt)$/;

/** Writes `<file>.br` (quality 11: built once, sent often) and `<file>.gz` next to each text file. */
function precompress(): Plugin {
  return {
    name: 'kontext:precompress',
    apply: 'build',
    async writeBundle(options, bundle) {
      const dir = options.dir!;
      const writes = Object.values(bundle)
        .filter((file) => COMPRESSIBLE.test(file.fileName))
        .flatMap((file) => {
          const body = Buffer.from(file.type === 'chunk' ? file.code : file.source);
          const path = join(dir, file.fileName);
          return [
            writeFile(`${path}.br`, brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } })),
            writeFile(`${path}.gz`, gzipSync(body, { level: 9 })),
          ];
        });
      await Promise.all(writes);
    },
  };
}

const service = process.env.KONTEXT_URL ?? 'http://127.0.0.1:9000';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/playground/',
  // Preact's automatic JSX runtime; no plugin needed for a production build.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  resolve: {
    // The SDK from its TypeScript sources (the workspace condition), so no SDK build is needed first.
    conditions: ['@kontext-gateway/source', ...defaultClientConditions],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // One small bundle: nothing to gain from inlining the few bytes of CSS into JS or the reverse.
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
  plugins: [precompress()],
  server: {
    port: 5173,
    proxy: Object.fromEntries(
      ['/graphql', '/api', '/health'].map((path): [string, ProxyOptions] => [
        path,
        {
          target: service,
          ws: path === '/graphql',
          changeOrigin: true,
          // The service refuses browser origins it does not know (CORS_ORIGINS); the dev server is a proxy, not a page.
          configure: (proxy) => proxy.on('proxyReq', (req) => req.removeHeader('origin')),
        },
      ]),
    ),
  },
});
