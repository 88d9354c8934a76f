/**
 * A real S3-compatible server for tests: s3rver on 127.0.0.1, port 0, in a temp folder, silent, with
 * the buckets asked for. `clientConfig` points an AWS SDK client (or `openStore`'s `s3` option) at
 * it; `env` holds the same as the SDK's own variables, for a child process or for `applyEnv()`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3ClientConfig } from '@aws-sdk/client-s3';

/** The part of s3rver's API used here (the package ships no types). */
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (options: {
  port: number;
  address: string;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}) => S3rverInstance;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

export interface S3Server {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  port: number;
  /** The first bucket created. */
  bucket: string;
  /** For `new S3Client(...)` or `openStore(url, dir, { s3 })`: endpoint, path-style, region, s3rver's fixed credentials. */
  clientConfig: S3ClientConfig;
  /** AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION for this server. */
  env: Record<string, string>;
  /** Sets `env` in process.env; returns a function that puts the previous values back. */
  applyEnv(): () => void;
  close(): Promise<void>;
}

/** Starts s3rver with `buckets` (created empty). @default ['kontext-test'] */
export async function startS3(buckets: string[] = ['kontext-test']): Promise<S3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'kontext-s3rver-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  // s3rver accepts only these credentials; the region is a formality for it.
  const env = { AWS_ENDPOINT_URL_S3: endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
  return {
    endpoint,
    port,
    bucket: buckets[0] ?? '',
    clientConfig: { endpoint, forcePathStyle: true, region: env.AWS_REGION, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } },
    env,
    applyEnv() {
      const previous = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
      Object.assign(process.env, env);
      return () => {
        for (const [k, v] of Object.entries(previous)) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      };
    },
    async close() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
