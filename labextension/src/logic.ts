// Pure logic of the provider (no JupyterLab imports), so node's test runner can check it.

export interface ITutorSettings {
  enabled: boolean;
  trigger: 'automatic' | 'manual';
  debounceMs: number;
  contextBudget: number;
  maxLines: number;
  maxTokens: number;
}

export const DEFAULT_SETTINGS: ITutorSettings = {
  enabled: true,
  trigger: 'automatic',
  debounceMs: 250,
  contextBudget: 1536,
  maxLines: 8,
  maxTokens: 96
};

export function readSettings(raw: { [key: string]: unknown }): ITutorSettings {
  const s = { ...DEFAULT_SETTINGS };
  if (typeof raw.enabled === 'boolean') {
    s.enabled = raw.enabled;
  }
  if (raw.trigger === 'automatic' || raw.trigger === 'manual') {
    s.trigger = raw.trigger;
  }
  for (const key of ['debounceMs', 'contextBudget', 'maxLines', 'maxTokens'] as const) {
    const v = raw[key];
    if (typeof v === 'number' && Number.isFinite(v)) {
      s[key] = Math.round(v);
    }
  }
  return s;
}

export interface ICompletionRequestBody {
  id: string;
  path: string;
  cellId: string;
  before: string;
  after: string;
  cellsBefore: string[];
  cellsAfter: string[];
  language: string;
  settings: { maxLines: number; contextBudget: number; maxTokens: number };
}

/** The request for the server: the active cell split at the cursor, the other cells in order. */
export function buildRequest(options: {
  id: string;
  path: string;
  text: string;
  offset: number;
  cells: { id: string; source: string }[];
  activeCellId: string;
  language: string;
  settings: ITutorSettings;
}): ICompletionRequestBody {
  const index = options.cells.findIndex(c => c.id === options.activeCellId);
  const cellsBefore = index < 0 ? [] : options.cells.slice(0, index).map(c => c.source);
  const cellsAfter = index < 0 ? [] : options.cells.slice(index + 1).map(c => c.source);
  return {
    id: options.id,
    path: options.path,
    cellId: options.activeCellId,
    before: options.text.slice(0, options.offset),
    after: options.text.slice(options.offset),
    cellsBefore,
    cellsAfter,
    language: options.language,
    settings: {
      maxLines: options.settings.maxLines,
      contextBudget: options.settings.contextBudget,
      maxTokens: options.settings.maxTokens
    }
  };
}

export interface IChunk {
  id?: string;
  text?: string;
  done?: boolean;
  error?: { message: string; kind?: string; status?: number };
  notice?: string; // e.g. the model worker had died and was restarted: shown once, not inserted
}

/** Splits a newline-delimited JSON byte stream into objects, whatever the chunk boundaries. */
export class LineDecoder {
  private _buffer = '';

  push(piece: string): IChunk[] {
    this._buffer += piece;
    const lines = this._buffer.split('\n');
    this._buffer = lines.pop() ?? '';
    return lines.filter(l => l.trim()).map(l => JSON.parse(l) as IChunk);
  }

  end(): IChunk[] {
    const rest = this._buffer.trim();
    this._buffer = '';
    return rest ? [JSON.parse(rest) as IChunk] : [];
  }
}

/** Shows each distinct error once, until a request succeeds again (no pop-up per keystroke). */
export class ErrorOnce {
  private _last: string | null = null;

  /** Whether this error should be shown now. */
  report(message: string): boolean {
    if (message === this._last) {
      return false;
    }
    this._last = message;
    return true;
  }

  ok(): void {
    this._last = null;
  }
}

/** Whether to ask the model at all for this trigger (0 = Invoke by hand, 1 = Automatic). */
export function shouldFetch(settings: ITutorSettings, triggerKind: number): boolean {
  if (!settings.enabled) {
    return false;
  }
  return settings.trigger === 'automatic' || triggerKind === 0;
}

/** Waits ``ms``; resolves false when a newer call superseded this one meanwhile. */
export class Debouncer {
  private _generation = 0;

  async wait(ms: number): Promise<boolean> {
    const mine = ++this._generation;
    if (ms > 0) {
      await new Promise(resolve => setTimeout(resolve, ms));
    }
    return mine === this._generation;
  }
}

/**
 * What is left of a suggestion, given the text before the cursor when it was asked for and now:
 * the part the student has not typed (or accepted) yet; null when they typed something else.
 */
export function remainingSuggestion(requestBefore: string, suggestion: string, currentBefore: string): string | null {
  if (!currentBefore.startsWith(requestBefore)) {
    return null;
  }
  const typed = currentBefore.slice(requestBefore.length);
  return suggestion.startsWith(typed) ? suggestion.slice(typed.length) : null;
}

/** The next word of a suggestion, with the spaces before it: a run of word characters or of punctuation. */
export function nextWord(rest: string): string {
  const match = /^[ \t]*(\n[ \t]*)?([\w]+|[^\w\s]+)?/.exec(rest);
  return match && match[0] ? match[0] : rest.slice(0, 1);
}

/**
 * The next line of a suggestion: up to (not including) its next newline, so the rest stays on
 * show; at a newline, the newline and the line after it.
 */
export function nextLine(rest: string): string {
  const start = rest.startsWith('\n') ? 1 : 0;
  const end = rest.indexOf('\n', start);
  return end < 0 ? rest : rest.slice(0, end);
}

/** The server extension's state (GET /tutor/status), and what the status bar says for it. */
export type TutorState = 'not_configured' | 'idle' | 'loading' | 'ready' | 'unreachable';

export const STATE_LABELS: { [state in TutorState]: string } = {
  not_configured: 'Tutor: not configured',
  idle: 'Tutor: idle',
  loading: 'Tutor: loading model…',
  ready: 'Tutor: ready',
  unreachable: 'Tutor: server unreachable'
};

export function stateLabel(state: string | undefined): string {
  return STATE_LABELS[(state ?? 'unreachable') as TutorState] ?? `Tutor: ${state}`;
}

/** A model load's progress, as /tutor/status reports it while the state is 'loading'. */
export interface ILoading {
  role?: string;
  model?: string;
  phase?: string;
  fraction?: number;
}

/** The status bar's text for a status: while weights are read, how far ("Tutor: loading 42%"); after that,
 * the phase ("Tutor: loading, warming up"); before the first progress event, the plain state. */
export function statusLabel(status: { state?: unknown; loading?: ILoading | null }): string {
  const state = typeof status.state === 'string' ? status.state : undefined;
  const loading = status.loading;
  if (state !== 'loading' || !loading || typeof loading.fraction !== 'number') {
    return stateLabel(state);
  }
  if (loading.fraction < 1 || !loading.phase || loading.phase === 'reading' || loading.phase === 'quantizing') {
    return `Tutor: loading ${Math.floor(loading.fraction * 100)}%`;
  }
  return `Tutor: loading, ${loading.phase}`;
}

/** Whether a chunk says completion is simply not set up (a notice once, never an error toast). */
export function isNotConfigured(chunk: IChunk): boolean {
  return chunk.error?.kind === 'not_configured';
}

/** The magic that a palette command puts in a new cell below, and runs. */
export function magicCell(command: 'explain' | 'chat' | 'practice', code = ''): string {
  switch (command) {
    case 'explain':
      return `%%explain\n${code}`;
    case 'chat':
      return '%tutor';
    case 'practice':
      return '%practice';
  }
}

// ---------------------------------------------------------------- Explain and Fix on an error output

/**
 * Quietly loads the tutor into an IPython kernel. Not `%load_ext`: that prints "already loaded" the
 * second time.
 */
export const LOAD_TUTOR_CODE = 'get_ipython().extension_manager.load_extension("tutor")';

/** The settings of the error buttons (schema/errors.json). */
export interface IErrorSettings {
  buttons: boolean;
  loadInPythonKernels: boolean;
}

/**
 * Off by default: the extension comes into any JupyterLab the package is installed in, and loading the
 * tutor everywhere would put its panel under every traceback of every notebook, a research notebook's
 * too (and about 1 s and 30 MB per kernel). The buttons give the same help on demand and load the
 * tutor only into a kernel where one is clicked.
 */
export const DEFAULT_ERROR_SETTINGS: IErrorSettings = { buttons: true, loadInPythonKernels: false };

export function readErrorSettings(raw: { [key: string]: unknown }): IErrorSettings {
  const s = { ...DEFAULT_ERROR_SETTINGS };
  for (const key of ['buttons', 'loadInPythonKernels'] as const) {
    if (typeof raw[key] === 'boolean') {
      s[key] = raw[key] as boolean;
    }
  }
  return s;
}

/** An output as the buttons see it: a JupyterLab output model, or nbformat JSON (output_type). */
export interface IOutputLike {
  type?: string;
  output_type?: string;
  metadata?: unknown;
}

function outputType(output: IOutputLike): string {
  return output.type ?? output.output_type ?? '';
}

/** Whether an output is the kernel extension's error panel (tutor/widgets/panel.py tags it so). */
export function isTutorErrorPanel(output: IOutputLike): boolean {
  const tutor = (output.metadata as { tutor?: { panel?: unknown } } | null | undefined)?.tutor;
  return tutor?.panel === 'error';
}

/**
 * The index of the error output that gets Explain and Fix buttons; -1 for none: no error, or the
 * tutor's own panel is there already, with its own buttons (no double UI).
 */
export function errorButtonsIndex(outputs: readonly IOutputLike[]): number {
  if (outputs.some(isTutorErrorPanel)) {
    return -1;
  }
  for (let i = outputs.length - 1; i >= 0; i--) {
    if (outputType(outputs[i]) === 'error') {
      return i;
    }
  }
  return -1;
}

/** Whether a kernel's language (its kernel_info's language_info.name) is Python. */
export function isPython(language: string | null | undefined): boolean {
  return (language ?? '').trim().toLowerCase() === 'python';
}

/** What a click asks the kernel about: the cell's source and its error output. */
export interface IErrorHelpRequest {
  action: 'explain' | 'fix';
  source: string;
  ename: string;
  evalue: string;
  traceback: string[];
}

/**
 * The silent kernel code for a click (tutor/kernel/lab.py): it binds no names in the student's
 * namespace. The request travels as a JSON text inside a Python string literal: JSON's string escapes
 * (\" \\ \n \t \uXXXX ...) mean the same in Python, and JSON.stringify writes no other.
 */
export function errorHelpCode(request: IErrorHelpRequest): string {
  const payload = JSON.stringify({
    action: request.action,
    source: request.source,
    ename: request.ename,
    evalue: request.evalue,
    traceback: request.traceback
  });
  return `__import__("tutor.kernel.lab", fromlist=["help_on_error"]).help_on_error(get_ipython(), ${JSON.stringify(payload)})`;
}

/**
 * The cell with the last error, for the palette's "Explain/Fix the Last Error": of the cells with an
 * error output, the one run last (highest execution count; the last in order among those never
 * counted); -1 for none.
 */
export function lastErrorCell(cells: readonly { executionCount: number | null; outputs: readonly IOutputLike[] }[]): number {
  let best = -1;
  let bestCount = -Infinity;
  cells.forEach((cell, index) => {
    if (!cell.outputs.some(o => outputType(o) === 'error')) {
      return;
    }
    const count = cell.executionCount ?? -1;
    if (count >= bestCount) {
      best = index;
      bestCount = count;
    }
  });
  return best;
}

/** Which button of the tutor's own panel a palette command presses where the panel is there. */
export function panelButton(action: 'explain' | 'fix'): string {
  return action === 'explain' ? 'more' : 'fix';
}
