import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import {
  CompletionHandler,
  ICompletionProviderManager,
  IInlineCompletionContext,
  IInlineCompletionItem,
  IInlineCompletionList,
  IInlineCompletionProvider
} from '@jupyterlab/completer';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import {
  buildRequest,
  DEFAULT_SETTINGS,
  Debouncer,
  ErrorOnce,
  IChunk,
  ITutorSettings,
  LineDecoder,
  readSettings,
  shouldFetch
} from './logic';

const PLUGIN_ID = 'tutor-inline-completion:plugin';

interface IRunning {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  controller: AbortController;
}

class TutorInlineProvider implements IInlineCompletionProvider {
  readonly identifier = 'tutor-inline-completion';
  readonly name = 'Tutor (CodeGemma)';
  settings: ITutorSettings = { ...DEFAULT_SETTINGS };

  private _serverSettings = ServerConnection.makeSettings();
  private _debouncer = new Debouncer();
  private _errors = new ErrorOnce();
  private _notices = new ErrorOnce();
  private _running = new Map<string, IRunning>();
  private _current: AbortController | null = null;
  private _counter = 0;

  async fetch(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): Promise<IInlineCompletionList<IInlineCompletionItem>> {
    const triggerKind = context.triggerKind as number;
    if (!shouldFetch(this.settings, triggerKind)) {
      return { items: [] };
    }
    if (triggerKind === 1 && !(await this._debouncer.wait(this.settings.debounceMs))) {
      return { items: [] }; // a newer keystroke came while waiting
    }
    const body = this._body(request, context);
    this._current?.abort(); // the server also cancels the older generation of this editor
    const controller = (this._current = new AbortController());
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(
        URLExt.join(this._serverSettings.baseUrl, 'tutor', 'complete'),
        { method: 'POST', body: JSON.stringify(body), signal: controller.signal },
        this._serverSettings
      );
    } catch (error) {
      if (controller.signal.aborted) {
        return { items: [] };
      }
      return this._error(`The tutor's completion server cannot be reached: ${error}`);
    }
    if (!response.ok || !response.body) {
      let message = `The tutor's completion request failed (HTTP ${response.status}).`;
      try {
        const data = (await response.json()) as IChunk;
        message = data.error?.message ?? message;
      } catch {
        // keep the generic message
      }
      return this._error(message);
    }
    const token = body.id;
    this._running.set(token, { reader: response.body.getReader(), controller });
    return { items: [{ insertText: '', isIncomplete: true, token }] };
  }

  async *stream(token: string): AsyncGenerator<{ response: IInlineCompletionItem }> {
    const running = this._running.get(token);
    if (!running) {
      return;
    }
    const decoder = new TextDecoder();
    const lines = new LineDecoder();
    let text = '';
    try {
      for (;;) {
        const { value, done } = await running.reader.read();
        const chunks = done ? lines.end() : lines.push(decoder.decode(value, { stream: true }));
        for (const chunk of chunks) {
          if (chunk.error) {
            if (this._errors.report(chunk.error.message)) {
              Notification.error(`Tutor: ${chunk.error.message}`, { autoClose: 10000 });
            }
            yield { response: { insertText: text, isIncomplete: false, token } };
            return;
          }
          if (chunk.notice) {
            if (this._notices.report(chunk.notice)) {
              Notification.info(`Tutor: ${chunk.notice}`, { autoClose: 10000 });
            }
            continue;
          }
          text = chunk.text ?? text;
          this._errors.ok();
          yield { response: { insertText: text, isIncomplete: !chunk.done, token } };
          if (chunk.done) {
            return;
          }
        }
        if (done) {
          return;
        }
      }
    } catch (error) {
      // aborted by a newer request: nothing to show
    } finally {
      this._running.delete(token);
      running.controller.abort();
    }
  }

  configure(settings: { [property: string]: unknown }): void {
    // JupyterLab's own per-provider settings (enabled, debouncerDelay, timeout) live in the inline
    // completer's settings; ours come from this extension's schema (see activate).
    void settings;
  }

  private _body(request: CompletionHandler.IRequest, context: IInlineCompletionContext) {
    const widget = context.widget;
    let path = '';
    let cells: { id: string; source: string }[] = [];
    let activeCellId = '';
    let language = 'python';
    if (widget instanceof NotebookPanel) {
      path = widget.context.path;
      const notebook = widget.content;
      cells = notebook.widgets.map(cell => ({ id: cell.model.id, source: cell.model.sharedModel.getSource() }));
      activeCellId = notebook.activeCell?.model.id ?? '';
      const info = widget.model?.metadata?.language_info as { name?: string } | undefined;
      language = info?.name ?? 'python';
    } else {
      path = (widget as { context?: { path?: string } }).context?.path ?? '';
    }
    return buildRequest({
      id: `${Date.now()}-${++this._counter}`,
      path,
      text: request.text,
      offset: request.offset,
      cells,
      activeCellId,
      language,
      settings: this.settings
    });
  }

  private _error(message: string): IInlineCompletionList<IInlineCompletionItem> {
    if (this._errors.report(message)) {
      Notification.error(`Tutor: ${message}`, { autoClose: 10000 });
    }
    return { items: [] };
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: "Inline completions from the tutor's CodeGemma fill-in-the-middle model.",
  autoStart: true,
  requires: [ICompletionProviderManager],
  optional: [ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    manager: ICompletionProviderManager,
    settingRegistry: ISettingRegistry | null
  ) => {
    const provider = new TutorInlineProvider();
    manager.registerInlineProvider(provider); // early: providers are merged into settings on restore
    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_ID).then(settings => {
        const update = () => {
          provider.settings = readSettings(settings.composite as { [key: string]: unknown });
        };
        update();
        settings.changed.connect(update);
      });
    }
  }
};

/**
 * The tutor's panels (anywidgets in cell outputs) ask for a checked fix to be put in a new cell
 * with a DOM event; this inserts it below the cell whose output holds the panel, leaving that
 * cell untouched, and tells the panel it was handled (preventDefault), else it copies instead.
 */
const insertCellPlugin: JupyterFrontEndPlugin<void> = {
  id: 'tutor-inline-completion:insert-cell',
  description: 'Puts code from a tutor panel into a new cell below the cell the panel belongs to.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    document.addEventListener('tutor:insert-cell', event => {
      const detail = (event as CustomEvent<{ code?: unknown }>).detail;
      const target = event.target as Node | null;
      if (!target || typeof detail?.code !== 'string') {
        return;
      }
      const panel = tracker.find(p => p.node.contains(target));
      if (!panel) {
        return;
      }
      const notebook = panel.content;
      const index = notebook.widgets.findIndex(cell => cell.node.contains(target));
      if (index < 0) {
        return;
      }
      notebook.activeCellIndex = index;
      NotebookActions.insertBelow(notebook);
      notebook.activeCell?.model.sharedModel.setSource(detail.code);
      event.preventDefault();
    });
  }
};

export default [plugin, insertCellPlugin];
