/**
 * `GET /docs`: the REST API as a readable page, rendered from the OpenAPI document on the server
 * (no script or stylesheet from elsewhere, so it works offline and behind strict proxies).
 */

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

/** The HTML page for an OpenAPI document. */
export function renderDocs(doc: Record<string, unknown>): string {
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
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(info.title)}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}section{margin:2rem 0}
.m{font-size:.8em;padding:.1em .4em;border-radius:3px;color:#fff;background:#555}.get{background:#2a7}.post{background:#27c}
</style></head><body>
<h1>${escape(info.title)} <small>${escape(info.version)}</small></h1>
<p>${escape(info.description)}</p>
<p><a href="/graphql">GraphQL API (GraphiQL)</a> · <a href="/openapi.json">OpenAPI 3.1 document</a></p>
${sections.join('\n')}
</body></html>`;
}
