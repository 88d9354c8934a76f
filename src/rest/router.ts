/**
 * The REST routes of the old FastAPI service, in front of GraphQL. Each route is a thin call into
 * the task service; unknown paths get FastAPI's 404. Once an API key exists, the task routes need
 * one (checked here, before a route reads its body); health, readiness, the docs and the playground
 * (`/`, whose API calls carry the user's key) stay public.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Authenticator } from '../auth/authenticator.js';
import type { UrlSigner } from '../auth/url-signer.js';
import type { DiskSpace } from '../db/disk-space.js';
import type { WriteHealth } from '../db/write-health.js';
import type { TaskService } from '../tasks/task-service.js';
import type { WorkerPool } from '../tasks/worker-pool.js';
import { authorize } from './authenticate.js';
import { handleGenerateImage, uploadBytes } from './generate-image.js';
import { handleHealth, handleReady, type ReplicaInfo } from './health.js';
import { handleImage } from './image.js';
import { DOCS_CSP, renderDocsPage } from './docs.js';
import { DocsAssets } from './docs-assets.js';
import { openApiDocument } from './openapi.js';
import { PlaygroundAssets } from './playground.js';
import { sendDetail, sendJson } from './respond.js';
import { handleTaskStatus } from './task-status.js';

/** Swagger UI's files, shared by every app in the process: they never change while it runs. */
const docsAssets = new DocsAssets();
/** The built playground (`/`), read on first use and kept, like the docs assets. */
const playground = new PlaygroundAssets();

/** What the routes need. */
export interface RestOptions {
  service: TaskService;
  pool: WorkerPool;
  maxFileSize: number;
  publicUrl: string | undefined;
  version: string;
  startedAt: number;
  /** /health shows worker URLs, queues, devices and errors (HEALTH_DETAILS). @default false */
  healthDetails?: boolean;
  /** This replica's id, database and Redis, for /health. @default undefined (not reported) */
  replica?: ReplicaInfo;
  /** Whether the database takes writes (/ready, /health). @default undefined (not reported) */
  writeHealth?: WriteHealth;
  /** Free space where DATA_DIR is (/ready). @default undefined (not checked) */
  diskSpace?: DiskSpace;
  /** Who a request is, from its API key (everyone, while no key exists). */
  auth: Authenticator;
  /** Signs the image URLs handed out once keys exist, and checks them on the image route. */
  signer: UrlSigner;
}

/** Handles a REST request; resolves false when the path is not a REST route. */
export async function handleRest(req: IncomingMessage, res: ServerResponse, options: RestOptions): Promise<boolean> {
  const raw = req.url ?? '/';
  // Parsing a URL cost ~1 us of every request; a plain path is its own pathname and has no query.
  const url = PLAIN_PATH.test(raw) ? undefined : new URL(raw, 'http://local');
  const path = url ? url.pathname : raw;
  const method = req.method ?? 'GET';
  const route = match(method, path);
  if (!route) return false;
  if (route.name === 'method-not-allowed') {
    sendDetail(res, 405, 'Method Not Allowed');
    req.resume();
    return true;
  }
  const { service, publicUrl, auth, signer } = options;
  switch (route.name) {
    case 'health':
      await handleHealth(res, {
        pool: options.pool,
        service,
        auth,
        version: options.version,
        startedAt: options.startedAt,
        details: options.healthDetails ?? false,
        ...(options.writeHealth ? { writeHealth: options.writeHealth } : {}),
        ...(options.replica ? { replica: options.replica } : {}),
      });
      break;
    case 'ready':
      await handleReady(res, options.pool, options.writeHealth, options.diskSpace);
      break;
    case 'generate': {
      const caller = await authorize(req, res, auth, 'generate', uploadBytes(options.maxFileSize));
      if (caller) await handleGenerateImage(req, res, { service, maxFileSize: options.maxFileSize, publicUrl, caller, signer });
      break;
    }
    case 'status':
    case 'cancel': {
      // Cancelling stops work on the GPUs: it needs what starting work needs.
      const authorized = authorize(req, res, auth, route.name === 'cancel' ? 'generate' : 'read');
      const caller = authorized instanceof Promise ? await authorized : authorized;
      if (caller) await handleTaskStatus(req, res, route.id!, { service, publicUrl, signer, cancel: route.name === 'cancel', caller });
      break;
    }
    case 'image':
      // A key or a signed URL: decided by the route, which knows the task and index signed.
      await handleImage(req, res, route.id!, url ? url.searchParams : new URLSearchParams(), { service, auth, signer });
      break;
    case 'openapi':
      sendJson(res, 200, openApiDocument(options.version));
      break;
    case 'docs': {
      const html = renderDocsPage(openApiDocument(options.version), await docsAssets.urls());
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(html),
        // The page names hashed assets that change with the installed Swagger UI: always revalidate.
        'cache-control': 'no-cache',
        'content-security-policy': DOCS_CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
      res.end(method === 'HEAD' ? undefined : html);
      break;
    }
    case 'docs-asset':
      await docsAssets.serve(req, res, route.id!);
      break;
    case 'playground':
      // Public like /docs: a static page; every API call it makes carries the user's key.
      await playground.servePage(req, res, publicUrl);
      break;
    case 'playground-asset':
      await playground.serveAsset(req, res, route.id!);
      break;
  }
  return true;
}

/**
 * A path WHATWG URL parsing leaves as it is: `/`-separated segments of letters, digits, `_` and
 * `-` (no query, escapes, dot segments, backslashes or empty segments), optionally ending in `/`.
 */
const PLAIN_PATH = /^(?:\/[\w-]+)*\/?$/;

type RouteName = 'health' | 'ready' | 'generate' | 'status' | 'cancel' | 'image' | 'openapi' | 'docs' | 'docs-asset' | 'playground' | 'playground-asset';

const ROUTES: { method: string[]; pattern: RegExp; name: RouteName }[] = [
  { method: ['GET'], pattern: /^\/health$/, name: 'health' },
  { method: ['GET'], pattern: /^\/ready$/, name: 'ready' },
  { method: ['POST'], pattern: /^\/generate-image$/, name: 'generate' },
  { method: ['GET'], pattern: /^\/api\/task-status\/([^/]+)$/, name: 'status' },
  { method: ['POST'], pattern: /^\/api\/task\/([^/]+)\/cancel$/, name: 'cancel' },
  { method: ['GET', 'HEAD'], pattern: /^\/api\/image\/([^/]+)$/, name: 'image' },
  { method: ['GET'], pattern: /^\/openapi\.json$/, name: 'openapi' },
  { method: ['GET', 'HEAD'], pattern: /^\/docs\/?$/, name: 'docs' },
  { method: ['GET', 'HEAD'], pattern: /^\/docs\/assets\/([^/]+)$/, name: 'docs-asset' },
  { method: ['GET', 'HEAD'], pattern: /^\/$/, name: 'playground' },
  { method: ['GET', 'HEAD'], pattern: /^\/playground\/assets\/([^/]+)$/, name: 'playground-asset' },
];

function match(method: string, path: string): { name: RouteName | 'method-not-allowed'; id?: string } | undefined {
  let pathKnown = false;
  for (const r of ROUTES) {
    const m = r.pattern.exec(path);
    if (m) pathKnown = true;
    if (!m || !r.method.includes(method)) continue;
    if (m[1] === undefined) return { name: r.name };
    try {
      return { name: r.name, id: decodeURIComponent(m[1]) };
    } catch {
      return { name: r.name, id: m[1] }; // malformed escapes: an id that matches no task
    }
  }
  return pathKnown ? { name: 'method-not-allowed' } : undefined;
}
