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
