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
import type { Cell, CodeCell } from '@jupyterlab/cells';
import type * as nbformat from '@jupyterlab/nbformat';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import {
  buildRequest,
  DEFAULT_ERROR_SETTINGS,
  DEFAULT_SETTINGS,
  Debouncer,
  errorButtonsIndex,
  errorHelpCode,
  ErrorOnce,
  IChunk,
  IErrorSettings,
  ILoading,
  IOutputLike,
  isNotConfigured,
  isPython,
  ITutorSettings,
  lastErrorCell,
  LineDecoder,
  LOAD_TUTOR_CODE,
  magicCell,
  nextLine,
  nextWord,
  panelButton,
  readErrorSettings,
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
        // The kernel runs requests in order, so the cell below runs after it.
        void kernel.requestExecute({ code: LOAD_TUTOR_CODE, silent: true, store_history: false });
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

const ERRORS_PLUGIN_ID = 'tutor-inline-completion:errors';

/** The outputs of a code cell as logic.ts reads them. */
function outputsOf(cell: CodeCell): IOutputLike[] {
  const outputs = cell.model.outputs;
  const list: IOutputLike[] = [];
  for (let i = 0; i < outputs.length; i++) {
    const output = outputs.get(i);
    list.push({ type: output.type, metadata: output.metadata });
  }
  return list;
}

/**
 * "Explain" and "Fix" buttons on a failing cell's error output, in any Python notebook, also one that
 * never loaded the tutor. It watches each code cell's outputs model and draws the buttons into the
 * rendered error output (the output area re-creates that node when the output changes, and the
 * buttons are drawn again). A click runs tutor/kernel/lab.py's help_on_error in the same kernel,
 * silently, and adds what it displays (the tutor's panel, already pressing Explain more or Suggest a
 * fix) to the cell's outputs. The panel's own flow decides about the fix: it is shown after its check,
 * and only the panel's "Insert below" puts it in a new cell; the student's cell is never changed.
 */
class ErrorButtons {
  settings: IErrorSettings = { ...DEFAULT_ERROR_SETTINGS };
  private _languages = new Map<string, string>(); // kernel id -> language_info.name
  private _bars = new WeakMap<CodeCell, HTMLElement>();
  private _busy = new WeakSet<CodeCell>();
  private _watched = new WeakSet<Cell>();

  constructor(private _tracker: INotebookTracker) {}

  /** Watch a notebook's cells, those it has and those added later, and its kernel. */
  watch(panel: NotebookPanel): void {
    const cells = () => {
      for (const cell of panel.content.widgets) {
        this._watchCell(panel, cell);
      }
    };
    void panel.context.ready.then(() => {
      cells();
      // The notebook makes its cell widgets on the same signal: look once it is done.
      panel.content.model?.cells.changed.connect(() => setTimeout(cells, 0));
    });
    const pending = { load: true };
    panel.sessionContext.kernelChanged.connect((_, change) => {
      pending.load = true;
      if (change.newValue) {
        void this._language(change.newValue); // known before the kernel's first idle, when loading waits on it
      }
      this.redrawAll(panel);
    });
    panel.sessionContext.statusChanged.connect((_, status) => {
      if (status === 'starting' || status === 'restarting' || status === 'autorestarting') {
        pending.load = true;
      } else if (status === 'idle' && pending.load && this.settings.loadInPythonKernels) {
        pending.load = false;
        void this.loadTutor(panel);
      }
    });
  }

  /** Every open notebook again (the settings changed). */
  redrawEverywhere(): void {
    this._tracker.forEach(panel => this.redrawAll(panel));
  }

  redrawAll(panel: NotebookPanel): void {
    for (const cell of panel.content.widgets) {
      if (cell.model.type === 'code') {
        this._schedule(panel, cell as CodeCell);
      }
    }
  }

  /** Load the tutor quietly into the notebook's kernel when it is Python (the class-wide setting). */
  async loadTutor(panel: NotebookPanel): Promise<void> {
    const kernel = panel.sessionContext.session?.kernel;
    if (kernel && isPython(await this._language(kernel))) {
      kernel.requestExecute({ code: LOAD_TUTOR_CODE, silent: true, store_history: false });
    }
  }

  /** The palette's "Explain/Fix the Last Error": the cell run last with an error output. */
  async lastError(action: 'explain' | 'fix'): Promise<void> {
    const panel = this._tracker.currentWidget;
    if (!panel) {
      return;
    }
    const code = panel.content.widgets.filter(c => c.model.type === 'code') as CodeCell[];
    const index = lastErrorCell(code.map(c => ({ executionCount: c.model.executionCount, outputs: outputsOf(c) })));
    if (index < 0) {
      Notification.info('Tutor: no cell of this notebook shows an error.', { autoClose: 5000 });
      return;
    }
    const cell = code[index];
    panel.content.activeCellIndex = panel.content.widgets.indexOf(cell);
    void panel.content.scrollToItem(panel.content.activeCellIndex);
    if (errorButtonsIndex(outputsOf(cell)) >= 0) {
      await this.help(panel, cell, action);
      return;
    }
    // The tutor's own panel is under that error: press its button rather than show a second panel.
    const buttons = cell.outputArea.node.querySelectorAll<HTMLButtonElement>(
      `.tutor-panel button[data-id="${panelButton(action)}"]`);
    const button = buttons[buttons.length - 1];
    if (button && !button.disabled) {
      button.click();
    } else {
      Notification.info("Tutor: use the buttons of the tutor's panel under the error.", { autoClose: 5000 });
    }
  }

  /** Ask the kernel's tutor about the cell's error; what it displays goes into the cell's outputs. */
  async help(panel: NotebookPanel, cell: CodeCell, action: 'explain' | 'fix'): Promise<void> {
    const kernel = panel.sessionContext.session?.kernel;
    const index = errorButtonsIndex(outputsOf(cell));
    if (!kernel || index < 0 || this._busy.has(cell)) {
      return;
    }
    const error = cell.model.outputs.get(index).toJSON() as nbformat.IError;
    const code = errorHelpCode({
      action,
      source: cell.model.sharedModel.getSource(),
      ename: String(error.ename ?? ''),
      evalue: String(error.evalue ?? ''),
      traceback: (error.traceback ?? []).map(String)
    });
    this._busy.add(cell);
    this._schedule(panel, cell);
    let failure: KernelMessage.IErrorMsg['content'] | null = null;
    try {
      const future = kernel.requestExecute({ code, silent: true, store_history: false, allow_stdin: false });
      future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
        const type = msg.header.msg_type;
        const content = msg.content as { [key: string]: unknown };
        if (cell.isDisposed) {
          return;
        }
        if (type === 'display_data' || type === 'execute_result') {
          cell.model.outputs.add({ output_type: 'display_data', data: content.data, metadata: content.metadata ?? {} } as
            nbformat.IDisplayData);
        } else if (type === 'stream') {
          cell.model.outputs.add({ output_type: 'stream', name: content.name, text: content.text } as nbformat.IStream);
        } else if (type === 'error') {
          failure = content as KernelMessage.IErrorMsg['content'];
        }
      };
      const reply = await future.done;
      if (reply.content.status === 'error' && !failure) {
        failure = reply.content as unknown as KernelMessage.IErrorMsg['content'];
      }
    } catch (error) {
      Notification.error(`Tutor: the kernel did not answer: ${error}`, { autoClose: 10000 });
    } finally {
      this._busy.delete(cell);
      this._schedule(panel, cell);
    }
    if (failure) {
      const { ename, evalue } = failure as KernelMessage.IErrorMsg['content'];
      const missing = ename === 'ModuleNotFoundError' && String(evalue).includes("'tutor");
      Notification.error(missing
        ? "Tutor: this notebook's kernel cannot import the tutor. Install it in the kernel's environment " +
          '(pip install tutor there), or pick a kernel that has it.'
        : `Tutor: the tutor could not run in this kernel: ${ename}: ${evalue}`, { autoClose: false });
    }
  }

  private _watchCell(panel: NotebookPanel, cell: Cell): void {
    if (cell.model.type !== 'code' || this._watched.has(cell)) {
      return;
    }
    this._watched.add(cell);
    const code = cell as CodeCell;
    const update = () => this._schedule(panel, code);
    code.model.outputs.changed.connect(update);
    code.model.outputs.stateChanged.connect(update); // an output changed in place, and was drawn again
    code.model.stateChanged.connect(update); // executionState: no buttons while the cell runs
    update();
  }

  /** After the output area has made its widgets for the change (it listens to the same signal). */
  private _schedule(panel: NotebookPanel, cell: CodeCell): void {
    setTimeout(() => void this._draw(panel, cell), 0);
  }

  private async _draw(panel: NotebookPanel, cell: CodeCell): Promise<void> {
    if (cell.isDisposed) {
      return;
    }
    const index = errorButtonsIndex(outputsOf(cell));
    const kernel = panel.sessionContext.session?.kernel;
    const python = !!kernel && isPython(await this._language(kernel));
    const old = this._bars.get(cell);
    const item = index >= 0 ? cell.outputArea.widgets[index] : undefined;
    const host = item?.node.querySelector('.jp-OutputArea-output') ?? item?.node;
    if (!this.settings.buttons || !python || !host || cell.model.executionState === 'running') {
      old?.remove();
      this._bars.delete(cell);
      return;
    }
    const busy = this._busy.has(cell);
    if (old && old.parentElement === host && old.dataset.busy === String(busy)) {
      return; // drawn already
    }
    old?.remove();
    const bar = document.createElement('div');
    bar.className = 'tutor-ErrorButtons';
    bar.dataset.busy = String(busy);
    const labels: [action: 'explain' | 'fix', label: string, title: string][] = [
      ['explain', 'Explain', 'The tutor explains this error in plain words'],
      ['fix', 'Fix', 'The tutor suggests a checked fix; your cell stays as it is unless you insert the fix']
    ];
    for (const [action, label, title] of labels) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'tutor-ErrorButton jp-mod-styled';
      button.dataset.action = action;
      button.textContent = label;
      button.title = title;
      button.disabled = busy;
      button.addEventListener('click', event => {
        event.stopPropagation(); // a click on an output would otherwise select the cell and nothing more
        void this.help(panel, cell, action);
      });
      bar.appendChild(button);
    }
    if (busy) {
      const note = document.createElement('span');
      note.className = 'tutor-ErrorButtons-note';
      note.textContent = 'Asking the tutor…';
      bar.appendChild(note);
    }
    host.appendChild(bar);
    this._bars.set(cell, bar);
  }

  /** The kernel's language, from its kernel_info (asked once per kernel); '' until it is known. */
  private async _language(kernel: Kernel.IKernelConnection): Promise<string> {
    const known = this._languages.get(kernel.id);
    if (known !== undefined) {
      return known;
    }
    try {
      const info = await kernel.info;
      const name = info.language_info?.name ?? '';
      this._languages.set(kernel.id, name);
      return name;
    } catch {
      return '';
    }
  }
}

/** Explain and Fix on error outputs, the setting that loads the tutor into every Python kernel, and
 * the palette's "Explain/Fix the Last Error". */
const errorsPlugin: JupyterFrontEndPlugin<void> = {
  id: ERRORS_PLUGIN_ID,
  description: "Explain and Fix buttons on a failing cell's error output, from the tutor in the same kernel.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry, ICommandPalette],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null) => {
    const buttons = new ErrorButtons(tracker);
    tracker.widgetAdded.connect((_, panel) => buttons.watch(panel));
    tracker.forEach(panel => buttons.watch(panel));
    if (settingRegistry) {
      void settingRegistry.load(ERRORS_PLUGIN_ID).then(settings => {
        const update = () => {
          const before = buttons.settings.loadInPythonKernels;
          buttons.settings = readErrorSettings(settings.composite as { [key: string]: unknown });
          buttons.redrawEverywhere();
          if (buttons.settings.loadInPythonKernels && !before) {
            tracker.forEach(panel => void buttons.loadTutor(panel)); // the kernels that run already
          }
        };
        update();
        settings.changed.connect(update);
      });
    }
    const commands: [string, string, 'explain' | 'fix'][] = [
      ['tutor:explain-last-error', 'Explain the Last Error', 'explain'],
      ['tutor:fix-last-error', 'Fix the Last Error', 'fix']
    ];
    for (const [id, label, action] of commands) {
      app.commands.addCommand(id, {
        label,
        isEnabled: () => tracker.currentWidget !== null,
        execute: () => buttons.lastError(action)
      });
      palette?.addItem({ command: id, category: 'Tutor' });
    }
  }
};

export default [plugin, statusPlugin, commandsPlugin, insertCellPlugin, errorsPlugin];
