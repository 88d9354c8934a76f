/**
 * The "API key" field, shown once the service requires keys (or a key is stored, or one was
 * refused). The key is kept in local storage and only ever sent in headers, never in a URL.
 */
import { describedBy, Field } from './field';

/** Props of {@link ApiKeyField}. */
export interface ApiKeyFieldProps {
  apiKey: string;
  onChange: (key: string) => void;
  /** Why the service refused the key, shown under the field. */
  error: string | undefined;
}

/** The field. */
export function ApiKeyField({ apiKey, onChange, error }: ApiKeyFieldProps) {
  return (
    <div class="card key">
      <Field id="api-key" label="API key" error={error} hint="Kept in this browser's local storage; sent only in request headers.">
        <input
          id="api-key"
          type="password"
          autocomplete="off"
          spellcheck={false}
          placeholder="kx_…"
          value={apiKey}
          onInput={(e) => onChange(e.currentTarget.value.trim())}
          {...describedBy('api-key', error, true)}
        />
      </Field>
    </div>
  );
}
