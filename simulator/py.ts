/**
 * Python value semantics for the simulator. ComfyUI parses request bodies with `json.loads` and
 * answers with `json.dumps`, so ints and floats stay distinct (`cfg: 1` is stored and sent back as
 * `1.0`), dict keys keep insertion order (node ids like "6", "31" are not re-sorted as JS objects
 * would), ints are arbitrary precision (seeds up to 2^64-1) and error texts come from Python's
 * `int()` / `float()` / `str()`. This module models exactly that much of Python.
 */

/** A Python float. Plain JS numbers stand for Python ints (non-integral ones are printed as floats). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** A Python dict decoded from JSON: string keys in insertion order. */
export type PyDict = Map<string, PyValue>;

/** A JSON value as Python holds it. Large ints are `bigint`, floats are `PyFloat`. */
export type PyValue = null | boolean | number | bigint | string | PyFloat | PyValue[] | PyDict;

/** An exception as Python would raise it: `pyType` is the full type name, `message` is `str(ex)`. */
export class PyException extends Error {
  constructor(
    readonly pyType: string,
    message: string,
  ) {
    super(message);
    this.name = pyType;
  }
}

/** True for a Python dict (a parsed JSON object). */
export function isDict(v: unknown): v is PyDict {
  return v instanceof Map;
}

/** A prompt node's `inputs` dict (empty when missing or malformed, for nodes validation never reached). */
export function inputsOf(node: unknown): PyDict {
  const inputs = isDict(node) ? node.get('inputs') : undefined;
  return isDict(inputs) ? inputs : new Map();
}

// ---------------------------------------------------------------------------------------------
// json.loads
// ---------------------------------------------------------------------------------------------

const MAX_DEPTH = 900;

/** Parses JSON like Python's `json.loads` (NaN/Infinity allowed, floats kept as PyFloat). Throws SyntaxError. */
export function pyLoads(text: string): PyValue {
  const p = new JsonParser(text);
  p.ws();
  const v = p.value(0);
  p.ws();
  if (p.i !== text.length) throw new SyntaxError(`Extra data at char ${p.i}`);
  return v;
}

class JsonParser {
  i = 0;
  constructor(private readonly s: string) {}

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  fail(what: string): never {
    throw new SyntaxError(`${what} at char ${this.i}`);
  }

  value(depth: number): PyValue {
    if (depth > MAX_DEPTH) this.fail('maximum recursion depth exceeded');
    const s = this.s;
    const c = s[this.i];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.string();
    if (s.startsWith('true', this.i)) return (this.i += 4), true;
    if (s.startsWith('false', this.i)) return (this.i += 5), false;
    if (s.startsWith('null', this.i)) return (this.i += 4), null;
    if (s.startsWith('NaN', this.i)) return (this.i += 3), new PyFloat(NaN);
    if (s.startsWith('Infinity', this.i)) return (this.i += 8), new PyFloat(Infinity);
    if (s.startsWith('-Infinity', this.i)) return (this.i += 9), new PyFloat(-Infinity);
    return this.number();
  }

  number(): PyValue {
    const m = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/.exec(this.s.slice(this.i, this.i + 400));
    if (!m) this.fail('Expecting value');
    let text = m[0];
    if (text.length === 400) {
      // Very long literal: take the whole run of number characters.
      const m2 = /^-?\d+(\.\d+)?([eE][-+]?\d+)?/.exec(this.s.slice(this.i));
      text = m2 ? m2[0] : text;
    }
    this.i += text.length;
    if (m[1] !== undefined || m[2] !== undefined) return new PyFloat(Number(text));
    const n = Number(text);
    if (Number.isSafeInteger(n)) return n === 0 ? 0 : n;
    return BigInt(text);
  }

  string(): string {
    const s = this.s;
    this.i++; // opening quote
    let out = '';
    let start = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('Unterminated string');
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail('Invalid control character');
      if (c === 0x5c) {
        out += s.slice(start, this.i);
        const e = s[this.i + 1];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            const hex = s.slice(this.i + 2, this.i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('Invalid \\uXXXX escape');
            out += String.fromCharCode(parseInt(hex, 16));
            this.i += 4;
            break;
          }
          default:
            this.fail('Invalid \\escape');
        }
        this.i += 2;
        start = this.i;
        continue;
      }
      this.i++;
    }
  }

  array(depth: number): PyValue[] {
    this.i++;
    const out: PyValue[] = [];
    this.ws();
    if (this.s[this.i] === ']') return this.i++, out;
    for (;;) {
      this.ws();
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i];
      if (c === ',') { this.i++; continue; }
      if (c === ']') { this.i++; return out; }
      this.fail("Expecting ',' delimiter");
    }
  }

  object(depth: number): PyDict {
    this.i++;
    const out: PyDict = new Map();
    this.ws();
    if (this.s[this.i] === '}') return this.i++, out;
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail('Expecting property name enclosed in double quotes');
      const key = this.string();
      this.ws();
      if (this.s[this.i] !== ':') this.fail("Expecting ':' delimiter");
      this.i++;
      this.ws();
      out.set(key, this.value(depth + 1));
      this.ws();
      const c = this.s[this.i];
      if (c === ',') { this.i++; continue; }
      if (c === '}') { this.i++; return out; }
      this.fail("Expecting ',' delimiter");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// json.dumps (default separators ", " and ": ", ensure_ascii=True)
// ---------------------------------------------------------------------------------------------

/**
 * Serializes like Python's `json.dumps` with default options. Accepts PyValues and, for the
 * simulator's own replies, plain objects (`undefined` members are skipped, `undefined` → null).
 */
export function pyDumps(value: unknown): string {
  const parts: string[] = [];
  dumpInto(value, parts);
  return parts.join('');
}

function dumpInto(v: unknown, out: string[]): void {
  if (v === null || v === undefined) { out.push('null'); return; }
  if (v === true) { out.push('true'); return; }
  if (v === false) { out.push('false'); return; }
  if (typeof v === 'number') { out.push(Number.isInteger(v) ? intText(v) : floatJson(v)); return; }
  if (typeof v === 'bigint') { out.push(v.toString()); return; }
  if (typeof v === 'string') { out.push(jsonString(v)); return; }
  if (v instanceof PyFloat) { out.push(floatJson(v.value)); return; }
  if (Array.isArray(v)) {
    out.push('[');
    v.forEach((x, i) => {
      if (i > 0) out.push(', ');
      dumpInto(x, out);
    });
    out.push(']');
    return;
  }
  if (v instanceof Map) {
    out.push('{');
    let first = true;
    for (const [k, x] of v) {
      if (!first) out.push(', ');
      first = false;
      out.push(jsonString(String(k)), ': ');
      dumpInto(x, out);
    }
    out.push('}');
    return;
  }
  if (typeof v === 'object') {
    out.push('{');
    let first = true;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x === undefined) continue;
      if (!first) out.push(', ');
      first = false;
      out.push(jsonString(k), ': ');
      dumpInto(x, out);
    }
    out.push('}');
    return;
  }
  out.push(jsonString(String(v)));
}

function intText(n: number): string {
  // Integral JS numbers beyond 2^53 still print exactly as Python ints would.
  return Number.isSafeInteger(n) ? String(n === 0 ? 0 : n) : BigInt(n).toString();
}

function floatJson(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  return floatRepr(x);
}

/** Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant = '0', expText = '0'] = x.toExponential().split('e');
  const exp = parseInt(expText, 10);
  const sign = x < 0 ? '-' : '';
  const digits = mant.replace('-', '').replace('.', '');
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (exp >= 0) {
    if (digits.length <= exp + 1) return `${sign}${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
    return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  }
  return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
}

function jsonString(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i);
    start = i + 1;
    switch (c) {
      case 0x22: out += '\\"'; break;
      case 0x5c: out += '\\\\'; break;
      case 0x0a: out += '\\n'; break;
      case 0x0d: out += '\\r'; break;
      case 0x09: out += '\\t'; break;
      case 0x08: out += '\\b'; break;
      case 0x0c: out += '\\f'; break;
      default:
        // ensure_ascii: everything outside ' '..'~' as \uXXXX (astral chars as surrogate pairs)
        out += `\\u${c.toString(16).padStart(4, '0')}`;
    }
  }
  return out + s.slice(start) + '"';
}

// ---------------------------------------------------------------------------------------------
// str() / repr()
// ---------------------------------------------------------------------------------------------

/** Python `repr()` of a value. */
export function pyRepr(v: unknown): string {
  if (typeof v === 'string') return strRepr(v);
  return pyStr(v, true);
}

/** Python `str()` of a value (containers use repr for their items). */
export function pyStr(v: unknown, asRepr = false): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return Number.isInteger(v) ? intText(v) : floatRepr(v);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return asRepr ? strRepr(v) : v;
  if (v instanceof PyFloat) return floatRepr(v.value);
  if (Array.isArray(v)) return `[${v.map((x) => pyRepr(x)).join(', ')}]`;
  if (v instanceof Map) return `{${[...v].map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  if (typeof v === 'object') {
    const s = (v as { pyStr?: () => string }).pyStr;
    if (typeof s === 'function') return s.call(v);
    return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${strRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  }
  return String(v);
}

function strRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c < 0xa0)) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c === 0x2028 || c === 0x2029 || (c >= 0xd800 && c <= 0xdfff)) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + quote;
}

/** Python type name, as used in TypeError messages. */
export function pyTypeName(v: unknown): string {
  if (v === null || v === undefined) return 'NoneType';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof PyFloat) return 'float';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Map) return 'dict';
  return 'object';
}

// ---------------------------------------------------------------------------------------------
// int() / float() / bool()
// ---------------------------------------------------------------------------------------------

/** A numeric view of a Python number (bool counts as int); null when not a number. */
export function pyNumeric(v: unknown): number | bigint | null {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number' || typeof v === 'bigint') return v;
  if (v instanceof PyFloat) return v.value;
  return null;
}

/** Normalizes an exact integer to a JS number when safe, else bigint. */
export function normInt(b: bigint): number | bigint {
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

/** Python `int(v)`; throws PyException with Python's messages. */
export function pyInt(v: unknown): number | bigint {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') return Number.isInteger(v) ? v : intFromFloat(v);
  if (typeof v === 'bigint') return normInt(v);
  if (v instanceof PyFloat) return intFromFloat(v.value);
  if (typeof v === 'string') {
    const t = v.trim();
    if (/^[+-]?\d+(_\d+)*$/.test(t)) return normInt(BigInt(t.replace(/_/g, '')));
    throw new PyException('ValueError', `invalid literal for int() with base 10: ${strRepr(v)}`);
  }
  throw new PyException(
    'TypeError',
    `int() argument must be a string, a bytes-like object or a real number, not '${pyTypeName(v)}'`,
  );
}

function intFromFloat(x: number): number | bigint {
  if (Number.isNaN(x)) throw new PyException('ValueError', 'cannot convert float NaN to integer');
  if (!Number.isFinite(x)) throw new PyException('OverflowError', 'cannot convert float infinity to integer');
  const t = Math.trunc(x);
  return Number.isSafeInteger(t) ? (t === 0 ? 0 : t) : BigInt(t);
}

const FLOAT_RE = /^[+-]?(?:(?:\d(?:_?\d)*)?\.?\d(?:_?\d)*|\d(?:_?\d)*\.)(?:[eE][+-]?\d(?:_?\d)*)?$/;

/** Python `float(v)`; throws PyException with Python's messages. */
export function pyFloat(v: unknown): PyFloat {
  if (typeof v === 'boolean') return new PyFloat(v ? 1 : 0);
  if (typeof v === 'number') return new PyFloat(v);
  if (v instanceof PyFloat) return v;
  if (typeof v === 'bigint') {
    const x = Number(v);
    if (!Number.isFinite(x)) throw new PyException('OverflowError', 'int too large to convert to float');
    return new PyFloat(x);
  }
  if (typeof v === 'string') {
    const t = v.trim();
    const lower = t.toLowerCase().replace(/^[+-]/, '');
    const neg = t.startsWith('-');
    if (lower === 'inf' || lower === 'infinity') return new PyFloat(neg ? -Infinity : Infinity);
    if (lower === 'nan') return new PyFloat(NaN);
    if (FLOAT_RE.test(t)) return new PyFloat(Number(t.replace(/_/g, '')));
    throw new PyException('ValueError', `could not convert string to float: ${strRepr(v)}`);
  }
  throw new PyException('TypeError', `float() argument must be a string or a real number, not '${pyTypeName(v)}'`);
}

/** Python truthiness. */
export function pyBool(v: unknown): boolean {
  if (v === null || v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'bigint') return v !== 0n;
  if (v instanceof PyFloat) return v.value !== 0;
  if (typeof v === 'string') return v.length > 0;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Map) return v.size > 0;
  return true;
}

/** Python `a < b` for numbers (mixing int, bigint and float); NaN compares false. */
export function pyLess(a: number | bigint, b: number | bigint): boolean {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b;
  if (typeof a === 'number' && typeof b === 'number') return a < b;
  // Mixed: compare exactly when the float side is integral, else numerically.
  const fa = typeof a === 'number' ? a : null;
  const fb = typeof b === 'number' ? b : null;
  if (fa !== null && Number.isNaN(fa)) return false;
  if (fb !== null && Number.isNaN(fb)) return false;
  if (fa !== null && !Number.isFinite(fa)) return fa < 0;
  if (fb !== null && !Number.isFinite(fb)) return fb > 0;
  if (fa !== null && Number.isInteger(fa)) return BigInt(fa) < (b as bigint);
  if (fb !== null && Number.isInteger(fb)) return (a as bigint) < BigInt(fb);
  return Number(a) < Number(b);
}

/** Python `==` for JSON-ish values (1 == 1.0 == True, containers element-wise). */
export function pyEquals(a: unknown, b: unknown): boolean {
  const na = pyNumeric(a);
  const nb = pyNumeric(b);
  if (na !== null && nb !== null) return !pyLess(na, nb) && !pyLess(nb, na) && !isNaNNum(na) && !isNaNNum(nb);
  if (na !== null || nb !== null) return false;
  if (a === null || b === null) return a === b;
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => pyEquals(x, b[i]));
  if (a instanceof Map && b instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, x] of a) if (!b.has(k) || !pyEquals(x, b.get(k))) return false;
    return true;
  }
  return a === b;
}

function isNaNNum(n: number | bigint): boolean {
  return typeof n === 'number' && Number.isNaN(n);
}

/** Python `x in container` for list / str / dict containers; TypeError for others. */
export function pyIn(x: unknown, container: unknown): boolean {
  if (Array.isArray(container)) return container.some((c) => pyEquals(c, x));
  if (typeof container === 'string') {
    if (typeof x !== 'string') throw new PyException('TypeError', `'in <string>' requires string as left operand, not ${pyTypeName(x)}`);
    return container.includes(x);
  }
  if (container instanceof Map) return typeof x === 'string' && container.has(x);
  throw new PyException('TypeError', `argument of type '${pyTypeName(container)}' is not iterable`);
}

/** Python 3 `round(x)`: half to even. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** A plain JS number for arithmetic (NaN for non-numbers). */
export function toJsNumber(v: unknown): number {
  const n = pyNumeric(v);
  return n === null ? NaN : Number(n);
}
