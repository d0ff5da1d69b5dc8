import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import {
  buildRequest,
  DEFAULT_SETTINGS,
  Debouncer,
  ErrorOnce,
  isNotConfigured,
  LineDecoder,
  magicCell,
  nextLine,
  nextWord,
  readSettings,
  remainingSuggestion,
  shouldFetch,
  stateLabel,
  statusLabel
} from '../src/logic';

test('the request splits the active cell at the cursor and sends the other cells in order', () => {
  const body = buildRequest({
    id: 'r1',
    path: 'work/nb.ipynb',
    text: 'def f(x):\n    return x',
    offset: 14,
    cells: [
      { id: 'a', source: 'import math' },
      { id: 'b', source: 'def f(x):\n    return x' },
      { id: 'c', source: 'print(f(2))' },
      { id: 'd', source: '# end' }
    ],
    activeCellId: 'b',
    language: 'python',
    settings: { ...DEFAULT_SETTINGS, maxLines: 3 }
  });
  assert.equal(body.before, 'def f(x):\n    ');
  assert.equal(body.after, 'return x');
  assert.deepEqual(body.cellsBefore, ['import math']);
  assert.deepEqual(body.cellsAfter, ['print(f(2))', '# end']);
  assert.equal(body.cellId, 'b');
  assert.equal(body.settings.maxLines, 3);
});

test('NDJSON lines are decoded whatever the chunk boundaries', () => {
  const d = new LineDecoder();
  const whole = '{"text":"a","done":false}\n{"text":"ab","done":false}\n{"text":"abc","done":true}\n';
  const seen = [...d.push(whole.slice(0, 10)), ...d.push(whole.slice(10, 40)), ...d.push(whole.slice(40)), ...d.end()];
  assert.deepEqual(seen.map(c => c.text), ['a', 'ab', 'abc']); // cumulative: each is the whole text so far
  assert.equal(seen[2].done, true);
});

test('an error is shown once until a request succeeds again', () => {
  const e = new ErrorOnce();
  assert.equal(e.report('no model'), true);
  assert.equal(e.report('no model'), false);
  e.ok();
  assert.equal(e.report('no model'), true);
});

test('manual mode asks only when invoked by hand; disabled never asks', () => {
  const manual = readSettings({ trigger: 'manual' });
  assert.equal(shouldFetch(manual, 1), false);
  assert.equal(shouldFetch(manual, 0), true);
  assert.equal(shouldFetch(readSettings({}), 1), true);
  assert.equal(shouldFetch(readSettings({ enabled: false }), 0), false);
  assert.equal(readSettings({ debounceMs: 'x', maxLines: 4 }).maxLines, 4);
});

test('the debouncer lets only the last of quick calls through', async () => {
  const d = new Debouncer();
  const results = await Promise.all([d.wait(20), d.wait(20), d.wait(20)]);
  assert.deepEqual(results, [false, false, true]);
});

test('what is left of a suggestion follows what the student typed or accepted', () => {
  assert.equal(remainingSuggestion('x = ', 'math.pi * r', 'x = '), 'math.pi * r');
  assert.equal(remainingSuggestion('x = ', 'math.pi * r', 'x = math.'), 'pi * r');
  assert.equal(remainingSuggestion('x = ', 'math.pi * r', 'x = y'), null);
  assert.equal(remainingSuggestion('x = ', 'math.pi', 'y = '), null);
});

test('a word at a time and a line at a time', () => {
  assert.equal(nextWord('math.pi * r'), 'math');
  assert.equal(nextWord('.pi * r'), '.');
  assert.equal(nextWord(' * r'), ' *');
  assert.equal(nextWord('  return y'), '  return');
  assert.equal(nextWord('\n    return y'), '\n    return');
  assert.equal(nextWord(''), '');
  assert.equal(nextLine('y = x * 2\n    return y'), 'y = x * 2');
  assert.equal(nextLine('\n    return y\nprint()'), '\n    return y');
  assert.equal(nextLine('last'), 'last');
});

test('the status bar names each state; not configured is a notice, not an error', () => {
  assert.equal(stateLabel('ready'), 'Tutor: ready');
  assert.equal(stateLabel('not_configured'), 'Tutor: not configured');
  assert.equal(stateLabel(undefined), 'Tutor: server unreachable');
  assert.equal(isNotConfigured({ error: { message: 'no model', kind: 'not_configured' } }), true);
  assert.equal(isNotConfigured({ error: { message: 'boom', kind: 'server_error' } }), false);
  assert.equal(magicCell('explain', 'print(1)'), '%%explain\nprint(1)');
  assert.equal(magicCell('chat'), '%tutor');
});

test('while the model loads, the status bar says how far', () => {
  const loading = (fraction: number, phase: string) => ({ state: 'loading', loading: { role: 'completion', phase, fraction } });
  assert.equal(statusLabel(loading(0.4237, 'reading')), 'Tutor: loading 42%');
  assert.equal(statusLabel(loading(0.999, 'quantizing')), 'Tutor: loading 99%');
  assert.equal(statusLabel(loading(1, 'preparing')), 'Tutor: loading, preparing');
  assert.equal(statusLabel(loading(1, 'warming up')), 'Tutor: loading, warming up');
  // Before the first progress event (the worker is starting), and in every other state: the state's own label.
  assert.equal(statusLabel({ state: 'loading', loading: null }), 'Tutor: loading model…');
  assert.equal(statusLabel({ state: 'ready', loading: null }), 'Tutor: ready');
  assert.equal(statusLabel({}), 'Tutor: server unreachable');
});
