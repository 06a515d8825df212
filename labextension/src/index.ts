// labwork in JupyterLab 4 and Notebook 7: the server's time left and the current kernel's run
// configuration in the status bar (click: Extend), warnings before the deadline, pushed notices,
// saving every modified document before labwork stops the server, and why a kernel ended.
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { duration, IKernelEnd, ILifecycle, LabworkApi, POLL_MS, SCHEMA_ID } from './lifecycle';

const EXTEND_HOURS = 6;
const EXTEND_LABEL = `Extend (+${EXTEND_HOURS} h)`;

class Lab {
  private _api = new LabworkApi();
  private _state: ILifecycle | null = null;
  private _leftAt = 0; // performance.now() when _state.time_left_s was true
  private _warned = new Set<string>(); // `${deadline}|${offset}`
  private _notice = ''; // the last notice shown (its JSON)
  private _stopsHandled = new Set<string>();
  private _endsShown = new Set<string>(); // `${kernel_id}|${at}`
  private _item = new Widget();

  constructor(
    private _app: JupyterFrontEnd,
    private _tracker: INotebookTracker | null,
    private _docs: IDocumentManager | null
  ) {
    this._item.addClass('labwork-TimeLeft');
    this._item.node.title = 'labwork: time left before the server stops (click to extend)';
    this._item.node.addEventListener('click', () => void this._menu());
  }

  get item(): Widget {
    return this._item;
  }

  start(): void {
    this._app.serviceManager.events.stream.connect((_, event) => {
      if (event.schema_id === SCHEMA_ID) {
        this._event(event as any);
      }
    });
    this._tracker?.currentChanged.connect(() => this._render());
    void this._poll(true);
    window.setInterval(() => void this._poll(false), POLL_MS);
    window.setInterval(() => this._tick(), 1000);
  }

  // ------------------------------------------------------------------ state
  private async _poll(first: boolean): Promise<void> {
    try {
      this._apply(await this._api.lifecycle(), first);
    } catch (err) {
      console.warn('labwork: lifecycle', err);
    }
  }

  private _event(event: { action: string; state?: ILifecycle; kernel_id?: string; end?: IKernelEnd }): void {
    if (event.action === 'state' && event.state) {
      this._apply(event.state, false);
    } else if (event.action === 'kernel_end' && event.end) {
      this._kernelEnd(event.end);
    }
  }

  private _apply(state: ILifecycle, first: boolean): void {
    this._state = state;
    this._leftAt = performance.now();
    for (const end of Object.values(state.kernels || {}).map(k => k.end)) {
      if (end) {
        if (first) {
          this._endsShown.add(`${end.kernel_id}|${end.at}`); // ended before this tab opened
        } else {
          this._kernelEnd(end);
        }
      }
    }
    this._showNotice();
    if (state.stopping && !this._stopsHandled.has(state.stopping.id)) {
      this._stopsHandled.add(state.stopping.id);
      void this._saveBeforeStop(state.stopping.id, state.stopping.reason);
    }
    this._tick();
  }

  private _left(): number | null {
    const s = this._state;
    if (!s || s.time_left_s === null || s.time_left_s === undefined) {
      return null;
    }
    return s.time_left_s - (performance.now() - this._leftAt) / 1000;
  }

  private _tick(): void {
    this._render();
    this._warn();
  }

  private _runConfig(): string | null {
    const kernel = this._tracker?.currentWidget?.sessionContext.session?.kernel;
    if (!kernel || !this._state) {
      return null;
    }
    return this._state.kernels?.[kernel.id]?.run_config ?? null;
  }

  private _timeText(): string {
    if (!this._state) {
      return '';
    }
    const left = this._left();
    return left === null ? 'no limit' : `${duration(left)} left`;
  }

  private _render(): void {
    const text = this._timeText();
    const rc = this._runConfig();
    this._item.node.textContent = rc ? `${text} · ${rc}` : text;
    const left = this._left();
    const soonest = this._state ? Math.min(...this._state.warn_before_s) : 0;
    this._item.toggleClass('labwork-mod-soon', left !== null && left <= soonest);
  }

  // ------------------------------------------------------------------ warnings and notices
  private _warn(): void {
    const s = this._state;
    const left = this._left();
    if (!s || left === null || !s.deadline || s.stopping) {
      return;
    }
    const passed = s.warn_before_s.filter(o => left <= o);
    if (!passed.length) {
      return;
    }
    const offset = Math.min(...passed);
    const key = `${s.deadline}|${offset}`;
    if (this._warned.has(key)) {
      return;
    }
    passed.forEach(o => this._warned.add(`${s.deadline}|${o}`));
    const at = new Date(s.deadline).toLocaleTimeString();
    Notification.warning(`labwork stops this server in ${duration(left)} (at ${at}). Save your work or extend.`, {
      autoClose: false,
      actions: [this._extendAction(), this._saveAction()]
    });
  }

  private _showNotice(): void {
    const n = this._state?.notice ?? null;
    const key = n ? JSON.stringify(n) : '';
    if (key === this._notice) {
      return;
    }
    this._notice = key;
    if (!n) {
      return;
    }
    const actions = n.kind === 'deadline' ? [this._extendAction(), this._saveAction()] : [this._saveAction()];
    Notification.warning(`labwork: ${n.text}`, { autoClose: false, actions });
  }

  private _extendAction(): Notification.IAction {
    return { label: EXTEND_LABEL, caption: 'add time before the server stops', callback: () => void this._extend() };
  }

  private _saveAction(): Notification.IAction {
    return {
      label: 'Save all',
      caption: 'save every modified document',
      callback: () => void this._saveAll().then(r => this._savedNote(r.saved, r.failed))
    };
  }

  // ------------------------------------------------------------------ actions
  private async _menu(): Promise<void> {
    const rc = this._runConfig();
    const body = `Time left: ${this._timeText() || 'unknown'}` + (rc ? `\nRun configuration: ${rc}` : '');
    const result = await showDialog({
      title: 'labwork',
      body,
      buttons: [Dialog.cancelButton({ label: 'Close' }), Dialog.okButton({ label: EXTEND_LABEL })]
    });
    if (result.button.accept) {
      await this._extend();
    }
  }

  private async _extend(): Promise<void> {
    try {
      this._apply(await this._api.extend(EXTEND_HOURS), false);
      Notification.success(`labwork: extended; ${this._timeText()}`, { autoClose: 5000 });
    } catch (err) {
      Notification.error(`labwork: could not extend: ${(err as Error).message}`, { autoClose: false });
    }
  }

  private _contexts(): DocumentRegistry.Context[] {
    const found = new Set<DocumentRegistry.Context>();
    this._tracker?.forEach(panel => found.add(panel.context));
    if (this._docs) {
      for (const w of Array.from(this._app.shell.widgets('main'))) {
        const ctx = this._docs.contextForWidget(w);
        if (ctx) {
          found.add(ctx);
        }
      }
    }
    return Array.from(found);
  }

  private async _saveAll(): Promise<{ saved: string[]; failed: string[] }> {
    const saved: string[] = [];
    const failed: string[] = [];
    for (const ctx of this._contexts()) {
      if (!ctx.isReady || !ctx.model.dirty || ctx.model.readOnly) {
        continue;
      }
      try {
        await ctx.save();
        saved.push(ctx.path);
      } catch (err) {
        console.warn('labwork: could not save', ctx.path, err);
        failed.push(ctx.path);
      }
    }
    return { saved, failed };
  }

  private _savedNote(saved: string[], failed: string[]): void {
    if (failed.length) {
      Notification.error(`labwork: could not save ${failed.join(', ')}`, { autoClose: false });
    } else {
      Notification.info(saved.length ? `labwork: saved ${saved.join(', ')}` : 'labwork: nothing to save', {
        autoClose: 5000
      });
    }
  }

  private async _saveBeforeStop(id: string, reason: string): Promise<void> {
    const { saved, failed } = await this._saveAll();
    try {
      await this._api.saved(id, saved, failed);
    } catch (err) {
      console.warn('labwork: could not report the saves', err);
    }
    const what = saved.length ? `saved ${saved.join(', ')}` : 'nothing needed saving';
    const bad = failed.length ? `; could not save ${failed.join(', ')}` : '';
    Notification.warning(`labwork is stopping this server: ${reason}. ${what}${bad}.`, { autoClose: false });
  }

  // ------------------------------------------------------------------ kernel ends
  private _kernelEnd(end: IKernelEnd): void {
    const key = `${end.kernel_id}|${end.at}`;
    if (this._endsShown.has(key)) {
      return;
    }
    this._endsShown.add(key);
    const mine: string[] = [];
    this._tracker?.forEach(panel => {
      if (panel.sessionContext.session?.kernel?.id === end.kernel_id) {
        mine.push(panel.context.path);
      }
    });
    if (!mine.length) {
      return; // a kernel of another tab
    }
    const rc = end.run_config ? ` (${end.run_config})` : '';
    Notification.error(`The kernel of ${mine.join(', ')}${rc} ended: ${end.reason}`, { autoClose: false });
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'labwork-lab:lifecycle',
  description: "labwork: the server's time left, Extend, warnings, save before stop, why a kernel ended",
  autoStart: true,
  optional: [IStatusBar, INotebookTracker, IDocumentManager],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    tracker: INotebookTracker | null,
    docs: IDocumentManager | null
  ) => {
    const lab = new Lab(app, tracker, docs);
    if (statusBar) {
      statusBar.registerStatusItem('labwork-lab:time-left', { item: lab.item, align: 'left', rank: 1000 });
    }
    lab.start();
    document.body.dataset.labworkLab = 'active';
  }
};

export default plugin;
