import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, ICommandPalette, Notification, showDialog } from '@jupyterlab/apputils';
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
import { IStatusBar } from '@jupyterlab/statusbar';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import {
  buildRequest,
  DEFAULT_SETTINGS,
  Debouncer,
  ErrorOnce,
  IChunk,
  ILoading,
  isNotConfigured,
  ITutorSettings,
  LineDecoder,
  magicCell,
  nextLine,
  nextWord,
  readSettings,
  remainingSuggestion,
  shouldFetch,
  statusLabel
} from './logic';

const PLUGIN_ID = 'tutor-inline-completion:plugin';

/** Reads an NDJSON response chunk by chunk; a read that outlives a deadline goes on in the background. */
class ChunkReader {
  private _decoder = new TextDecoder();
  private _lines = new LineDecoder();
  private _queue: IChunk[] = [];
  private _pending: Promise<ReadableStreamReadResult<Uint8Array>> | null = null;
  private _ended = false;

  constructor(
    private _reader: ReadableStreamDefaultReader<Uint8Array>,
    readonly controller: AbortController
  ) {}

  /** The next chunk; null at the end; 'timeout' when none came before the deadline. */
  async next(deadline = Infinity): Promise<IChunk | null | 'timeout'> {
    while (this._queue.length === 0) {
      if (this._ended) {
        return null;
      }
      this._pending = this._pending ?? this._reader.read();
      let result: ReadableStreamReadResult<Uint8Array> | 'timeout';
      if (deadline === Infinity) {
        result = await this._pending;
      } else {
        const wait = deadline - Date.now();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<'timeout'>(resolve => (timer = setTimeout(() => resolve('timeout'), Math.max(wait, 0))));
        result = await Promise.race([this._pending, late]);
        clearTimeout(timer);
      }
      if (result === 'timeout') {
        return 'timeout';
      }
      this._pending = null;
      if (result.done) {
        this._ended = true;
        this._queue.push(...this._lines.end());
      } else {
        this._queue.push(...this._lines.push(this._decoder.decode(result.value, { stream: true })));
      }
    }
    return this._queue.shift() ?? null;
  }

  close(): void {
    this.controller.abort();
  }
}

/** The suggestion on show, so a word or a line of it can be accepted. */
interface ILatest {
  cellId: string;
  before: string;
  text: string;
}

class TutorInlineProvider implements IInlineCompletionProvider {
  readonly identifier = 'tutor-inline-completion';
  readonly name = 'Tutor (CodeGemma)';
  settings: ITutorSettings = { ...DEFAULT_SETTINGS };
  latest: ILatest | null = null;
  continuing = false;
  /** Called when a suggestion came after JupyterLab stopped waiting for it (the model was loading). */
  onLate: () => void = () => undefined;

  private _serverSettings = ServerConnection.makeSettings();
  private _debouncer = new Debouncer();
  private _errors = new ErrorOnce();
  private _notices = new ErrorOnce();
  private _running = new Map<string, ChunkReader>();
  private _current: AbortController | null = null;
  private _counter = 0;
  private _timeoutMs = 5000; // JupyterLab's per-provider timeout for fetch (configure() updates it)
  private _notConfigured = false;

  async fetch(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): Promise<IInlineCompletionList<IInlineCompletionItem>> {
    const started = Date.now();
    const triggerKind = context.triggerKind as number;
    if (this.continuing) {
      // Right after a word or a line was accepted: show the rest of the same suggestion at the new
      // cursor (JupyterLab replaces from where it last asked, so the old item must not be accepted).
      this.continuing = false;
      const body = this._body(request, context);
      const latest = this.latest;
      const rest = latest && latest.cellId === body.cellId ? remainingSuggestion(latest.before, latest.text, body.before) : null;
      if (rest) {
        return { items: [{ insertText: rest }] };
      }
    }
    if (this._notConfigured || !shouldFetch(this.settings, triggerKind)) {
      return { items: [] }; // not set up: said once (a notice), not asked again on every keystroke
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
    // No item until there is text worth showing: an item, even an empty one, puts ghost text in the
    // editor and makes Tab accept it (issue 20). The server sends "" for a suggestion of only whitespace.
    const chunks = new ChunkReader(response.body.getReader(), controller);
    const deadline = started + Math.max(this._timeoutMs - 300, 500);
    const token = body.id;
    try {
      for (;;) {
        const chunk = await chunks.next(deadline);
        if (chunk === 'timeout') {
          void this._whenLate(chunks);
          return { items: [] };
        }
        if (chunk === null) {
          chunks.close();
          return { items: [] };
        }
        if (chunk.error) {
          chunks.close();
          this._reportError(chunk);
          return { items: [] };
        }
        if (chunk.notice) {
          this._notice(chunk.notice);
          continue;
        }
        const text = chunk.text ?? '';
        if (!text && !chunk.done) {
          continue;
        }
        if (!text) {
          chunks.close();
          return { items: [] }; // nothing worth showing: no ghost text, Tab keeps its meaning
        }
        this._errors.ok();
        this.latest = { cellId: body.cellId, before: body.before, text };
        if (chunk.done) {
          chunks.close();
          return { items: [{ insertText: text }] };
        }
        this._running.set(token, chunks);
        return { items: [{ insertText: text, isIncomplete: true, token }] };
      }
    } catch {
      return { items: [] }; // aborted by a newer request
    }
  }

  async *stream(token: string): AsyncGenerator<{ response: IInlineCompletionItem }> {
    const chunks = this._running.get(token);
    if (!chunks) {
      return;
    }
    const latest = this.latest;
    let text = latest?.text ?? '';
    try {
      for (;;) {
        const chunk = await chunks.next();
        if (chunk === null || chunk === 'timeout') {
          yield { response: { insertText: text, isIncomplete: false, token } };
          return;
        }
        if (chunk.error) {
          this._reportError(chunk);
          yield { response: { insertText: text, isIncomplete: false, token } };
          return;
        }
        if (chunk.notice) {
          this._notice(chunk.notice);
          continue;
        }
        text = chunk.text || text; // keep what is on show rather than shrink it to nothing
        if (latest && this.latest === latest) {
          latest.text = text;
        }
        yield { response: { insertText: text, isIncomplete: !chunk.done, token } };
        if (chunk.done) {
          return;
        }
      }
    } catch (error) {
      // aborted by a newer request: nothing to show
    } finally {
      this._running.delete(token);
      chunks.close();
    }
  }

  configure(settings: { [property: string]: unknown }): void {
    // JupyterLab's own per-provider settings (enabled, debouncerDelay, timeout) live in the inline
    // completer's settings; ours come from this extension's schema (see activate).
    if (typeof settings.timeout === 'number' && settings.timeout > 0) {
      this._timeoutMs = settings.timeout;
    }
  }

  /** The first request may wait for the model to load, longer than JupyterLab waits: ask again then. */
  private async _whenLate(chunks: ChunkReader): Promise<void> {
    try {
      for (;;) {
        const chunk = await chunks.next();
        if (chunk === null || chunk === 'timeout' || chunk.error) {
          if (chunk && chunk !== 'timeout') {
            this._reportError(chunk);
          }
          return;
        }
        if (chunk.text || chunk.done) {
          break;
        }
      }
    } catch {
      return; // aborted by a newer request
    }
    chunks.close();
    if (this._current === chunks.controller) {
      this.onLate(); // the model is warm now: a new request answers within JupyterLab's wait
    }
  }

  private _reportError(chunk: IChunk): void {
    if (!chunk.error) {
      return;
    }
    if (isNotConfigured(chunk)) {
      this._notConfigured = true;
      if (this._notices.report('not_configured')) {
        // Not an error the student caused or can fix: one notice, which stays until dismissed.
        Notification.info(`Tutor: inline completion is not set up. ${chunk.error.message}`, {
          autoClose: false,
          actions: [{ label: 'Dismiss', callback: () => undefined }]
        });
      }
      return;
    }
    if (this._errors.report(chunk.error.message)) {
      Notification.error(`Tutor: ${chunk.error.message}`, { autoClose: 10000 });
    }
  }

  private _notice(message: string): void {
    if (this._notices.report(message)) {
      Notification.info(`Tutor: ${message}`, { autoClose: 10000 });
    }
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

/** The part of the suggestion on show in the active cell that a command accepts. */
function acceptPart(app: JupyterFrontEnd, tracker: INotebookTracker, provider: TutorInlineProvider,
  part: (rest: string) => string): boolean {
  const cell = tracker.activeCell;
  const editor = cell?.editor;
  const latest = provider.latest;
  if (!cell || !editor || !latest || latest.cellId !== cell.model.id || !editor.replaceSelection) {
    return false;
  }
  const offset = editor.getOffsetAt(editor.getCursorPosition());
  const rest = remainingSuggestion(latest.before, latest.text, editor.model.sharedModel.getSource().slice(0, offset));
  if (!rest) {
    return false;
  }
  editor.replaceSelection(part(rest));
  provider.continuing = true;
  void app.commands.execute('inline-completer:invoke');
  return true;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: "Inline completions from the tutor's CodeGemma fill-in-the-middle model.",
  autoStart: true,
  requires: [ICompletionProviderManager],
  optional: [ISettingRegistry, INotebookTracker, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    manager: ICompletionProviderManager,
    settingRegistry: ISettingRegistry | null,
    tracker: INotebookTracker | null,
    palette: ICommandPalette | null
  ) => {
    const provider = new TutorInlineProvider();
    manager.registerInlineProvider(provider); // early: providers are merged into settings on restore
    provider.onLate = () => void app.commands.execute('inline-completer:invoke');
    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_ID).then(settings => {
        const update = () => {
          provider.settings = readSettings(settings.composite as { [key: string]: unknown });
          app.commands.notifyCommandChanged('tutor:toggle-inline-completion');
        };
        update();
        settings.changed.connect(update);
      });
    }
    app.commands.addCommand('tutor:toggle-inline-completion', {
      label: 'Toggle Inline Completion',
      caption: "Turn the tutor's ghost-text completions on or off",
      isToggled: () => provider.settings.enabled,
      execute: async () => {
        const enabled = !provider.settings.enabled;
        provider.settings = { ...provider.settings, enabled };
        if (settingRegistry) {
          await settingRegistry.set(PLUGIN_ID, 'enabled', enabled);
        }
        app.commands.notifyCommandChanged('tutor:toggle-inline-completion');
      }
    });
    palette?.addItem({ command: 'tutor:toggle-inline-completion', category: 'Tutor' });
    if (tracker) {
      app.commands.addCommand('tutor:accept-word', {
        label: 'Accept the Next Word of the Suggestion',
        execute: () => acceptPart(app, tracker, provider, nextWord)
      });
      app.commands.addCommand('tutor:accept-line', {
        label: 'Accept the Next Line of the Suggestion',
        execute: () => acceptPart(app, tracker, provider, nextLine)
      });
      // CodeMirror moves the cursor on Ctrl/Alt+Right before JupyterLab's shortcuts see the key, so
      // while ghost text is on show these two commands get their keys first (as they are set in
      // Settings -> Keyboard Shortcuts), the way JupyterLab itself takes Tab for accepting.
      const ours = new Set(['tutor:accept-word', 'tutor:accept-line']);
      document.addEventListener('keydown', event => {
        const target = event.target as Element | null;
        if (!target?.closest?.('.jp-mod-inline-completer-active')) {
          return;
        }
        const keystroke = CommandRegistry.keystrokeForKeydownEvent(event);
        const binding = app.commands.keyBindings.find(b => ours.has(b.command) && b.keys.length === 1 &&
          CommandRegistry.normalizeKeystroke(b.keys[0]) === keystroke);
        if (binding) {
          event.preventDefault();
          event.stopPropagation();
          void app.commands.execute(binding.command);
        }
      }, true);
    }
  }
};

/** The model's state in the status bar (from GET /tutor/status); a click shows the details. */
const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: 'tutor-inline-completion:status',
  description: "The tutor's model state in the status bar.",
  autoStart: true,
  optional: [IStatusBar, ICommandPalette],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar | null, palette: ICommandPalette | null) => {
    const serverSettings = ServerConnection.makeSettings();
    let status: { [key: string]: unknown } = {};
    const item = new Widget();
    item.addClass('tutor-StatusItem');
    item.addClass('jp-StatusBar-TextItem');
    item.node.style.cursor = 'pointer';
    item.node.title = "The tutor's model: click for details";
    const refresh = async () => {
      try {
        const response = await ServerConnection.makeRequest(
          URLExt.join(serverSettings.baseUrl, 'tutor', 'status'), {}, serverSettings);
        status = response.ok ? ((await response.json()) as { [key: string]: unknown }) : { state: 'unreachable',
          message: `The tutor's server extension answered HTTP ${response.status}.` };
      } catch (error) {
        status = { state: 'unreachable', message: `The Jupyter server cannot be reached: ${error}` };
      }
      item.node.textContent = statusLabel(status as { state?: unknown; loading?: ILoading | null });
      item.node.dataset.state = String(status.state ?? 'unreachable');
      item.node.title = status.state === 'loading' && status.message ? String(status.message)
        : "The tutor's model: click for details";
      setTimeout(refresh, status.state === 'loading' ? 1000 : 5000);
    };
    void refresh();
    app.commands.addCommand('tutor:status', {
      label: 'Tutor Status',
      caption: "What the tutor's model is doing, and where it runs",
      execute: async () => {
        const body = document.createElement('div');
        body.className = 'tutor-StatusDetails';
        const lines: [string, unknown][] = [
          ['State', statusLabel(status as { state?: unknown; loading?: ILoading | null }).replace('Tutor: ', '')],
          ['', status.message],
          ['Model', status.backend],
          ['Completions', `${status.completed ?? 0} of ${status.requests ?? 0} requests, ${status.errors ?? 0} errors`]
        ];
        for (const [name, value] of lines) {
          if (value === undefined || value === '') {
            continue;
          }
          const p = document.createElement('p');
          p.textContent = name ? `${name}: ${value}` : String(value);
          body.appendChild(p);
        }
        const hint = document.createElement('p');
        hint.textContent = 'In a notebook, %tutor status says what the kernel uses.';
        body.appendChild(hint);
        await showDialog({ title: 'Tutor', body: new Widget({ node: body }), buttons: [Dialog.okButton()] });
      }
    });
    item.node.addEventListener('click', () => void app.commands.execute('tutor:status'));
    palette?.addItem({ command: 'tutor:status', category: 'Tutor' });
    statusBar?.registerStatusItem('tutor-inline-completion:status', { item, align: 'left', rank: 10 });
  }
};

/**
 * The tutor's magics as commands: each puts the magic in a new cell below the active one and runs
 * it, so the student sees (and can reuse) what was done; the kernel loads the tutor first, quietly.
 */
const commandsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'tutor-inline-completion:commands',
  description: "The tutor's commands in the command palette.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null) => {
    const runMagic = async (code: string) => {
      const panel = tracker.currentWidget;
      if (!panel) {
        return;
      }
      NotebookActions.insertBelow(panel.content);
      panel.content.activeCell?.model.sharedModel.setSource(code);
      const kernel = panel.sessionContext.session?.kernel;
      if (kernel) {
        // Not `%load_ext`: that prints "already loaded" the second time. The kernel runs requests in
        // order, so the cell below runs after it.
        void kernel.requestExecute({ code: 'get_ipython().extension_manager.load_extension("tutor")', silent: true,
          store_history: false });
      }
      await NotebookActions.run(panel.content, panel.sessionContext);
    };
    const hasNotebook = () => tracker.currentWidget !== null;
    const commands: [string, string, () => string | null][] = [
      ['tutor:explain-cell', 'Explain This Cell', () => {
        const source = tracker.activeCell?.model.sharedModel.getSource() ?? '';
        return source.trim() ? magicCell('explain', source) : null;
      }],
      ['tutor:explain-selection', 'Explain the Selection', () => {
        const editor = tracker.activeCell?.editor;
        if (!editor) {
          return null;
        }
        const { start, end } = editor.getSelection();
        const text = editor.model.sharedModel.getSource().slice(editor.getOffsetAt(start), editor.getOffsetAt(end));
        return text.trim() ? magicCell('explain', text) : null;
      }],
      ['tutor:open-chat', 'Open Tutor Chat', () => magicCell('chat')],
      ['tutor:practice', 'Practice', () => magicCell('practice')]
    ];
    for (const [id, label, code] of commands) {
      app.commands.addCommand(id, {
        label,
        isEnabled: hasNotebook,
        execute: async () => {
          const text = code();
          if (text === null) {
            Notification.info(`Tutor: nothing to explain: ${id === 'tutor:explain-selection' ? 'select some code' :
              'the cell is empty'}.`, { autoClose: 5000 });
            return;
          }
          await runMagic(text);
        }
      });
      palette?.addItem({ command: id, category: 'Tutor' });
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

export default [plugin, statusPlugin, commandsPlugin, insertCellPlugin];
