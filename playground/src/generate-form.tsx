/**
 * The request: reference image, instruction, count, size, steps, guidance and seed, then Generate.
 * The browser's own range checks are off (noValidate): the service's ValidationError is the one
 * source of the limits, and its message is shown next to the field it names.
 */
import type { GenerateOptions, KontextClient, Task } from '@kontext-gateway/sdk';
import { useState } from 'preact/hooks';
import { errorOfResult, errorOfThrown, type FieldErrors } from './api-errors';
import { describedBy, Field } from './field';
import { ReferencePicker } from './reference-picker';

/** Props of {@link GenerateForm}. */
export interface GenerateFormProps {
  client: KontextClient;
  /** A task was created. */
  onStarted: (task: Task) => void;
  /** The key was refused: the message belongs next to the API key field. */
  onAuthError: (message: string) => void;
}

/** `auto` and Flux Kontext's preferred sizes (multiples of 16), a few of them. */
const SIZES = ['auto', '1024x1024', '1184x880', '880x1184', '1248x832', '832x1248', '1392x752', '752x1392', '512x512'];

/** The form. */
export function GenerateForm({ client, onStarted, onAuthError }: GenerateFormProps) {
  const [file, setFile] = useState<File | null>(null);
  const [description, setDescription] = useState('');
  const [count, setCount] = useState('1');
  const [size, setSize] = useState('1024x1024');
  const [steps, setSteps] = useState('20');
  const [guidance, setGuidance] = useState('2.5');
  const [seed, setSeed] = useState('');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [sending, setSending] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!file) return setErrors({ referenceImage: 'Choose or drop a reference image first.' });
    const options: GenerateOptions = { referenceImage: file, description, size: size.trim() };
    // An empty number field means "the service's default" (a random seed for the seed).
    const numbers = { count, steps, guidance, seed } as const;
    for (const [name, text] of Object.entries(numbers)) if (text.trim() !== '') options[name as keyof typeof numbers] = Number(text);
    setSending(true);
    setErrors({});
    try {
      const result = await client.generate(options);
      if (result.__typename === 'GenerateSuccess') onStarted(result.task);
      else setErrors(errorOfResult(result));
    } catch (err) {
      const found = errorOfThrown(err);
      if (found.apiKey) onAuthError(found.apiKey);
      else setErrors(found);
    } finally {
      setSending(false);
    }
  };

  const number = (id: string, value: string, set: (v: string) => void, attrs: Record<string, string | number>) => (
    <input id={id} type="number" inputMode="decimal" value={value} onInput={(e) => set(e.currentTarget.value)} {...attrs} {...describedBy(id, errors[id as keyof FieldErrors])} />
  );

  return (
    <form class="card generate" onSubmit={submit} noValidate aria-label="New task">
      <ReferencePicker file={file} onChange={(f) => (setFile(f), setErrors((e) => ({ ...e, referenceImage: undefined })))} error={errors.referenceImage} />
      <Field id="description" label="Instruction" error={errors.description}>
        <textarea
          id="description"
          rows={3}
          placeholder="make it night, keep the car"
          value={description}
          onInput={(e) => setDescription(e.currentTarget.value)}
          {...describedBy('description', errors.description)}
        />
      </Field>
      <div class="row">
        <Field id="count" label="Count" error={errors.count} class="small">
          {number('count', count, setCount, { min: 1, max: 4, step: 1 })}
        </Field>
        <Field id="size" label="Size" error={errors.size} class="wide">
          <input id="size" list="sizes" value={size} onInput={(e) => setSize(e.currentTarget.value)} autocomplete="off" spellcheck={false} {...describedBy('size', errors.size)} />
          <datalist id="sizes">
            {SIZES.map((s) => (
              <option key={s} value={s} />
            ))}
          </datalist>
        </Field>
        <Field id="steps" label="Steps" error={errors.steps} class="small">
          {number('steps', steps, setSteps, { min: 1, max: 100, step: 1 })}
        </Field>
        <Field id="guidance" label="Guidance" error={errors.guidance} class="small">
          {number('guidance', guidance, setGuidance, { min: 0, max: 20, step: 0.1 })}
        </Field>
        <Field id="seed" label="Seed" error={errors.seed}>
          {number('seed', seed, setSeed, { min: 0, step: 1, placeholder: 'random' })}
        </Field>
      </div>
      <div class="actions">
        <button type="submit" class="primary" disabled={sending} aria-describedby={errors.form ? 'form-error' : undefined}>
          Generate
        </button>
        {sending && <span class="muted">Uploading…</span>}
        {errors.form && (
          <p class="error" id="form-error" role="alert">
            {errors.form}
          </p>
        )}
      </div>
    </form>
  );
}
