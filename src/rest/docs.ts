/**
 * `GET /docs`: Swagger UI on the OpenAPI document ("Try it out", "Authorize"), every asset served by
 * the service itself (see docs-assets.ts), so it works offline and no request leaves the origin.
 * Without JavaScript (and for curl) the same page holds the routes as a plain list rendered here.
 */
import type { DocsAssetUrls } from './docs-assets.js';

/**
 * The page's Content-Security-Policy: scripts and connections only to the service itself. Inline
 * styles stay allowed: Swagger UI and its syntax highlighter set style attributes.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  // data: for the icons inside Swagger's stylesheet, blob: for an image response shown in the page.
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Operation {
  summary?: string;
  parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: Record<string, unknown> }[];
  requestBody?: { content: Record<string, { schema?: { properties?: Record<string, Record<string, unknown>>; required?: string[] } }> };
  responses?: Record<string, { description?: string }>;
  /** The scope a key needs once keys exist (our extension). */
  'x-required-scope'?: string;
}

const escape = (s: unknown) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function constraints(schema: Record<string, unknown>): string {
  const parts: string[] = [];
  if (schema.type) parts.push(Array.isArray(schema.type) ? schema.type.join(' | ') : String(schema.type));
  if (schema.enum) parts.push((schema.enum as unknown[]).join(' | '));
  if (schema.minimum !== undefined || schema.maximum !== undefined) parts.push(`${schema.minimum ?? ''}–${schema.maximum ?? ''}`);
  if (schema.maxLength !== undefined) parts.push(`${schema.minLength ?? 0}–${schema.maxLength} characters`);
  if (schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
  return parts.join(', ');
}

/** The Swagger UI page for an OpenAPI document; `assets` are the hashed URLs it links. */
export function renderDocsPage(doc: Record<string, unknown>, assets: DocsAssetUrls): string {
  const info = doc.info as { title: string };
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(info.title)}</title>
<link rel="icon" type="image/png" href="${escape(assets.icon)}">
<link rel="stylesheet" href="${escape(assets.css)}">
<link rel="stylesheet" href="${escape(assets.ownCss)}">
</head><body>
<p class="docs-links"><a href="/graphql">GraphQL API (GraphiQL)</a> · <a href="/openapi.json">OpenAPI 3.1 document</a></p>
<div id="swagger-ui"></div>
<noscript><div class="static-docs">${renderStaticList(doc)}</div></noscript>
<script src="${escape(assets.js)}"></script>
<script src="${escape(assets.init)}"></script>
</body></html>`;
}

/** The routes as plain HTML (title, description, one section per operation): the no-script view. */
export function renderStaticList(doc: Record<string, unknown>): string {
  const info = doc.info as { title: string; version: string; description: string };
  const paths = doc.paths as Record<string, Record<string, Operation>>;
  const sections: string[] = [];
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const rows: string[] = [];
      for (const p of op.parameters ?? []) {
        rows.push(`<tr><td><code>${escape(p.name)}</code></td><td>${escape(p.in)}${p.required ? ', required' : ''}</td><td>${escape(constraints(p.schema ?? {}))}</td><td>${escape(p.description ?? '')}</td></tr>`);
      }
      for (const [type, body] of Object.entries(op.requestBody?.content ?? {})) {
        for (const [name, schema] of Object.entries(body.schema?.properties ?? {})) {
          const required = body.schema?.required?.includes(name) ? ', required' : '';
          rows.push(`<tr><td><code>${escape(name)}</code></td><td>${escape(type)}${required}</td><td>${escape(constraints(schema))}</td><td>${escape(schema.description ?? '')}</td></tr>`);
        }
      }
      const responses = Object.entries(op.responses ?? {})
        .map(([code, r]) => `<li><code>${escape(code)}</code> ${escape(r.description ?? '')}</li>`)
        .join('');
      sections.push(`<section><h2><span class="m ${escape(method)}">${escape(method.toUpperCase())}</span> <code>${escape(path)}</code></h2>
<p>${escape(op.summary ?? '')}</p>
${op['x-required-scope'] ? `<p>Needs an API key with the <code>${escape(op['x-required-scope'])}</code> scope (<code>Authorization: Bearer &lt;key&gt;</code> or <code>X-API-Key</code>) once keys exist.</p>` : ''}
${rows.length ? `<table><tr><th>name</th><th>where</th><th>type and limits</th><th>meaning</th></tr>${rows.join('')}</table>` : ''}
<ul>${responses}</ul></section>`);
    }
  }
  return `<h1>${escape(info.title)} <small>${escape(info.version)}</small></h1>
<p>${escape(info.description)}</p>
${sections.join('\n')}`;
}
