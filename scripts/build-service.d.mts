/** Writes the service bundle (and its source map) to `outfile` (default dist/main.js in the package). */
export function buildService(outfile?: string): Promise<void>;
