/**
 * ComfyUI's prompt validation (`execution.validate_prompt` / `validate_inputs`, docs/comfyui-protocol.md §6):
 * the same stages, error objects, conversions written back into the prompt, the partial-200
 * behaviour and the over-reporting of `dependent_outputs`.
 */
import { type ClassContext, getInputInfo, NODE_CLASSES, type NodeClass } from './node-classes.js';
import {
  PyException,
  type PyDict,
  type PyValue,
  isDict,
  pyBool,
  pyFloat,
  pyIn,
  pyInt,
  pyLess,
  pyNumeric,
  pyRepr,
  pyStr,
  pyEquals,
  pyTypeName,
} from './py.js';

/** One `{type, message, details, extra_info}` error. */
export type ErrorItem = PyDict;

/** The outcome of validate_prompt. */
export interface ValidationResult {
  ok: boolean;
  /** The top-level error of a 400 (null when ok). */
  error: PyDict | null;
  /** Output node ids that passed, in prompt order. */
  goodOutputs: string[];
  /** `node_errors`, keyed by node id in the order ComfyUI adds them. */
  nodeErrors: PyDict;
}

const TRACEBACK_VALIDATE = [
  '  File "${COMFYUI_DIR}/execution.py", line 1027, in validate_inputs\n    o_class_type = prompt[o_id][\'class_type\']\n                   ~~~~~~^^^^^^\n',
];

function item(type: string, message: string, details: string, extra: Array<[string, PyValue]>): ErrorItem {
  return new Map<string, PyValue>([
    ['type', type],
    ['message', message],
    ['details', details],
    ['extra_info', new Map(extra)],
  ]);
}

function simpleError(type: string, message: string, details: string): PyDict {
  return item(type, message, details, []);
}

/** `[type, options]` as ComfyUI reports an input's configuration. */
function inputConfig(type: PyValue, options: PyDict): PyValue[] {
  return [type, options];
}

type Verdict = { valid: boolean; errors: ErrorItem[] };

/**
 * Validates an API prompt. Values are converted in place (INT/FLOAT/STRING/BOOLEAN). Throws a
 * PyException where ComfyUI would answer 500 (a prompt that is not a dict, a node that is not one).
 */
export function validatePrompt(prompt: PyValue, partialTargets: PyValue | undefined, ctx: ClassContext): ValidationResult {
  if (!isDict(prompt)) {
    if ((typeof prompt === 'string' || Array.isArray(prompt)) && prompt.length === 0) {
      return { ok: false, error: simpleError('prompt_no_outputs', 'Prompt has no outputs', ''), goodOutputs: [], nodeErrors: new Map() };
    }
    throw new PyException('TypeError', `'${pyTypeName(prompt)}' object is not subscriptable`);
  }
  const outputs: string[] = [];
  for (const [id, node] of prompt) {
    if (!isDict(node)) {
      if ((typeof node === 'string' || Array.isArray(node)) && pyIn('class_type', node)) {
        throw new PyException('TypeError', 'string indices must be integers');
      }
      if (typeof node === 'string' || Array.isArray(node)) return invalidPrompt('Cannot execute because a node is missing the class_type property.', id);
      throw new PyException('TypeError', `argument of type '${pyTypeName(node)}' is not iterable`);
    }
    if (!node.has('class_type')) return invalidPrompt('Cannot execute because a node is missing the class_type property.', id);
    const classType = node.get('class_type') ?? null;
    const cls = typeof classType === 'string' ? NODE_CLASSES.get(classType) : undefined;
    if (!cls) return invalidPrompt(`Cannot execute because node ${pyStr(classType)} does not exist.`, id);
    if (cls.outputNode && (partialTargets === undefined || partialTargets === null || pyIn(id, partialTargets))) outputs.push(id);
  }
  if (outputs.length === 0) {
    return { ok: false, error: simpleError('prompt_no_outputs', 'Prompt has no outputs', ''), goodOutputs: [], nodeErrors: new Map() };
  }

  const v = new Validator(prompt, ctx);
  const good: string[] = [];
  const failed: Array<[string, ErrorItem[]]> = [];
  const nodeErrors: PyDict = new Map();
  for (const o of outputs) {
    let verdict: Verdict;
    try {
      verdict = v.validate(o);
    } catch (ex) {
      const e = asPy(ex);
      verdict = {
        valid: false,
        errors: [
          item('exception_during_validation', 'Exception when validating node', e.message, [
            ['exception_type', e.pyType],
            ['traceback', TRACEBACK_VALIDATE],
          ]),
        ],
      };
      v.validated.set(o, verdict);
    }
    if (verdict.valid) {
      good.push(o);
      continue;
    }
    failed.push([o, verdict.errors]);
    // ComfyUI adds this output to every node that has errors so far, related or not.
    for (const [nodeId, result] of v.validated) {
      if (result.valid || result.errors.length === 0) continue;
      let entry = nodeErrors.get(nodeId) as PyDict | undefined;
      if (!entry) {
        const node = prompt.get(nodeId) as PyDict;
        entry = new Map<string, PyValue>([
          ['errors', result.errors],
          ['dependent_outputs', []],
          ['class_type', node.get('class_type') ?? null],
        ]);
        nodeErrors.set(nodeId, entry);
      }
      (entry.get('dependent_outputs') as PyValue[]).push(o);
    }
  }
  if (good.length === 0) {
    const details = failed.flatMap(([, errs]) => errs.map((e) => `${String(e.get('message'))}: ${String(e.get('details'))}`)).join('\n');
    return {
      ok: false,
      error: simpleError('prompt_outputs_failed_validation', 'Prompt outputs failed validation', details),
      goodOutputs: [],
      nodeErrors,
    };
  }
  return { ok: true, error: null, goodOutputs: good, nodeErrors };
}

function invalidPrompt(message: string, id: string): ValidationResult {
  return {
    ok: false,
    error: item('invalid_prompt', message, `Node ID '#${id}'`, []),
    goodOutputs: [],
    nodeErrors: new Map(),
  };
}

function asPy(ex: unknown): PyException {
  if (ex instanceof PyException) return ex;
  return new PyException('Exception', ex instanceof Error ? ex.message : String(ex));
}

/** Python's `prompt[key]` on the prompt dict: KeyError (str() is repr of the key) or TypeError. */
function lookupNode(prompt: PyDict, key: PyValue): PyDict {
  if (Array.isArray(key) || isDict(key)) throw new PyException('TypeError', `unhashable type: '${pyTypeName(key)}'`);
  if (typeof key === 'string') {
    const n = prompt.get(key);
    if (isDict(n)) return n;
  }
  throw new PyException('KeyError', pyRepr(key));
}

/** Python's `RETURN_TYPES[index]`. */
function returnType(cls: NodeClass, index: PyValue): string {
  if (typeof index !== 'number' && typeof index !== 'boolean' && typeof index !== 'bigint') {
    throw new PyException('TypeError', `tuple indices must be integers or slices, not ${pyTypeName(index)}`);
  }
  let i = Number(index === true ? 1 : index === false ? 0 : index);
  if (i < 0) i += cls.returnTypes.length;
  const t = cls.returnTypes[i];
  if (t === undefined) throw new PyException('IndexError', 'tuple index out of range');
  return t;
}

/** ComfyUI's validate_node_input: equal, or comma-separated lists that overlap. */
export function typesMatch(received: PyValue, expected: PyValue): boolean {
  if (typeof received === 'string' && typeof expected === 'string') {
    if (received === expected) return true;
    const a = new Set(received.split(',').map((t) => t.trim()));
    return expected.split(',').some((t) => a.has(t.trim()));
  }
  return pyEquals(received, expected) && typeof received === typeof expected;
}

class Validator {
  readonly validated = new Map<string, Verdict>();
  private readonly stack = new Set<string>();

  constructor(
    private readonly prompt: PyDict,
    private readonly ctx: ClassContext,
  ) {}

  validate(id: string): Verdict {
    const done = this.validated.get(id);
    if (done) return done;
    if (this.stack.has(id)) {
      // A cycle recurses until Python's recursion limit; report it the way that surfaces.
      throw new PyException('RecursionError', 'maximum recursion depth exceeded');
    }
    this.stack.add(id);
    try {
      return this.validateNode(id);
    } finally {
      this.stack.delete(id);
    }
  }

  private validateNode(id: string): Verdict {
    const node = this.prompt.get(id) as PyDict;
    const inputsRaw = node.get('inputs');
    if (!isDict(inputsRaw)) throw new PyException(inputsRaw === undefined ? 'KeyError' : 'TypeError', inputsRaw === undefined ? "'inputs'" : `'${pyTypeName(inputsRaw)}' object is not subscriptable`);
    const inputs = inputsRaw;
    const cls = NODE_CLASSES.get(node.get('class_type') as string) as NodeClass;
    const types = cls.inputTypes(this.ctx);
    const validateArgs = cls.validateInputs?.args ?? [];
    const errors: ErrorItem[] = [];
    let valid = true;
    const names = [...types.required.keys(), ...(types.optional ? [...types.optional.keys()] : [])];

    for (const x of names) {
      const info = getInputInfo(types, x);
      if (!info) continue;
      const config = inputConfig(info.type, info.options);
      if (!inputs.has(x)) {
        if (info.category === 'required') {
          errors.push(item('required_input_missing', 'Required input is missing', x, [['input_name', x]]));
        }
        continue;
      }
      let val = inputs.get(x) as PyValue;
      if (Array.isArray(val)) {
        if (val.length !== 2) {
          errors.push(
            item('bad_linked_input', 'Bad linked input, must be a length-2 list of [node_id, slot_index]', x, [
              ['input_name', x],
              ['input_config', config],
              ['received_value', val],
            ]),
          );
          continue;
        }
        const oId = val[0] as PyValue;
        const linked = lookupNode(this.prompt, oId);
        const linkedCls = NODE_CLASSES.get(linked.get('class_type') as string) as NodeClass;
        const received = returnType(linkedCls, val[1] as PyValue);
        if (!validateArgs.includes('input_types') && !typesMatch(received, info.type)) {
          errors.push(
            item('return_type_mismatch', 'Return type mismatch between linked nodes', `${x}, received_type(${received}) mismatch input_type(${pyStr(info.type)})`, [
              ['input_name', x],
              ['input_config', config],
              ['received_type', received],
              ['linked_node', val],
            ]),
          );
          continue;
        }
        const linkedId = oId as string;
        try {
          const r = this.validate(linkedId);
          if (!r.valid) valid = false;
        } catch (ex) {
          const e = asPy(ex);
          valid = false;
          this.validated.set(linkedId, {
            valid: false,
            errors: [
              item('exception_during_inner_validation', 'Exception when validating inner node', e.message, [
                ['input_name', x],
                ['input_config', config],
                ['exception_message', e.message],
                ['exception_type', e.pyType],
                ['traceback', TRACEBACK_VALIDATE],
                ['linked_node', val],
              ]),
            ],
          });
        }
        continue;
      }

      try {
        if (isDict(val) && val.has('__value__')) {
          val = val.get('__value__') as PyValue;
          inputs.set(x, val);
        }
        if (info.type === 'INT') val = pyInt(val);
        else if (info.type === 'FLOAT') val = pyFloat(val);
        else if (info.type === 'STRING') val = pyStr(val);
        else if (info.type === 'BOOLEAN') val = pyBool(val);
        if (info.type === 'INT' || info.type === 'FLOAT' || info.type === 'STRING' || info.type === 'BOOLEAN') inputs.set(x, val);
      } catch (ex) {
        const e = asPy(ex);
        errors.push(
          item('invalid_input_type', `Failed to convert an input value to a ${pyStr(info.type)} value`, `${x}, ${pyStr(val)}, ${e.message}`, [
            ['input_name', x],
            ['input_config', config],
            ['received_value', val],
            ['exception_message', e.message],
          ]),
        );
        continue;
      }

      if (!validateArgs.includes(x)) {
        const min = info.options.get('min');
        const max = info.options.get('max');
        if (min !== undefined && lessThan(val, min)) {
          errors.push(
            item('value_smaller_than_min', `Value ${pyStr(val)} smaller than min of ${pyStr(min)}`, x, [
              ['input_name', x],
              ['input_config', config],
              ['received_value', val],
            ]),
          );
          continue;
        }
        if (max !== undefined && lessThan(max, val)) {
          errors.push(
            item('value_bigger_than_max', `Value ${pyStr(val)} bigger than max of ${pyStr(max)}`, x, [
              ['input_name', x],
              ['input_config', config],
              ['received_value', val],
            ]),
          );
          continue;
        }
        if (Array.isArray(info.type) && !pyIn(val, info.type)) {
          const big = info.type.length > 20;
          const listInfo = big ? `(list of length ${info.type.length})` : pyStr(info.type);
          errors.push(
            item('value_not_in_list', 'Value not in list', `${x}: '${pyStr(val)}' not in ${listInfo}`, [
              ['input_name', x],
              ['input_config', big ? null : config],
              ['received_value', val],
            ]),
          );
          continue;
        }
      }
    }

    if (cls.validateInputs) {
      const values = new Map<string, unknown>();
      for (const name of cls.validateInputs.args) {
        if (!inputs.has(name)) continue;
        const v = inputs.get(name);
        // A linked value is not available at validation time: ComfyUI passes None.
        values.set(name, Array.isArray(v) ? null : v);
      }
      const r = cls.validateInputs.fn(values, this.ctx);
      if (r !== true) {
        for (const x of values.keys()) {
          errors.push(item('custom_validation_failed', 'Custom validation failed for node', r === false ? x : `${x} - ${r}`, [['input_name', x]]));
        }
      }
    }

    const verdict: Verdict = errors.length > 0 || !valid ? { valid: false, errors } : { valid: true, errors: [] };
    this.validated.set(id, verdict);
    return verdict;
  }
}

/** Python `a < b` where either side may be a non-number (comparing str with int raises TypeError). */
function lessThan(a: PyValue, b: PyValue): boolean {
  const na = pyNumeric(a);
  const nb = pyNumeric(b);
  if (na !== null && nb !== null) return pyLess(na, nb);
  if (typeof a === 'string' && typeof b === 'string') return a < b;
  throw new PyException('TypeError', `'<' not supported between instances of '${pyTypeName(a)}' and '${pyTypeName(b)}'`);
}
