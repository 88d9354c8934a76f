import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('configuration', () => {
  it('has the old service defaults', () => {
    expect(loadConfig({})).toMatchObject({
      host: '0.0.0.0',
      port: 9000,
      debug: false,
      comfyuiUrls: ['http://127.0.0.1:8188'],
      comfyuiTimeoutS: 300,
      maxFileSize: 10_485_760,
      maxConcurrentTasks: 3,
      taskCleanupDays: 7,
      dataDir: './data',
      publicUrl: undefined,
      corsOrigins: [],
    });
  });

  it('takes a comma-separated list of ComfyUI servers and trims trailing slashes', () => {
    const c = loadConfig({ COMFYUI_URL: 'http://gpu1:8188/, http://gpu2:8188', DEBUG: 'true', PUBLIC_URL: 'https://x.example/' });
    expect(c.comfyuiUrls).toEqual(['http://gpu1:8188', 'http://gpu2:8188']);
    expect(c.debug).toBe(true);
    expect(c.publicUrl).toBe('https://x.example');
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ PORT: '', COMFYUI_URL: '' }).port).toBe(9000);
  });

  it('reports every bad variable on its own line with the value and what is allowed', () => {
    let err: unknown;
    try {
      loadConfig({ PORT: '70000', DEBUG: 'maybe', COMFYUI_URL: 'http://ok:1,ftp://bad', MAX_FILE_SIZE: '1.5' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([
      'PORT="70000": must be a whole number from 0 to 65535',
      'DEBUG="maybe": must be true or false',
      `COMFYUI_URL="http://ok:1,ftp://bad": 'ftp://bad' must be an http:// or https:// URL`,
      'MAX_FILE_SIZE="1.5": must be a whole number from 1024 to 1073741824',
    ]);
  });
});
