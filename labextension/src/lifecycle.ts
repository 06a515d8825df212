// The labwork server extension's answer (GET labwork/lifecycle) and the calls to it.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const SCHEMA_ID = 'https://labwork.dev/events/lifecycle/v1';
export const POLL_MS = 10_000; // at most one GET per tab every 10 s; events come in between

export interface IKernelEnd {
  kernel_id: string;
  run_config: string | null;
  reason: string;
  at: string;
}

export interface IStopping {
  id: string;
  reason: string;
  save_by: string;
}

export interface INotice {
  kind: 'deadline' | 'idle' | 'busy';
  text: string;
  stop_at: string | null;
}

export interface ILifecycle {
  deadline: string | null;
  time_left_s: number | null;
  warn_before_s: number[];
  idle: { timeout_s: number | null; stop_at: string | null };
  notice: INotice | null;
  stopping: IStopping | null;
  clients: number;
  kernels: { [id: string]: { run_config: string | null; end: IKernelEnd | null } };
}

export class LabworkApi {
  readonly client: string;
  private _settings = ServerConnection.makeSettings();

  constructor() {
    const c = globalThis.crypto;
    this.client =
      c && typeof c.randomUUID === 'function'
        ? c.randomUUID()
        : Math.random().toString(36).slice(2) + Date.now().toString(36);
  }

  private _url(name: string): string {
    return URLExt.join(this._settings.baseUrl, 'labwork', name);
  }

  private async _call(name: string, init: RequestInit, query = ''): Promise<any> {
    const r = await ServerConnection.makeRequest(this._url(name) + query, init, this._settings);
    const body = await r.json().catch(() => null);
    if (!r.ok) {
      const problem = (body && (body.msg || body.message)) || `HTTP ${r.status}`;
      throw new Error(String(problem));
    }
    return body;
  }

  lifecycle(): Promise<ILifecycle> {
    return this._call('lifecycle', { method: 'GET' }, `?client=${encodeURIComponent(this.client)}`);
  }

  extend(hours: number): Promise<ILifecycle> {
    return this._call('extend', { method: 'POST', body: JSON.stringify({ hours }) });
  }

  saved(id: string, saved: string[], failed: string[]): Promise<ILifecycle> {
    return this._call('saved', {
      method: 'POST',
      body: JSON.stringify({ id, client: this.client, saved, failed })
    });
  }
}

/** 18720 -> "5 h 12 min"; 600 -> "10 min"; 42 -> "42 s". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) {
    return `${s} s`;
  }
  const h = Math.floor(s / 3600);
  const min = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${min} min` : `${min} min`;
}
