/**
 * A labelled form field with its API error right below it: the input gets `aria-invalid` and
 * `aria-describedby` pointing at the message, so screen readers read the error with the field.
 */
import type { ComponentChildren } from 'preact';

/** Props of {@link Field}. */
export interface FieldProps {
  /** The input's id; the label points at it. */
  id: string;
  label: string;
  /** The API's message for this field, if any. */
  error?: string | undefined;
  /** A short line under the input. @default none */
  hint?: string;
  /** Extra class on the wrapper. @default none */
  class?: string;
  children: ComponentChildren;
}

/** Wrapper: label, the input (children), hint and error. */
export function Field({ id, label, error, hint, children, class: className }: FieldProps) {
  return (
    <div class={`field${className ? ` ${className}` : ''}${error ? ' has-error' : ''}`}>
      <label for={id}>{label}</label>
      {children}
      {hint && <p class="hint" id={`${id}-hint`}>{hint}</p>}
      {error && (
        <p class="error" id={`${id}-error`} role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

/** The ARIA attributes an input inside a Field needs for its error. */
export function describedBy(id: string, error: string | undefined, hint = false): { 'aria-invalid'?: 'true'; 'aria-describedby'?: string } {
  const ids = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return { ...(error ? { 'aria-invalid': 'true' as const } : {}), ...(ids ? { 'aria-describedby': ids } : {}) };
}
